//! State shared by the aggregator's tasks: the topology, the latest views, metrics, and the
//! certificate authority.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::sync::watch;

use crate::{
    metrics::Metrics,
    pki::Pki,
    topology::{Topology, Views, views::PROCESS_VIEWS},
};

/// How often views are rebuilt at most: twice a second, and never more than a third of the
/// time (large topologies are rebuilt less often). Rebuilding is most of the aggregator's CPU
/// (measured with `aggregator-load`).
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(500);

/// How long a view stays pre-encoded after it was last asked for.
const WANTED_FOR: Duration = Duration::from_secs(60);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Everything the ingest and HTTP tasks share.
#[derive(Debug)]
pub struct Shared {
    topology: Mutex<Topology>,
    views: watch::Sender<Arc<Views>>,
    pub metrics: Metrics,
    pub pki: Arc<Pki>,
    pub data_dir: PathBuf,
    pub limits: proto::Limits,
    pub master: Arc<crate::master::Master>,
    /// The agents connected now, and how they found this aggregator.
    pub links: crate::links::Links,
    /// Encoded unfiltered views, for the views they were encoded from.
    rendered: Mutex<(Arc<Views>, HashMap<String, axum::body::Bytes>)>,
    /// When each view was last asked for: those are built (the process views are skipped
    /// otherwise) and encoded at every refresh, so requests never wait.
    wanted: Mutex<HashMap<String, std::time::Instant>>,
    /// WebSocket clients per view.
    watchers: Mutex<HashMap<String, usize>>,
}

impl Shared {
    pub fn new(
        pki: Arc<Pki>,
        data_dir: PathBuf,
        limits: proto::Limits,
        master: Arc<crate::master::Master>,
    ) -> Arc<Self> {
        Arc::new(Self {
            topology: Mutex::new(Topology::default()),
            views: watch::Sender::new(Arc::default()),
            metrics: Metrics::default(),
            pki,
            data_dir,
            limits,
            master,
            links: crate::links::Links::default(),
            rendered: Mutex::new((Arc::default(), HashMap::new())),
            wanted: Mutex::default(),
            watchers: Mutex::default(),
        })
    }

    /// The topology, for a short critical section.
    pub fn topology(&self) -> MutexGuard<'_, Topology> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.topology
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The views as of the last refresh.
    pub fn views(&self) -> Arc<Views> {
        self.views.borrow().clone()
    }

    pub fn subscribe_views(&self) -> watch::Receiver<Arc<Views>> {
        self.views.subscribe()
    }

    /// The encoded unfiltered view `name` of `views`, encoded by `render` at most once.
    pub fn rendered<E>(
        &self,
        views: &Arc<Views>,
        name: &str,
        render: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<axum::body::Bytes, E> {
        let lock = || {
            self.rendered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        self.wanted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), std::time::Instant::now());
        {
            let cache = lock();
            if Arc::ptr_eq(&cache.0, views)
                && let Some(bytes) = cache.1.get(name)
            {
                return Ok(bytes.clone());
            }
        }
        let bytes = axum::body::Bytes::from(render()?);
        let mut cache = lock();
        if !Arc::ptr_eq(&cache.0, views) {
            *cache = (views.clone(), HashMap::new());
        }
        cache.1.insert(name.to_owned(), bytes.clone());
        Ok(bytes)
    }

    /// Notes that `name` is being looked at.
    pub fn want(&self, name: &str) {
        lock(&self.wanted).insert(name.to_owned(), std::time::Instant::now());
    }

    /// A WebSocket client starts (`+1`) or stops (`-1`) watching `name`.
    pub fn watching(&self, name: &str, delta: isize) {
        let mut watchers = lock(&self.watchers);
        let count = watchers.entry(name.to_owned()).or_default();
        *count = count.saturating_add_signed(delta);
    }

    /// Views looked at recently or watched.
    fn wanted_views(&self) -> Vec<String> {
        let mut wanted = lock(&self.wanted);
        wanted.retain(|_, at| at.elapsed() < WANTED_FOR);
        let watched = lock(&self.watchers);
        let mut names: Vec<String> = wanted.keys().cloned().collect();
        names.extend(
            watched
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(name, _)| name.clone()),
        );
        names.sort();
        names.dedup();
        names
    }

    /// Makes sure view `name` is built (the process views are skipped while nobody looks).
    /// Blocking.
    pub fn ensure_built(&self, name: &str) {
        self.want(name);
        if !self.views().get(name).is_some_and(|v| v.built) {
            self.rebuild(true);
        }
    }

    /// Expires stale agents and rebuilds the views if anything changed. Blocking: the build
    /// runs without holding the topology, so agents keep reporting meanwhile.
    pub fn refresh(&self) {
        self.rebuild(false);
    }

    fn rebuild(&self, force: bool) {
        let wanted = self.wanted_views();
        let process_views = wanted.iter().any(|w| PROCESS_VIEWS.contains(&w.as_str()));
        let missing = process_views && !self.views().get(PROCESS_VIEWS[0]).is_some_and(|v| v.built);
        let agents = {
            let mut topology = self.topology();
            topology.expire(now_ms());
            if force || missing {
                Some(topology.all())
            } else {
                topology.changed()
            }
        };
        let Some(agents) = agents else { return };
        let started = std::time::Instant::now();
        let views = Arc::new(crate::topology::build(&agents, process_views));
        for name in &wanted {
            if let Some(view) = views.get(name).filter(|v| v.built) {
                let _ = self.rendered(&views, name, || crate::http::render_view(name, view));
            }
        }
        self.views.send_replace(views);
        self.metrics
            .view_build_seconds
            .observe(started.elapsed().as_secs_f64());
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
