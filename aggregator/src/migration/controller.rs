//! The migration's async shell, run by the leader: it starts, validates and rolls back the
//! phases of [`super::record`], keeps the record on both clusters, runs the sync engine
//! while the record says so, and keeps the leader's `MasterInfo` on the cluster the masters
//! are not on (for Mesos clients that still look there). A new leader reads the record and
//! carries on where the last one was.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::task::JoinHandle;
use tracing::{info, warn};
use zookeeper_client as zk;

use super::{
    MigrationError,
    checks::{self, foreign_sessions},
    record::{Record, SavedAcl},
};
use crate::{
    master::Master,
    state::{Shared, now_ms},
    zk::{
        copy,
        decide::Policy,
        live::{Engine, SyncConfig},
        read::{acl_entries, read_tree, zk_acl},
        url::ZkUrl,
        write,
    },
};

/// The ACL permission bits that let a client change a node (write, create, delete).
const WRITES: u32 = 2 | 4 | 8;
const READ: u32 = 1;
const ADMIN: u32 = 16;

/// The record's path under the set's root.
pub const RECORD: &str = "/migration";
/// How long a hand-over or a validation waits for both clusters to be alike.
const SETTLE_PATIENCE: Duration = Duration::from_secs(10);
/// How long a phase 2 validation waits for both trees to be alike.
const VALIDATE_PATIENCE: Duration = Duration::from_secs(10);

/// The leader's MasterInfo znode on the other cluster.
struct Advert {
    client: zk::Client,
    path: String,
}

/// What runs while the sync is on.
struct Running {
    engine: Arc<Engine>,
    task: JoinHandle<()>,
    advert: JoinHandle<()>,
    /// The advertisement's client and znode, once it holds one.
    advert_node: Arc<Mutex<Option<Advert>>>,
}

