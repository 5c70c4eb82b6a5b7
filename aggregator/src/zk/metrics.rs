//! The sync engine's Prometheus metrics: writes, conflicts (and those held for an
//! operator), errors, resyncs, and the lag from a change on one side to its write on the
//! other.

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// The engine's metrics, under `strata_zk_sync_`.
#[derive(Debug)]
pub struct SyncMetrics {
    pub writes: Counter,
    pub conflicts: Counter,
    pub held: Gauge,
    pub errors: Counter,
    pub resyncs: Counter,
    /// From a change's mtime on one side to its write on the other.
    pub lag_seconds: Histogram,
}

impl SyncMetrics {
    pub fn new() -> Self {
        Self {
            writes: Counter::default(),
            conflicts: Counter::default(),
            held: Gauge::default(),
            errors: Counter::default(),
            resyncs: Counter::default(),
            lag_seconds: Histogram::new([
                0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
        }
    }

    /// Registers the metrics in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("strata_zk_sync");
        sub.register(
            "writes",
            "Nodes written to either side",
            self.writes.clone(),
        );
        sub.register(
            "conflicts",
            "Concurrent changes to one node on both sides",
            self.conflicts.clone(),
        );
        sub.register(
            "held",
            "Conflicts waiting for an operator",
            self.held.clone(),
        );
        sub.register("errors", "Reads or writes that failed", self.errors.clone());
        sub.register(
            "resyncs",
            "Full comparisons of both trees",
            self.resyncs.clone(),
        );
        sub.register(
            "lag_seconds",
            "From a change on one side to its write on the other",
            self.lag_seconds.clone(),
        );
    }
}

impl Default for SyncMetrics {
    fn default() -> Self {
        Self::new()
    }
}
