//! State shared by the aggregator's tasks: the topology, the latest views, metrics, and the
//! certificate authority.

use std::{
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

/// How often views are rebuilt (and WebSocket diffs sent) at most.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

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

    /// Expires stale agents and rebuilds the views if anything changed.
    pub fn refresh(&self) {
        let views = {
            let mut topology = self.topology();
            topology.expire(now_ms());
            topology.refresh()
        };
        self.views.send_if_modified(|current| {
            let changed = !Arc::ptr_eq(current, &views);
            *current = views;
            changed
        });
    }
}
