//! The master's durable state: frameworks, agents, tasks, the app service's apps and the
//! master's id, as JSON records keyed by table and id.
//!
//! Writes are queued on a [`Store`] handle and a writer thread commits them in batches
//! (group commit), so the master never waits on its store. Only the last write of a key
//! matters, so a batch holds each key once. Two backends:
//!
//! - [`redb_backend`]: an embedded redb database in the data directory (the default).
//! - [`zk_backend`]: znodes in ZooKeeper, for aggregators that run highly available; its
//!   writes carry the leader's fencing check, so a deposed leader can write nothing.
//!
//! A batch the backend cannot commit now (ZooKeeper without quorum, a full disk) is held and
//! retried with backoff, merged with what comes meanwhile: nothing is dropped, and the store
//! reports itself unhealthy until the writes land. A backend that finds another leader has
//! taken over fences the store: it commits nothing more and [`Store::fenced`] resolves.

pub mod redb_backend;
pub mod zk_backend;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, Sender},
    },
    time::Duration,
};

use serde::{Serialize, de::DeserializeOwned};
use tracing::{error, info, warn};

/// Most queued operations merged into one batch.
const MAX_BATCH: usize = 10_000;
/// The first and the longest pause between retries of a held batch.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// The longest a flush waits (a store that cannot commit must not hang a shutdown).
const FLUSH_PATIENCE: Duration = Duration::from_secs(10);

/// Which table a record lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Frameworks,
    Agents,
    Tasks,
    Meta,
    /// The app service's apps (records it owns; the master only keeps them).
    Apps,
}

impl Table {
    pub const ALL: [Table; 5] = [
        Self::Frameworks,
        Self::Agents,
        Self::Tasks,
        Self::Meta,
        Self::Apps,
    ];

    /// The table's name in either backend.
    pub fn name(self) -> &'static str {
        match self {
            Self::Frameworks => "frameworks",
            Self::Agents => "agents",
            Self::Tasks => "tasks",
            Self::Meta => "meta",
            Self::Apps => "apps",
        }
    }
}

/// The key of the master's id in [`Table::Meta`].
pub const MASTER_ID_KEY: &str = "master_id";

/// Writes waiting for a commit: the last value of each key (`None`: delete it).
pub type Writes = BTreeMap<(Table, String), Option<Vec<u8>>>;

/// What a backend does with a batch it could not commit.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Not now (the backend is unreachable or failing): hold the writes and retry.
    #[error("{0}")]
    Retry(String),
    /// Never: another leader owns the state. Nothing more is written.
    #[error("{0}")]
    Fenced(String),
}

/// A place records are committed to.
pub trait Backend: Send + 'static {
    /// Commits `writes`, removing from it what landed (all of it on success).
    fn commit(&mut self, writes: &mut Writes) -> Result<(), CommitError>;
}

