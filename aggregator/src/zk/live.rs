//! Live sync between two clusters' subtrees: A to B, or both ways. Each side is watched
//! with a persistent recursive watch (ZooKeeper 3.6+); changes are taken in batches, both
//! sides' nodes are read for the whole batch at once (pipelined), [`decide`] says what to
//! do with each, and the writes go out pipelined, in order. The engine's own writes come
//! back as events from the other side and stop there, since both sides then hold the same
//! content.
//!
//! A resync (at start, after a reconnect, where watch events may have been lost, after a
//! session expiry, with a new session, after writes that failed, after a burst of changes
//! once things are quiet (at most every 10 s), and every five minutes)
//! reads both trees, decides every path that differs,
//! and writes in `multi` batches ([`super::copy`]); then both trees are read again to note
//! where every path stands, so that later changes are told apart from conflicts.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use futures_util::future::join_all;
use tokio::sync::mpsc;
use tracing::{info, warn};
use zookeeper_client as zk;

pub use super::sync_config::SyncConfig;
use super::{
    ZkError, connect, copy,
    decide::{Action, Change, InStep, Side, changed_side, concurrent, decide},
    metrics::SyncMetrics,
    read::{read_node, read_tree},
    tree::{AclEntry, Node, Tree},
    url::ZkUrl,
    write,
};
use crate::state::now_ms;

/// Changes taken into one batch at most.
const BATCH: usize = 4096;
/// How soon a batch with failed writes is followed by a resync.
const RESYNC_AFTER_ERRORS: Duration = Duration::from_millis(500);
/// Quiet time after a burst of changes before the trees are compared.
const QUIET: Duration = Duration::from_secs(1);
/// The least time between two such comparisons.
const SETTLE_EVERY: Duration = Duration::from_secs(10);
/// How often both trees are compared in full anyway.
const ANTI_ENTROPY: Duration = Duration::from_secs(300);

/// A conflict held for an operator (policy `manual`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub a: Option<Node>,
    pub b: Option<Node>,
}

enum Input {
    Changed(Side, String),
    Resync,
}

/// The running engine.
#[derive(Debug)]
pub struct Engine {
    pub config: SyncConfig,
    clients: Mutex<[zk::Client; 2]>,
    in_step: Mutex<HashMap<String, InStep>>,
    held: Mutex<BTreeMap<String, Held>>,
    /// A comparison of both trees has completed.
    passed: std::sync::atomic::AtomicBool,
    pub metrics: SyncMetrics,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

impl Engine {
    /// Connects to both sides.
    pub async fn connect(config: SyncConfig) -> Result<Arc<Self>, ZkError> {
        let a = connect(&config.a).await?;
        let b = connect(&config.b).await?;
        Ok(Arc::new(Self {
            config,
            clients: Mutex::new([a, b]),
            in_step: Mutex::default(),
            held: Mutex::default(),
            passed: std::sync::atomic::AtomicBool::new(false),
            metrics: SyncMetrics::new(),
        }))
    }

    fn client(&self, side: Side) -> zk::Client {
        lock(&self.clients)[index(side)].clone()
    }

    fn url(&self, side: Side) -> &ZkUrl {
        match side {
            Side::A => &self.config.a,
            Side::B => &self.config.b,
        }
    }

    /// The engine's own ZooKeeper sessions (A's, then B's).
    pub fn session_ids(&self) -> [i64; 2] {
        let clients = lock(&self.clients);
        [clients[0].session_id().0, clients[1].session_id().0]
    }

    /// Conflicts waiting for an operator.
    pub fn held(&self) -> BTreeMap<String, Held> {
        lock(&self.held).clone()
    }

    /// Settles a held conflict: `keep`'s version goes to the other side.
    pub async fn resolve(&self, path: &str, keep: Side) -> Result<bool, ZkError> {
        let Some(held) = lock(&self.held).remove(path) else {
            return Ok(false);
        };
        self.metrics.held.set(lock(&self.held).len() as i64);
        let state = match keep {
            Side::A => held.a,
            Side::B => held.b,
        };
        self.write(keep.other(), path, state.as_ref(), None).await?;
        Ok(true)
    }

    /// Reads both trees, settles every difference, and notes where each path stands.
    pub async fn resync(&self) -> Result<copy::Report, ZkError> {
        self.resync_and_compare().await.map(|(report, _)| report)
    }