/// The leader's migration controller.
pub struct Migration {
    /// The cluster this leader elects and keeps the state on.
    home: ZkUrl,
    home_client: zk::Client,
    record: Mutex<Option<Record>>,
    running: Mutex<Option<Running>>,
    /// One phase operation at a time.
    op: tokio::sync::Mutex<()>,
    master: Arc<Master>,
    shared: Arc<Shared>,
    /// This leader's MasterInfo, as advertised on the other cluster.
    info: serde_json::Value,
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migration")
            .field("home", &self.home)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn zk_error(doing: &str, err: impl std::fmt::Display) -> MigrationError {
    MigrationError::Unavailable(format!("{doing}: {err}"))
}

fn parse(url: &str) -> Result<ZkUrl, MigrationError> {
    url.parse()
        .map_err(|e: crate::zk::url::BadZkUrl| MigrationError::BadRequest(e.to_string()))
}

/// The record at `url`, if there is one.
pub async fn read_record(client: &zk::Client, url: &ZkUrl) -> Result<Option<Record>, String> {
    match client.get_data(&url.absolute(RECORD)).await {
        Ok((bytes, _)) => Record::from_json(&bytes)
            .map(Some)
            .map_err(|e| format!("the migration record at {url} is unreadable: {e}")),
        Err(zk::Error::NoNode) => Ok(None),
        Err(e) => Err(format!("reading the migration record at {url}: {e}")),
    }
}

/// Writes (or creates) the record at `url`.
async fn write_record(client: &zk::Client, url: &ZkUrl, record: &Record) -> Result<(), String> {
    let path = url.absolute(RECORD);
    let bytes = record.to_json();
    match client.set_data(&path, &bytes, None).await {
        Ok(_) => Ok(()),
        Err(zk::Error::NoNode) => {
            let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
            client
                .mkdir(&url.root, &open)
                .await
                .map_err(|e| format!("creating {} at {url}: {e}", url.root))?;
            client
                .create(&path, &bytes, &open)
                .await
                .map(|_| ())
                .map_err(|e| format!("writing the migration record at {url}: {e}"))
        }
        Err(e) => Err(format!("writing the migration record at {url}: {e}")),
    }
}

/// Deletes the record at `url`.
async fn delete_record(client: &zk::Client, url: &ZkUrl) -> Result<(), String> {
    match client.delete(&url.absolute(RECORD), None).await {
        Ok(()) | Err(zk::Error::NoNode) => Ok(()),
        Err(e) => Err(format!("deleting the migration record at {url}: {e}")),
    }
}

/// Where the set's masters are, as the record at `url` says: `url` itself without one.
pub async fn masters_at(client: &zk::Client, url: &ZkUrl) -> Result<ZkUrl, String> {
    match read_record(client, url).await? {
        Some(record) => record
            .masters_at
            .parse()
            .map_err(|e: crate::zk::url::BadZkUrl| e.to_string()),
        None => Ok(url.clone()),
    }
}

/// Keeps `info` in an ephemeral sequential `json.info_` znode on `url` (re-created with a new
/// session after one ends), so Mesos clients looking there find this leader.
async fn advertise(url: ZkUrl, info: serde_json::Value, held: Arc<Mutex<Option<Advert>>>) {
    let data = serde_json::to_vec(&info).expect("MasterInfo serializes");
    loop {
        let client = match checks::connect(&url).await {
            Ok(client) => client,
            Err(err) => {
                warn!(error = err, "cannot advertise the leader; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mode = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        match client
            .create(&format!("{}/json.info_", url.root), &data, &mode)
            .await
        {
            Ok((_, sequence)) => {
                let path = format!("{}/json.info_{sequence}", url.root);
                info!(%url, path, "the leader's MasterInfo is advertised on the other cluster");
                let mut states = client.state_watcher();
                *lock(&held) = Some(Advert { client, path });
                while !states.changed().await.is_terminated() {}
                *lock(&held) = None;
            }
            Err(err) => {
                warn!(%url, error = %err, "cannot advertise the leader; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

impl Migration {
    /// The controller of a new leader at `home`, with the record as `home` has it. What
    /// takes longer (the other cluster's copy, which may be newer, and the sync, if the record
    /// says it runs) carries on in the background, retried until it works, so the new
    /// leader's API is not held up by the other cluster.
    pub async fn resume(
        home: ZkUrl,
        home_client: zk::Client,
        master: Arc<Master>,
        shared: Arc<Shared>,
        info: serde_json::Value,
    ) -> Arc<Self> {
        let record = read_record(&home_client, &home)
            .await
            .unwrap_or_else(|err| {
                warn!(error = err, "no migration resumed");
                None
            });
        let migration = Arc::new(Self {
            home,
            home_client,
            record: Mutex::new(record),
            running: Mutex::default(),
            op: tokio::sync::Mutex::new(()),
            master,
            shared,
            info,
        });
        tokio::spawn(migration.clone().carry_on());
        migration
    }

    /// Takes the newer copy of the record and keeps trying to start the sync it says runs.
    async fn carry_on(self: Arc<Self>) {
        let _one = self.op.lock().await;
        let Some(mine) = self.record().filter(|r| !r.complete()) else {
            return;
        };
        if let Ok(other) = Self::other_of(&self.home, &mine)
            && let Ok(client) = checks::connect(&other).await
            && let Ok(Some(theirs)) = read_record(&client, &other).await
            && theirs.revision > mine.revision
        {
            *lock(&self.record) = Some(theirs);
        }
        loop {
            let Some(record) = self.record().filter(|r| r.sync) else {
                return;
            };
            info!(
                source = record.source,
                target = record.target,
                "resuming the migration's sync"
            );
            match self.start_running(&record).await {
                Ok(()) => return,
                Err(err) => {
                    warn!(error = %err, "the migration's sync could not be resumed; again in 2 s");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }

    fn other_of(home: &ZkUrl, record: &Record) -> Result<ZkUrl, MigrationError> {
        if home.to_string() == record.source {
            parse(&record.target)
        } else {
            parse(&record.source)
        }
    }

    /// The cluster this leader elects and keeps the state on.
    pub fn home(&self) -> &ZkUrl {
        &self.home
    }

    /// The record as it is now.
    pub fn record(&self) -> Option<Record> {
        lock(&self.record).clone()
    }

    /// Whether the sync runs here, with its engine.
    pub fn engine(&self) -> Option<Arc<Engine>> {
        lock(&self.running).as_ref().map(|r| r.engine.clone())
    }

    /// Writes `record` to both clusters (a higher revision) and keeps it.
    async fn save(&self, mut record: Record) -> Result<Record, MigrationError> {
        record.revision += 1;
        let other = Self::other_of(&self.home, &record)?;
        // The other cluster's copy first: the one at home is what this set's standbys follow,
        // so it changes only once both clusters say the same.
        let client = checks::connect(&other)
            .await
            .map_err(MigrationError::Unavailable)?;
        write_record(&client, &other, &record)
            .await
            .map_err(MigrationError::Unavailable)?;
        write_record(&self.home_client, &self.home, &record)
            .await
            .map_err(MigrationError::Unavailable)?;
        *lock(&self.record) = Some(record.clone());
        Ok(record)
    }

    /// Starts the engine (this leader's cluster as side A, both ways, last writer wins) and
    /// the advertisement on the other cluster.
    async fn start_running(&self, record: &Record) -> Result<(), MigrationError> {
        if lock(&self.running).is_some() {
            return Ok(());
        }
        let other = Self::other_of(&self.home, record)?;
        let config = SyncConfig {
            a: self.home.clone(),
            b: other.clone(),
            both_ways: true,
            policy: Policy::LastWriterWins,
            skip: vec![RECORD.to_owned()],
            a_wins_first_pass: true,
        };
        let engine = Engine::connect(config)
            .await
            .map_err(|e| zk_error("starting the sync", e))?;
        engine
            .resync()
            .await
            .map_err(|e| zk_error("the sync's first pass", e))?;
        let task = tokio::spawn(engine.clone().run());
        let advert_node = Arc::new(Mutex::new(None));
        let advert = tokio::spawn(advertise(other, self.info.clone(), advert_node.clone()));
        *lock(&self.running) = Some(Running {
            engine,
            task,
            advert,
            advert_node,
        });
        Ok(())
    }

    /// Stops the sync and withdraws the advertisement.
    async fn stop_running(&self) {
        let running = lock(&self.running).take();
        if let Some(running) = running {
            running.task.abort();
            Self::withdraw(&running).await;
            // A write the engine had under way lands (or not) before anything follows.
            let _ = running.task.await;
        }
    }

    /// Ends the advertisement and deletes its znode.
    async fn withdraw(running: &Running) {
        running.advert.abort();
        let advert = lock(&running.advert_node).take();
        if let Some(Advert { client, path }) = advert
            && let Err(err) = client.delete(&path, None).await
        {
            warn!(path, error = %err, "the advertisement's znode stays until its session ends");
        }
    }

    /// Waits until both clusters are alike; an error naming what still differs.
    async fn settle(&self) -> Result<(), MigrationError> {
        let Some(engine) = self.engine() else {
            return match self.record() {
                Some(record) if record.sync => Err(MigrationError::Unavailable(
                    "the sync should run but has not started again yet (see the log)".into(),
                )),
                _ => Ok(()),
            };
        };
        let left = engine
            .settle(SETTLE_PATIENCE)
            .await
            .map_err(|e| zk_error("settling the sync", e))?;
        if left.is_empty() {
            Ok(())
        } else {
            Err(MigrationError::Check(format!(
                "{} path(s) still differ between the clusters after {SETTLE_PATIENCE:?}: {}",
                left.len(),
                left.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            )))
        }
    }

    fn current(&self) -> Result<Record, MigrationError> {
        self.record()
            .ok_or(MigrationError::Rule(super::record::RuleError::NoMigration))
    }

    /// Starts phase `id` (`target` is needed for phase 1). A hand-over (phases 3 and 6
    /// rolled back to 3's other side) ends with this aggregator starting over: the answer
    /// says so, and the restart follows it.
    pub async fn start(
        &self,
        id: u8,
        target: Option<&str>,
    ) -> Result<(Record, Option<String>), MigrationError> {
        let _one = self.op.lock().await;
        let mut record = match (id, self.record()) {
            (1, None) => {
                let target = target.ok_or_else(|| {
                    MigrationError::BadRequest(
                        "phase 1 needs the target: {\"target\": \"zk://HOST:PORT/PATH\"}".into(),
                    )
                })?;
                Record::new(&self.home.to_string(), &parse(target)?.to_string())
            }
            // The set's last migration is complete: a new one starts from here.
            (1, Some(done)) if done.complete() => {
                let target = target.ok_or_else(|| {
                    MigrationError::BadRequest(
                        "phase 1 needs the target: {\"target\": \"zk://HOST:PORT/PATH\"}".into(),
                    )
                })?;
                Record::new(&self.home.to_string(), &parse(target)?.to_string())
            }
            (_, Some(record)) => record,
            (_, None) => return Err(MigrationError::Rule(super::record::RuleError::NoMigration)),
        };
        record.check_start(id)?;
        let source = parse(&record.source)?;
        let target = parse(&record.target)?;
        let mut restart = None;
        let message = match id {
            1 => checks::verify_target(&self.home_client, &self.home, &target)
                .await
                .map_err(MigrationError::Check)?,
            2 => {
                self.start_running(&record).await?;
                record.sync = true;
                "syncing both ways".to_owned()
            }
            3 => {
                restart = Some(self.hand_over(&target).await?);
                record.masters_at = record.target.clone();
                format!("the masters move to {target}")
            }
            4 => {
                record.agents_at = Some(record.target.clone());
                "agents look on the target from now on".into()
            }
            5 => "waiting for the source's other clients to leave".into(),
            6 => {
                self.settle().await?;
                // The source's ACLs are kept in the record before any changes, so a fence
                // that fails half-way is rolled back to the ACLs it found.
                if record.fenced.is_none() {
                    record.fenced = Some(self.source_acls(&source).await?);
                    record = self.save(record).await?;
                }
                self.stop_running().await;
                record.sync = false;
                self.fence(&source, record.fenced.as_deref().unwrap_or_default())
                    .await?;
                format!("the sync stopped and {source} is fenced")
            }
            _ => unreachable!("check_start knows the phases"),
        };
        record.started(id, now_ms(), message);
        let record = match self.save(record).await {
            Ok(record) => record,
            Err(err) => {
                if restart.is_some() {
                    Self::start_over_soon(format!("the hand-over's record was not saved: {err}"));
                }
                return Err(err);
            }
        };
        if id == 4 {
            let asked = self.shared.links.rediscover("the set's ZooKeeper moved");
            info!(asked, "agents asked to find their leader on the target");
        }
        info!(phase = id, "migration phase started");
        Ok((record, restart))
    }

    /// Validates phase `id`: its condition holds now, or the answer says what does not.
    pub async fn validate(&self, id: u8) -> Result<Record, MigrationError> {
        let _one = self.op.lock().await;
        let mut record = self.current()?;
        record.check_validate(id)?;
        let outcome = self.check(id, &record).await;
        match outcome {
            Ok(message) => {
                record.validated(id, now_ms(), message);
                self.save(record).await
            }
            Err(MigrationError::Check(why)) => {
                record.not_validated(id, why.clone());
                self.save(record).await?;
                Err(MigrationError::Check(why))
            }
            Err(other) => Err(other),
        }
    }

    async fn check(&self, id: u8, record: &Record) -> Result<String, MigrationError> {
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
                        return Err(MigrationError::Check(format!(
                            "{} path(s) differ between the clusters: {}",
                            left.len(),
                            left.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                        )));
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
                    .filter(|c| c.starts_with("json.info_"))
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
                let known: Vec<String> = self
                    .master
                    .lock()
                    .agents()
                    .map(|a| a.record.id.clone())
                    .collect();
                let away: Vec<&String> = known
                    .iter()
                    .filter(|id| !links.iter().any(|(l, _)| l == *id))
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
            _ => Err(MigrationError::Rule(super::record::RuleError::NoSuchPhase(
                id,
            ))),
        }
    }

    fn advert_session(&self) -> Option<i64> {
        lock(&self.running).as_ref().and_then(|r| {
            lock(&r.advert_node)
                .as_ref()
                .map(|a| a.client.session_id().0)
        })
    }

    /// Rolls phase `id` back; the source is then as it was before the phase started.
    pub async fn rollback(
        &self,
        id: u8,
    ) -> Result<(Option<Record>, Option<String>), MigrationError> {
        let _one = self.op.lock().await;
        let mut record = self.current()?;
        record.check_rollback(id)?;
        let source = parse(&record.source)?;
        let target = parse(&record.target)?;
        let mut restart = None;
        let message = match id {
            1 => {
                let client = checks::connect(&target)
                    .await
                    .map_err(MigrationError::Unavailable)?;
                delete_record(&client, &target)
                    .await
                    .map_err(MigrationError::Unavailable)?;
                let _ = client.delete(&target.root, None).await;
                delete_record(&self.home_client, &self.home)
                    .await
                    .map_err(MigrationError::Unavailable)?;
                *lock(&self.record) = None;
                info!("migration rolled back entirely");
                return Ok((None, None));
            }
            2 => {
                self.stop_running().await;
                record.sync = false;
                let removed = self.clear(&target).await?;
                format!("the sync stopped and its copy of {removed} node(s) on the target is gone")
            }
            3 => {
                restart = Some(self.hand_over(&source).await?);
                record.masters_at = record.source.clone();
                format!("the masters move back to {source}")
            }
            4 => {
                record.agents_at = Some(record.source.clone());
                "agents look on the source again".into()
            }
            5 => "the source's clients are left as they are".into(),
            6 => {
                let saved = record.fenced.take().unwrap_or_default();
                self.unfence(&source, &saved).await?;
                self.copy_back(&target, &source).await?;
                record.sync = true;
                self.start_running(&record).await?;
                format!("{source} is writable again, as the target is, and the sync runs again")
            }
            _ => unreachable!("check_rollback knows the phases"),
        };
        record.rolled_back(id, message);
        let record = match self.save(record).await {
            Ok(record) => record,
            Err(err) => {
                if restart.is_some() {
                    Self::start_over_soon(format!("the hand-over's record was not saved: {err}"));
                }
                return Err(err);
            }
        };
        if id == 4 {
            self.shared
                .links
                .rediscover("the set's ZooKeeper moved back");
        }
        info!(phase = id, "migration phase rolled back");
        Ok((Some(record), restart))
    }

    /// Hands the leadership over to the cluster `to`: the advertisement there goes first (it
    /// would lead the election there), the store commits what it has and stops, and the
    /// sync settles. The caller saves the record and starts over; returns why.
    async fn hand_over(&self, to: &ZkUrl) -> Result<String, MigrationError> {
        let running = lock(&self.running).take();
        if let Some(running) = &running {
            Self::withdraw(running).await;
        }
        *lock(&self.running) = running;
        // In step before the seal, so that a sync that cannot settle leaves this leader as
        // it was; in step again after it, with the last writes.
        self.settle().await?;
        let store = self.master.store().clone();
        let sealed = tokio::task::spawn_blocking(move || store.seal())
            .await
            .unwrap_or(false);
        let settled = if sealed {
            self.settle().await
        } else {
            Err(MigrationError::Unavailable(
                "the store could not commit what it held before the hand-over".into(),
            ))
        };
        if let Err(err) = settled {
            Self::start_over_soon(format!("a hand-over to {to} failed after the seal: {err}"));
            return Err(err);
        }
        Ok(format!("the set's masters move to {to}"))
    }

    /// A leader whose store is sealed cannot go on leading: it starts over (as a standby
    /// where the record says the masters are) once the answer has left.
    pub fn start_over_soon(why: String) {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            crate::ha::start_over(&why).await;
        });
    }

    /// Deletes everything but the record under `url`'s root; how many nodes went.
    async fn clear(&self, url: &ZkUrl) -> Result<usize, MigrationError> {
        let client = checks::connect(url)
            .await
            .map_err(MigrationError::Unavailable)?;
        let tree = read_tree(&client, url)
            .await
            .map_err(|e| zk_error("reading the target", e))?;
        let children = client
            .list_children(&url.root)
            .await
            .map_err(|e| zk_error("listing the target", e))?;
        for child in children.iter().filter(|c| format!("/{c}") != RECORD) {
            write::put(&client, &format!("{}/{child}", url.root), None, None)
                .await
                .map_err(|e| zk_error("clearing the target", e))?;
        }
        Ok(tree.nodes.len().saturating_sub(2))
    }

    /// The ACLs of the set's znodes on `source` that the fence changes.
    async fn source_acls(&self, source: &ZkUrl) -> Result<Vec<SavedAcl>, MigrationError> {
        let client = checks::connect(source)
            .await
            .map_err(MigrationError::Unavailable)?;
        let state = source.absolute("/state");
        let mut paths = vec![source.root.clone(), state.clone()];
        if let Ok(children) = client.list_children(&state).await {
            paths.extend(children.into_iter().map(|c| format!("{state}/{c}")));
        }
        let mut saved = Vec::new();
        for path in paths {
            match client.get_acl(&path).await {
                Ok((acl, _)) => saved.push(SavedAcl {
                    path,
                    acl: acl_entries(&acl),
                }),
                Err(zk::Error::NoNode) => {}
                Err(e) => return Err(zk_error("reading an ACL", e)),
            }
        }
        Ok(saved)
    }

    /// The nodes of `saved` on `source` made read-only, its epoch advanced first, so that a
    /// leader that still writes there is fenced.
    async fn fence(&self, source: &ZkUrl, saved: &[SavedAcl]) -> Result<(), MigrationError> {
        let client = checks::connect(source)
            .await
            .map_err(MigrationError::Unavailable)?;
        let epoch = source.absolute("/state/epoch");
        let _ = client
            .set_data(&epoch, b"fenced by the migration's cut-over", None)
            .await;
        // Read-only, keeping ADMIN so that a rollback can give the ACLs back.
        let fenced = zk_acl(&[crate::zk::tree::AclEntry {
            perms: READ | ADMIN,
            scheme: "world".into(),
            id: "anyone".into(),
        }]);
        let read_only = zk::Acls::new(&fenced);
        for entry in saved {
            match client.set_acl(&entry.path, &read_only, None).await {
                Ok(_) | Err(zk::Error::NoNode) => {}
                Err(e) => return Err(zk_error("fencing the source", e)),
            }
        }
        Ok(())
    }

    async fn unfence(&self, source: &ZkUrl, saved: &[SavedAcl]) -> Result<(), MigrationError> {
        let client = checks::connect(source)
            .await
            .map_err(MigrationError::Unavailable)?;
        for entry in saved {
            let acl = zk_acl(&entry.acl);
            client
                .set_acl(&entry.path, &zk::Acls::new(&acl), None)
                .await
                .map_err(|e| zk_error("unfencing the source", e))?;
        }
        Ok(())
    }

    /// Makes `to`'s subtree what `from`'s is (the record aside), for a sync that starts again.
    async fn copy_back(&self, from: &ZkUrl, to: &ZkUrl) -> Result<(), MigrationError> {
        let from_client = checks::connect(from)
            .await
            .map_err(MigrationError::Unavailable)?;
        let to_client = checks::connect(to)
            .await
            .map_err(MigrationError::Unavailable)?;
        let mut want = read_tree(&from_client, from)
            .await
            .map_err(|e| zk_error("reading the target", e))?;
        let mut have = read_tree(&to_client, to)
            .await
            .map_err(|e| zk_error("reading the source", e))?;
        want.nodes.remove(RECORD);
        have.nodes.remove(RECORD);
        let plan = copy::plan(&want, &have, true);
        let report = copy::apply(&to_client, to, &plan)
            .await
            .map_err(|e| zk_error("copying the target back", e))?;
        if let Some(error) = report.errors.first() {
            return Err(zk_error("copying the target back", error));
        }
        Ok(())
    }

    /// Each connected agent and the `zk://` address it found this leader through.
    pub fn agents(&self) -> serde_json::Value {
        let list: Vec<_> = self
            .shared
            .links
            .discovery()
            .into_iter()
            .map(|(id, via)| serde_json::json!({ "agent_id": id, "discovery": via }))
            .collect();
        serde_json::Value::Array(list)
    }
}
