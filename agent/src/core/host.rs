//! Facts about the host itself: identity, CPUs, memory, load and network interfaces.

use serde::Serialize;

use crate::model::Link;

/// What the agent knows about its host.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct HostFacts {
    pub hostname: String,
    pub kernel_release: String,
    pub os: Option<String>,
    pub cpus: u32,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    /// 1, 5 and 15 minute load averages.
    pub load_average: [f64; 3],
    pub uptime_seconds: f64,
    /// Busy share of all CPUs since the previous reading, in percent of one CPU times CPUs.
    pub cpu_usage_percent: Option<f64>,
    pub links: Vec<Link>,
}
