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
    topology::{Topology, Views},
};

/// How often views are rebuilt (and WebSocket diffs sent) at most: twice a second, so a change
/// reaches WebSocket clients within a second.
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
    pub pki: Pki,
    pub data_dir: PathBuf,
    pub limits: proto::Limits,
    /// Encoded unfiltered views, for the views they were encoded from.
    rendered: Mutex<(Arc<Views>, HashMap<String, axum::body::Bytes>)>,
    /// When each view was last asked for unfiltered: those are encoded at every refresh, so
    /// requests never wait for an encoding.
    wanted: Mutex<HashMap<String, std::time::Instant>>,
}

impl Shared {
    pub fn new(pki: Pki, data_dir: PathBuf, limits: proto::Limits) -> Arc<Self> {
        Arc::new(Self {
            topology: Mutex::new(Topology::default()),
            views: watch::Sender::new(Arc::default()),
            metrics: Metrics::default(),
            pki,
            data_dir,
            limits,
            rendered: Mutex::new((Arc::default(), HashMap::new())),
            wanted: Mutex::default(),
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

    /// Expires stale agents and rebuilds the views if anything changed. Blocking: the build
    /// runs without holding the topology, so agents keep reporting meanwhile.
    pub fn refresh(&self) {
        let changed = {
            let mut topology = self.topology();
            topology.expire(now_ms());
            topology.changed()
        };
        let Some(agents) = changed else { return };
        let views = Arc::new(crate::topology::build(&agents));
        let wanted: Vec<String> = {
            let mut wanted = self
                .wanted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            wanted.retain(|_, at| at.elapsed() < WANTED_FOR);
            wanted.keys().cloned().collect()
        };
        for name in wanted {
            if let Some(view) = views.get(&name) {
                let _ = self.rendered(&views, &name, || crate::http::render_view(&name, view));
            }
        }
        self.views.send_replace(views);
    }
}