/// Why the store could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening {path}")]
    Open {
        path: String,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("reading the master's state")]
    Read(#[from] redb::Error),
    #[error("reading the master's state from ZooKeeper")]
    Zk(#[from] crate::zk::ZkError),
    #[error("a stored record is corrupt")]
    Corrupt(#[from] serde_json::Error),
    #[error("starting the store's writer")]
    Writer(#[source] std::io::Error),
}

/// Every record as read back at start, undecoded.
#[derive(Debug, Default)]
pub struct RawState {
    pub tables: BTreeMap<Table, Vec<Vec<u8>>>,
    pub master_id: Option<String>,
}

/// Everything read back at start.
#[derive(Debug, Default)]
pub struct Recovered<F, A, T> {
    pub master_id: Option<String>,
    pub frameworks: Vec<F>,
    pub agents: Vec<A>,
    pub tasks: Vec<T>,
    pub apps: Vec<serde_json::Value>,
}

impl RawState {
    /// Decodes the records of every table.
    pub fn decode<F, A, T>(mut self) -> Result<Recovered<F, A, T>, StoreError>
    where
        F: DeserializeOwned,
        A: DeserializeOwned,
        T: DeserializeOwned,
    {
        let mut records = |table: Table| self.tables.remove(&table).unwrap_or_default();
        fn decode_all<R: DeserializeOwned>(raw: Vec<Vec<u8>>) -> Result<Vec<R>, StoreError> {
            raw.iter()
                .map(|bytes| serde_json::from_slice(bytes).map_err(StoreError::from))
                .collect()
        }
        let (frameworks, agents, tasks, apps) = (
            records(Table::Frameworks),
            records(Table::Agents),
            records(Table::Tasks),
            records(Table::Apps),
        );
        Ok(Recovered {
            master_id: self.master_id,
            frameworks: decode_all(frameworks)?,
            agents: decode_all(agents)?,
            tasks: decode_all(tasks)?,
            apps: decode_all(apps)?,
        })
    }
}

#[derive(Debug)]
enum Op {
    Put(Table, String, Vec<u8>),
    Delete(Table, String),
    Flush(mpsc::SyncSender<()>),
    /// Commit what came before, then write nothing more (a hand-over to another leader).
    Seal(mpsc::SyncSender<()>),
}

/// What the writer tells the rest of the aggregator.
#[derive(Debug)]
struct Health {
    /// Writes held for a commit.
    pending: AtomicUsize,
    /// The last commit failed.
    failing: AtomicBool,
    /// The backend is reachable, as far as its connection knows.
    reachable: AtomicBool,
    /// The store was sealed for a hand-over: it writes nothing more.
    sealed: AtomicBool,
    /// Why the store was fenced, once it is.
    fenced: tokio::sync::watch::Sender<Option<String>>,
}

/// The handle writes are queued on.
#[derive(Debug, Clone)]
pub struct Store {
    ops: Sender<Op>,
    health: Arc<Health>,
    /// The backend's name, for flags and logs (`redb`, `zookeeper`).
    pub kind: &'static str,
}

impl Store {
    /// Starts the writer thread over `backend`.
    pub fn start(backend: impl Backend, kind: &'static str) -> Result<Store, StoreError> {
        let (ops, rx) = mpsc::channel();
        let health = Arc::new(Health {
            pending: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
            reachable: AtomicBool::new(true),
            sealed: AtomicBool::new(false),
            fenced: tokio::sync::watch::channel(None).0,
        });
        let shared = health.clone();
        std::thread::Builder::new()
            .name("master-store".into())
            .spawn(move || writer(backend, &rx, &shared))
            .map_err(StoreError::Writer)?;
        Ok(Store { ops, health, kind })
    }

    /// Queues a record write.
    pub fn put(&self, table: Table, key: &str, record: &impl Serialize) {
        let bytes = serde_json::to_vec(record).expect("records always serialize");
        let _ = self.ops.send(Op::Put(table, key.to_owned(), bytes));
    }

    /// Queues a record deletion.
    pub fn delete(&self, table: Table, key: &str) {
        let _ = self.ops.send(Op::Delete(table, key.to_owned()));
    }

    /// Records the master's id (raw bytes, read back at start).
    pub fn put_master_id(&self, id: &str) {
        let op = Op::Put(Table::Meta, MASTER_ID_KEY.into(), id.as_bytes().to_vec());
        let _ = self.ops.send(op);
    }

    /// Waits until everything queued so far is committed (at most [`FLUSH_PATIENCE`]);
    /// whether it was.
    pub fn flush(&self) -> bool {
        let (done, wait) = mpsc::sync_channel(1);
        self.ops.send(Op::Flush(done)).is_ok() && wait.recv_timeout(FLUSH_PATIENCE).is_ok()
    }

    /// Commits everything queued so far, then stops writing for good: the state is handed
    /// over to a leader elsewhere (a migration between ZooKeeper clusters). Whether all of it
    /// landed (at most [`FLUSH_PATIENCE`]); later writes are dropped with the process.
    pub fn seal(&self) -> bool {
        let (done, wait) = mpsc::sync_channel(1);
        self.ops.send(Op::Seal(done)).is_ok() && wait.recv_timeout(FLUSH_PATIENCE).is_ok()
    }

    /// Whether writes land now: the backend is reachable, the last commit landed (none are
    /// held for a retry) and the store is neither fenced nor sealed.
    pub fn healthy(&self) -> bool {
        !self.health.sealed.load(Ordering::Relaxed)
            && self.health.reachable.load(Ordering::Relaxed)
            && !self.health.failing.load(Ordering::Relaxed)
            && self.health.fenced.borrow().is_none()
    }

    /// Records whether the backend's connection is up (a ZooKeeper session's state).
    pub fn set_reachable(&self, reachable: bool) {
        self.health.reachable.store(reachable, Ordering::Relaxed);
    }

    /// Writes waiting for a commit.
    pub fn pending(&self) -> usize {
        self.health.pending.load(Ordering::Relaxed)
    }

    /// Resolves with the reason once another leader has fenced this store.
    pub async fn fenced(&self) -> String {
        let mut fenced = self.health.fenced.subscribe();
        loop {
            if let Some(why) = fenced.borrow_and_update().clone() {
                return why;
            }
            if fenced.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// Takes queued operations into `pending` (each key once) and `flushes`, up to a seal;
/// the seal's answer, if one came.
fn gather(
    first: Op,
    ops: &Receiver<Op>,
    pending: &mut Writes,
    flushes: &mut Vec<mpsc::SyncSender<()>>,
) -> Option<mpsc::SyncSender<()>> {
    let mut take = |op: Op| match op {
        Op::Put(table, key, value) => {
            pending.insert((table, key), Some(value));
            None
        }
        Op::Delete(table, key) => {
            pending.insert((table, key), None);
            None
        }
        Op::Flush(done) => {
            flushes.push(done);
            None
        }
        Op::Seal(done) => Some(done),
    };
    if let Some(seal) = take(first) {
        return Some(seal);
    }
    for _ in 1..MAX_BATCH {
        match ops.try_recv() {
            Ok(op) => {
                if let Some(seal) = take(op) {
                    return Some(seal);
                }
            }
            Err(_) => break,
        }
    }
    None
}

fn writer(mut backend: impl Backend, ops: &Receiver<Op>, health: &Health) {
    let mut pending = Writes::new();
    let mut flushes = Vec::new();
    let mut retry = RETRY_MIN;
    let mut failing_since: Option<std::time::Instant> = None;
    let mut seal = None;
    loop {
        let next = if failing_since.is_some() {
            match ops.recv_timeout(retry) {
                Ok(op) => Some(op),
                Err(RecvTimeoutError::Disconnected) if pending.is_empty() => return,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
            }
        } else {
            match ops.recv() {
                Ok(op) => Some(op),
                Err(_) => return,
            }
        };
        if let Some(first) = next
            && seal.is_none()
        {
            seal = gather(first, ops, &mut pending, &mut flushes);
        }
        match backend.commit(&mut pending) {
            Ok(()) => {
                if let Some(since) = failing_since.take() {
                    info!(held_for = ?since.elapsed(), "the master's state store commits again");
                }
                retry = RETRY_MIN;
                health.failing.store(false, Ordering::Relaxed);
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
                if let Some(done) = seal.take() {
                    health.sealed.store(true, Ordering::Relaxed);
                    info!("the master's state store is sealed for a hand-over");
                    let _ = done.send(());
                    return;
                }
            }
            Err(CommitError::Retry(why)) => {
                if failing_since.is_none() {
                    warn!(
                        error = why,
                        held = pending.len(),
                        "the master's state store cannot commit; holding its writes and retrying"
                    );
                    failing_since = Some(std::time::Instant::now());
                }
                health.failing.store(true, Ordering::Relaxed);
                retry = (retry * 2).min(RETRY_MAX);
            }
            Err(CommitError::Fenced(why)) => {
                error!(
                    error = why,
                    dropped = pending.len(),
                    "the master's state store is fenced: another leader owns the state"
                );
                health.fenced.send_replace(Some(why));
                return;
            }
        }
        health.pending.store(pending.len(), Ordering::Relaxed);
    }
}