    /// A resync, and the paths that still differ once it is done.
    async fn resync_and_compare(&self) -> Result<(copy::Report, Vec<String>), ZkError> {
        self.metrics.resyncs.inc();
        let (a, b) = (self.client(Side::A), self.client(Side::B));
        let (tree_a, tree_b) =
            futures_util::try_join!(read_tree(&a, &self.config.a), read_tree(&b, &self.config.b))?;
        let mut want_a = tree_a.clone();
        let mut want_b = tree_b.clone();
        let now = now_ms() as i64;
        let in_step = lock(&self.in_step).clone();
        let a_wins = self.config.a_wins_first_pass
            && !self.passed.load(std::sync::atomic::Ordering::Relaxed);
        for (path, _) in tree_a.differences(&tree_b) {
            if self.config.skipped(&path) {
                continue;
            }
            let (na, nb) = (tree_a.nodes.get(&path), tree_b.nodes.get(&path));
            let step = in_step.get(&path).copied();
            let change = Change {
                from: changed_side(na, step),
                a: na,
                b: nb,
                in_step: step,
                seen_ms: now,
            };
            let action = if a_wins {
                Action::Copy { to: Side::B }
            } else {
                decide(&change, self.config.policy, self.config.both_ways)
            };
            match action {
                Action::Nothing => {}
                Action::Hold => self.hold(&path, na, nb),
                Action::Copy { to } => {
                    let (want, from_tree) = match to {
                        Side::A => (&mut want_a, &tree_b),
                        Side::B => (&mut want_b, &tree_a),
                    };
                    match from_tree.nodes.get(&path) {
                        Some(node) => {
                            want.nodes.insert(path.clone(), node.clone());
                        }
                        None => {
                            want.nodes.remove(&path);
                        }
                    }
                }
            }
        }
        let plan_b = copy::plan(&want_b, &tree_b, true);
        let mut report = copy::apply(&b, &self.config.b, &plan_b).await?;
        if self.config.both_ways {
            let plan_a = copy::plan(&want_a, &tree_a, true);
            let back = copy::apply(&a, &self.config.a, &plan_a).await?;
            report.created += back.created;
            report.updated += back.updated;
            report.deleted += back.deleted;
            report.errors.extend(back.errors);
        }
        self.metrics
            .writes
            .inc_by((report.created + report.updated + report.deleted) as u64);
        self.metrics.errors.inc_by(report.errors.len() as u64);
        let (after_a, after_b) =
            futures_util::try_join!(read_tree(&a, &self.config.a), read_tree(&b, &self.config.b))?;
        self.note_in_step(&after_a, &after_b);
        self.passed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok((report, self.differing(&after_a, &after_b)))
    }

    /// The paths whose nodes differ between the two sides now (ephemeral nodes and skipped
    /// subtrees aside).
    pub async fn differences(&self) -> Result<Vec<String>, ZkError> {
        let (a, b) = (self.client(Side::A), self.client(Side::B));
        let (tree_a, tree_b) =
            futures_util::try_join!(read_tree(&a, &self.config.a), read_tree(&b, &self.config.b))?;
        Ok(self.differing(&tree_a, &tree_b))
    }

    /// The paths whose nodes differ between `a` and `b`, skipped subtrees aside.
    fn differing(&self, a: &Tree, b: &Tree) -> Vec<String> {
        a.differences(b)
            .into_iter()
            .map(|(path, _)| path)
            .filter(|path| !self.config.skipped(path))
            .collect()
    }

    /// Resyncs until both sides are alike (for a hand-over, once writers have stopped), for
    /// at most `patience`; the paths still different then.
    pub async fn settle(&self, patience: Duration) -> Result<Vec<String>, ZkError> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let (_, left) = self.resync_and_compare().await?;
            if left.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(left);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn note_in_step(&self, a: &Tree, b: &Tree) {
        let mut in_step = lock(&self.in_step);
        in_step.clear();
        for (path, na) in &a.nodes {
            if let Some(nb) = b.nodes.get(path).filter(|nb| nb.same_content(na)) {
                in_step.insert(
                    path.clone(),
                    InStep {
                        a_mzxid: na.mzxid,
                        b_mzxid: nb.mzxid,
                    },
                );
            }
        }
    }

    fn hold(&self, path: &str, a: Option<&Node>, b: Option<&Node>) {
        self.metrics.conflicts.inc();
        let mut held = lock(&self.held);
        held.insert(
            path.to_owned(),
            Held {
                a: a.cloned(),
                b: b.cloned(),
            },
        );
        self.metrics.held.set(held.len() as i64);
        warn!(
            path,
            "conflicting changes on both sides held for an operator"
        );
    }

    async fn write(
        &self,
        to: Side,
        path: &str,
        state: Option<&Node>,
        known_acl: Option<&[AclEntry]>,
    ) -> Result<Option<i64>, ZkError> {
        let abs = self.url(to).absolute(path);
        write::put(&self.client(to), &abs, state, known_acl).await
    }

