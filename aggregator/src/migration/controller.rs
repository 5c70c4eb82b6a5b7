//! The migration's async shell, run by the leader: it starts, validates and rolls back the
//! phases of [`super::record`], keeps the record on both clusters, runs the sync engine
//! while the record says so, and keeps the leader's `MasterInfo` on the cluster the masters
//! are not on (for Mesos clients that still look there). A new leader reads the record and
//! carries on where the last one was.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::task::JoinHandle;
use tracing::{info, warn};
use zookeeper_client as zk;

use super::{
    MigrationError,
    advert::{Advert, advertise},
    checks, fence, lock, parse, paths_differ,
    record::Record,
    stored::{RECORD, delete_record, read_record, write_record},
    zk_error,
};
use crate::{
    master::Master,
    state::{Shared, now_ms},
    zk::{
        decide::Policy,
        live::{Engine, SyncConfig},
        url::ZkUrl,
    },
};

/// How long a hand-over or a validation waits for both clusters to be alike.
const SETTLE_PATIENCE: Duration = Duration::from_secs(10);

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
    pub(super) home: ZkUrl,
    home_client: zk::Client,
    record: Mutex<Option<Record>>,
    running: Mutex<Option<Running>>,
    /// One phase operation at a time.
    op: tokio::sync::Mutex<()>,
    pub(super) master: Arc<Master>,
    pub(super) shared: Arc<Shared>,
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
                "after {SETTLE_PATIENCE:?}, {}",
                paths_differ(&left)
            )))
        }
    }

    fn current(&self) -> Result<Record, MigrationError> {
        self.record()
            .ok_or(MigrationError::Rule(super::record::RuleError::NoMigration))
    }

    /// Starts phase `id` (`target` is needed for phase 1). A hand-over (phase 3, and its
    /// rollback) ends with this aggregator starting over: the answer says so, and the
    /// restart follows it.
    pub async fn start(
        &self,
        id: u8,
        target: Option<&str>,
    ) -> Result<(Record, Option<String>), MigrationError> {
        let _one = self.op.lock().await;
        let mut record = match (id, self.record()) {
            // No migration yet, or the set's last one is complete: a new one starts here.
            (1, last) if last.as_ref().is_none_or(Record::complete) => {
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
                    record.fenced = Some(fence::source_acls(&source).await?);
                    record = self.save(record).await?;
                }
                self.stop_running().await;
                record.sync = false;
                fence::fence(&source, record.fenced.as_deref().unwrap_or_default()).await?;
                format!("the sync stopped and {source} is fenced")
            }
            _ => unreachable!("check_start knows the phases"),
        };
        record.started(id, now_ms(), message);
        let record = self.save_after(record, restart.as_deref()).await?;
        if id == 4 {
            self.ask_agents_to_look_again();
        }
        info!(phase = id, "migration phase started");
        Ok((record, restart))
    }

    /// Saves `record`; if that fails after a hand-over sealed the store (`restart`), this
    /// leader starts over, since it can write nothing more.
    async fn save_after(
        &self,
        record: Record,
        restart: Option<&str>,
    ) -> Result<Record, MigrationError> {
        let saved = self.save(record).await;
        if let (Err(err), Some(_)) = (&saved, restart) {
            Self::start_over_soon(format!("the hand-over's record was not saved: {err}"));
        }
        saved
    }

    /// Closes the connections of agents that find their leader through ZooKeeper, so that
    /// they look again where the record now says.
    fn ask_agents_to_look_again(&self) {
        let asked = self.shared.links.rediscover("the set's ZooKeeper moved");
        info!(asked, "agents asked to find their leader again");
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

    pub(super) fn advert_session(&self) -> Option<i64> {
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
                let removed = fence::clear(&target).await?;
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
                fence::unfence(&source, &saved).await?;
                fence::copy_back(&target, &source).await?;
                record.sync = true;
                self.start_running(&record).await?;
                format!("{source} is writable again, as the target is, and the sync runs again")
            }
            _ => unreachable!("check_rollback knows the phases"),
        };
        record.rolled_back(id, message);
        let record = self.save_after(record, restart.as_deref()).await?;
        if id == 4 {
            self.ask_agents_to_look_again();
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
