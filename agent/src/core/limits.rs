//! The explicit bounds of the core state. Whatever would exceed them is refused and counted.

/// Capacity and retention of each table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_processes: usize,
    pub max_connections: usize,
    pub max_nat_mappings: usize,
    pub max_containers: usize,
    pub max_listeners: usize,
    pub max_cgroups: usize,
    /// How long exited processes and closed connections stay visible, in nanoseconds.
    pub retention_ns: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_processes: 32 * 1024,
            max_connections: 64 * 1024,
            max_nat_mappings: 64 * 1024,
            max_containers: 4 * 1024,
            max_listeners: 16 * 1024,
            max_cgroups: 16 * 1024,
            retention_ns: 30_000_000_000,
        }
    }
}