    /// Settles one batch of changes; returns how many could not be settled.
    async fn process(&self, changes: Vec<(Side, String)>) -> usize {
        let mut failed = 0;
        let mut last: BTreeMap<String, Side> = BTreeMap::new();
        let mut order = Vec::new();
        for (side, path) in changes {
            if self.config.skipped(&path) {
                continue;
            }
            if last.insert(path.clone(), side).is_none() {
                order.push(path);
            }
        }
        let (a, b) = (self.client(Side::A), self.client(Side::B));
        let paths_a: Vec<String> = order.iter().map(|p| self.config.a.absolute(p)).collect();
        let paths_b: Vec<String> = order.iter().map(|p| self.config.b.absolute(p)).collect();
        let reads_a = paths_a.iter().map(|p| read_node(&a, p));
        let reads_b = paths_b.iter().map(|p| read_node(&b, p));
        let (got_a, got_b) = futures_util::join!(join_all(reads_a), join_all(reads_b));
        let now = now_ms() as i64;
        let mut writes = Vec::new();
        for ((path, ra), rb) in order.iter().zip(got_a).zip(got_b) {
            let (na, nb) = match (ra, rb) {
                (Ok(na), Ok(nb)) => (na.map(|(n, _)| n), nb.map(|(n, _)| n)),
                (Err(err), _) | (_, Err(err)) => {
                    self.metrics.errors.inc();
                    failed += 1;
                    warn!(error = %err, "a change could not be read; a resync will settle it");
                    continue;
                }
            };
            let step = lock(&self.in_step).get(path).copied();
            let change = Change {
                from: last[path],
                a: na.as_ref(),
                b: nb.as_ref(),
                in_step: step,
                seen_ms: now,
            };
            match decide(&change, self.config.policy, self.config.both_ways) {
                Action::Nothing => {
                    if let (Some(x), Some(y)) = (&na, &nb) {
                        lock(&self.in_step).insert(
                            path.clone(),
                            InStep {
                                a_mzxid: x.mzxid,
                                b_mzxid: y.mzxid,
                            },
                        );
                    }
                }
                Action::Hold => self.hold(path, na.as_ref(), nb.as_ref()),
                Action::Copy { to } => {
                    if self.config.both_ways && concurrent(&change) {
                        self.metrics.conflicts.inc();
                    }
                    let source = change.node(to.other()).cloned();
                    let target_acl = change.node(to).map(|t| t.acl.clone());
                    writes.push((path.clone(), to, source, target_acl));
                }
            }
        }
        // Writes to unrelated paths go out together; a write whose ancestor or descendant is
        // written in the same batch waits for the ones before it, so a parent's delete and a
        // child's create never interleave.
        let paths: std::collections::BTreeSet<&str> =
            writes.iter().map(|(p, ..)| p.as_str()).collect();
        let related = |path: &str| {
            let below = format!("{path}/");
            let mut up = path;
            let ancestor = std::iter::from_fn(|| {
                let (parent, _) = up.rsplit_once('/')?;
                up = parent;
                Some(parent)
            })
            .any(|a| paths.contains(a));
            ancestor
                || paths
                    .range(below.as_str()..)
                    .next()
                    .is_some_and(|p| p.starts_with(&below))
        };
        let (free, chained): (Vec<usize>, Vec<usize>) =
            (0..writes.len()).partition(|&i| !related(&writes[i].0));
        let mut done: Vec<Option<Result<Option<i64>, ZkError>>> = vec![None; writes.len()];
        let together = join_all(free.iter().map(|&i| {
            let (path, to, source, acl) = &writes[i];
            self.write(*to, path, source.as_ref(), acl.as_deref())
        }))
        .await;
        for (&i, result) in free.iter().zip(together) {
            done[i] = Some(result);
        }
        for i in chained {
            let (path, to, source, acl) = &writes[i];
            done[i] = Some(self.write(*to, path, source.as_ref(), acl.as_deref()).await);
        }
        let done = done.into_iter().flatten();
        for ((path, to, source, _), result) in writes.iter().zip(done) {
            match result {
                Ok(written) => {
                    self.metrics.writes.inc();
                    let mut in_step = lock(&self.in_step);
                    match (source, written) {
                        (Some(src), Some(mzxid)) => {
                            let lag = (now_ms() as i64 - src.mtime_ms).max(0) as f64 / 1000.0;
                            self.metrics.lag_seconds.observe(lag);
                            let (a_mzxid, b_mzxid) = match to {
                                Side::B => (src.mzxid, mzxid),
                                Side::A => (mzxid, src.mzxid),
                            };
                            in_step.insert(path.clone(), InStep { a_mzxid, b_mzxid });
                        }
                        _ => {
                            in_step.remove(path);
                        }
                    }
                }
                Err(err) => {
                    self.metrics.errors.inc();
                    failed += 1;
                    warn!(error = %err, "a change could not be written; a resync will settle it");
                }
            }
        }
        failed
    }

