//! What validating each phase checks, on the clusters and on this leader.

use std::time::Duration;

use super::{
    MigrationError, checks,
    checks::foreign_sessions,
    controller::Migration,
    fence::WRITES,
    parse, paths_differ,
    record::{Record, RuleError},
    zk_error,
};
use crate::{ha::election::CONTENDER_PREFIX, zk::read::acl_entries};

/// How long a phase 2 validation waits for both trees to be alike.
const VALIDATE_PATIENCE: Duration = Duration::from_secs(10);

impl Migration {
    pub(super) async fn check(&self, id: u8, record: &Record) -> Result<String, MigrationError> {
        let source = parse(&record.source)?;
        let target = parse(&record.target)?;
        match id {
            1 => {
                let client = checks::connect(&target)
                    .await
                    .map_err(MigrationError::Check)?;
                client
                    .check_stat(&target.root)
                    .await
                    .map_err(|e| MigrationError::Check(format!("reading {target}: {e}")))?;
                Ok(format!("{target} answers"))
            }
            2 => {
                let engine = self
                    .engine()
                    .ok_or_else(|| MigrationError::Check("the sync does not run".into()))?;
                let deadline = tokio::time::Instant::now() + VALIDATE_PATIENCE;
                loop {
                    let left = engine
                        .differences()
                        .await
                        .map_err(|e| zk_error("comparing the clusters", e))?;
                    if left.is_empty() {
                        let m = &engine.metrics;
                        return Ok(format!(
                            "both clusters are alike; {} writes synced, {} conflicts",
                            m.writes.get(),
                            m.conflicts.get()
                        ));
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(MigrationError::Check(paths_differ(&left)));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            3 => {
                if self.home != target {
                    return Err(MigrationError::Check(format!(
                        "the leader is still on {}",
                        self.home
                    )));
                }
                let client = checks::connect(&source)
                    .await
                    .map_err(MigrationError::Check)?;
                let contenders = client
                    .list_children(&source.root)
                    .await
                    .map_err(|e| MigrationError::Check(format!("listing {source}: {e}")))?
                    .into_iter()
                    .filter(|c| c.starts_with(CONTENDER_PREFIX))
                    .count();
                let advertised = usize::from(self.advert_session().is_some());
                if contenders > advertised {
                    return Err(MigrationError::Check(format!(
                        "{} aggregator(s) still contend on {source}",
                        contenders - advertised
                    )));
                }
                Ok(format!("the leader and every standby are on {target}"))
            }
            4 => {
                let links = self.shared.links.discovery();
                // Every agent the master knows must be back (asked to look again, it
                // reconnects after a moment).
                let connected: std::collections::HashSet<&str> =
                    links.iter().map(|(id, _)| id.as_str()).collect();
                let known: Vec<String> = self
                    .master
                    .lock()
                    .agents()
                    .map(|a| a.record.id.clone())
                    .collect();
                let away: Vec<&String> = known
                    .iter()
                    .filter(|id| !connected.contains(id.as_str()))
                    .collect();
                if !away.is_empty() {
                    return Err(MigrationError::Check(format!(
                        "{} agent(s) not connected again yet: {}",
                        away.len(),
                        away.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                let through_zk: Vec<_> = links.iter().filter(|(_, d)| d.is_some()).collect();
                let behind: Vec<_> = through_zk
                    .iter()
                    .filter(|(_, d)| d.as_deref() != Some(record.target.as_str()))
                    .map(|(id, d)| format!("{id} (via {})", d.as_deref().unwrap_or_default()))
                    .collect();
                if !behind.is_empty() {
                    return Err(MigrationError::Check(format!(
                        "{} agent(s) still found their leader elsewhere: {}",
                        behind.len(),
                        behind.join(", ")
                    )));
                }
                Ok(format!(
                    "{} of {} connected agent(s) find their leader on {target}; the others are given its address directly",
                    through_zk.len(),
                    links.len()
                ))
            }
            5 => {
                let mut ours: Vec<i64> = self
                    .engine()
                    .map(|e| e.session_ids().to_vec())
                    .unwrap_or_default();
                ours.extend(self.advert_session());
                let left = foreign_sessions(&source, &ours)
                    .await
                    .map_err(MigrationError::Check)?;
                if !left.is_empty() {
                    let clients: Vec<_> = left
                        .iter()
                        .map(|s| format!("{} (session {:#x})", s.client, s.id))
                        .collect();
                    return Err(MigrationError::Check(format!(
                        "{} client session(s) still open on {source}: {}",
                        left.len(),
                        clients.join(", ")
                    )));
                }
                Ok(format!(
                    "no client but the migration's own is connected to {source}"
                ))
            }
            6 => {
                if self.engine().is_some() {
                    return Err(MigrationError::Check("the sync still runs".into()));
                }
                let client = checks::connect(&source)
                    .await
                    .map_err(MigrationError::Check)?;
                let (acl, _) = client
                    .get_acl(&source.root)
                    .await
                    .map_err(|e| MigrationError::Check(format!("reading {source}'s ACL: {e}")))?;
                if acl_entries(&acl).iter().any(|e| e.perms & WRITES != 0) {
                    return Err(MigrationError::Check(format!("{source} is writable")));
                }
                Ok(format!(
                    "{source} is read-only and the set runs on {target} alone"
                ))
            }
            _ => Err(MigrationError::Rule(RuleError::NoSuchPhase(id))),
        }
    }
}
