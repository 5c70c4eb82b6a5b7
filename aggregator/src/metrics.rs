//! The aggregator's Prometheus metrics, served at `GET /metrics`.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Why a report or connection was refused, as a metric label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    pub reason: String,
}

/// Counters and gauges of ingest.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub reports: Counter,
    pub report_bytes: Counter,
    pub refused: Family<RefusalLabels, Counter>,
    pub agents_connected: Gauge,
    pub merge_seconds: Histogram,
    pub view_build_seconds: Histogram,
    pub master_offers: Counter,
    pub allocation_seconds: Histogram,
    pub autoscale_changes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("strata_aggregator");
        let reports = Counter::default();
        let report_bytes = Counter::default();
        let refused = Family::<RefusalLabels, Counter>::default();
        let agents_connected = Gauge::default();
        let buckets = [
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1,
        ];
        let merge_seconds = Histogram::new(buckets);
        let view_build_seconds =
            Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]);
        registry.register("reports", "Reports applied", reports.clone());
        registry.register(
            "report_bytes",
            "Bytes of reports received",
            report_bytes.clone(),
        );
        registry.register(
            "refused",
            "Reports and connections refused, by reason",
            refused.clone(),
        );
        registry.register(
            "agents_connected",
            "Agents with a live connection",
            agents_connected.clone(),
        );
        registry.register(
            "merge_seconds",
            "Time to decode and merge one report",
            merge_seconds.clone(),
        );
        registry.register(
            "view_build_seconds",
            "Time to rebuild and encode the views after a change",
            view_build_seconds.clone(),
        );
        let master_offers = Counter::default();
        let allocation_seconds = Histogram::new(buckets);
        registry.register(
            "master_offers",
            "Offers the master made",
            master_offers.clone(),
        );
        registry.register(
            "allocation_seconds",
            "Time of one allocation cycle and the master's periodic checks",
            allocation_seconds.clone(),
        );
        let autoscale_changes = Counter::default();
        registry.register(
            "autoscale_changes",
            "Instance counts changed by apps' scale policies",
            autoscale_changes.clone(),
        );
        Self {
            registry,
            autoscale_changes,
            master_offers,
            allocation_seconds,
            reports,
            report_bytes,
            refused,
            agents_connected,
            merge_seconds,
            view_build_seconds,
        }
    }
}

impl Metrics {
    pub fn refuse(&self, reason: &str) {
        self.refused
            .get_or_create(&RefusalLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}