    /// Runs until the process ends: a resync, then live changes; reconnects and resyncs
    /// after any loss.
    pub async fn run(self: Arc<Self>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sides: &[Side] = if self.config.both_ways {
            &[Side::A, Side::B]
        } else {
            &[Side::A]
        };
        // The watches and the timer end with this future (a stopped sync stops them too).
        let mut tasks = tokio::task::JoinSet::new();
        for side in sides {
            tasks.spawn(self.clone().watch(*side, tx.clone()));
        }
        // Each watch asks for a resync once it is placed, so nothing falls between the two.
        // Anti-entropy: a full comparison now and then, whatever the watches said.
        let periodic = tx.clone();
        tasks.spawn(async move {
            let mut every = tokio::time::interval(ANTI_ENTROPY);
            every.tick().await;
            loop {
                every.tick().await;
                if periodic.send(Input::Resync).is_err() {
                    return;
                }
            }
        });
        let mut busy_since_resync = false;
        let mut last_resync = tokio::time::Instant::now();
        loop {
            // After a burst of changes and a quiet second, compare the trees once (at most
            // every SETTLE_EVERY): whatever a race between the clusters' own writers and the
            // engine left behind is settled then, not at the next anti-entropy pass.
            let first = if busy_since_resync {
                match tokio::time::timeout(QUIET, rx.recv()).await {
                    Ok(first) => first,
                    Err(_) if last_resync.elapsed() >= SETTLE_EVERY => Some(Input::Resync),
                    Err(_) => tokio::time::timeout_at(last_resync + SETTLE_EVERY, rx.recv())
                        .await
                        .unwrap_or(Some(Input::Resync)),
                }
            } else {
                rx.recv().await
            };
            let Some(first) = first else { return };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(input) => batch.push(input),
                    Err(_) => break,
                }
            }
            if batch.iter().any(|i| matches!(i, Input::Resync)) {
                busy_since_resync = false;
                last_resync = tokio::time::Instant::now();
                loop {
                    match self.resync().await {
                        Ok(report) => {
                            info!(
                                created = report.created,
                                updated = report.updated,
                                deleted = report.deleted,
                                failed = report.errors.len(),
                                seconds = report.seconds,
                                "resynced"
                            );
                            for error in report.errors.iter().take(5) {
                                warn!(%error, "a write of the resync failed; the next one tries again");
                            }
                            break;
                        }
                        Err(err) => {
                            self.metrics.errors.inc();
                            warn!(error = %err, "resync failed; trying again in 1 s");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
                continue;
            }
            let changes = batch
                .into_iter()
                .filter_map(|i| match i {
                    Input::Changed(side, path) => Some((side, path)),
                    Input::Resync => None,
                })
                .collect();
            busy_since_resync = true;
            if self.process(changes).await > 0 {
                // Settle what failed (a race with the clusters' own writers) from both trees.
                let tx = tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(RESYNC_AFTER_ERRORS).await;
                    let _ = tx.send(Input::Resync);
                });
            }
        }
    }

    /// Watches one side forever, reconnecting with a new session when one expires.
    async fn watch(self: Arc<Self>, side: Side, tx: mpsc::UnboundedSender<Input>) {
        let url = self.url(side).clone();
        loop {
            let client = self.client(side);
            let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
            if url.root != "/" {
                let _ = client.mkdir(&url.root, &open).await;
            }
            let mut watcher = match client
                .watch(&url.root, zk::AddWatchMode::PersistentRecursive)
                .await
            {
                Ok(watcher) => watcher,
                Err(err) => {
                    warn!(%url, error = %err, "cannot watch; reconnecting in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    self.reconnect(side).await;
                    continue;
                }
            };
            let _ = tx.send(Input::Resync);
            let expired = loop {
                let event = watcher.changed().await;
                match event.event_type {
                    zk::EventType::Session if event.session_state.is_terminated() => break true,
                    // Back after a disconnect: the watch is placed anew (after a server
                    // restart the re-registered one was seen to stay silent) and the trees
                    // compared, since changes made meanwhile may have no event.
                    zk::EventType::Session
                        if event.session_state == zk::SessionState::SyncConnected =>
                    {
                        break false;
                    }
                    zk::EventType::Session => {}
                    _ => {
                        if let Some(rel) = url.relative(&event.path)
                            && !rel.starts_with("/zookeeper")
                        {
                            let _ = tx.send(Input::Changed(side, rel.to_owned()));
                        }
                    }
                }
            };
            drop(watcher);
            if expired {
                warn!(%url, "session ended; reconnecting with a new one");
                self.reconnect(side).await;
            }
        }
    }

    async fn reconnect(&self, side: Side) {
        loop {
            match connect(self.url(side)).await {
                Ok(client) => {
                    lock(&self.clients)[index(side)] = client;
                    return;
                }
                Err(err) => {
                    warn!(error = %err, "reconnecting failed; again in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
