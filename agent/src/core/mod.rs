//! The agent's pure core: what the node looks like, built only from [`Event`]s and the time
//! passed in. No I/O, no clock, explicit bounds; everything refused is counted.

pub mod connections;
pub mod containers;
pub mod events;
pub mod host;
pub mod limits;
pub mod processes;
pub mod snapshot;

use std::collections::HashSet;

use serde::Serialize;

use self::{
    connections::ConnectionTable, containers::ContainerTable, host::HostFacts,
    processes::ProcessTable,
};
pub use self::{
    events::{Event, KernelDrops},
    limits::Limits,
    snapshot::{CollectionMode, Snapshot},
};
use crate::model::{BootNanos, SocketPair};

/// Events refused because a bounded table was full, by table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Overflow {
    pub processes: u64,
    pub connections: u64,
    pub listeners: u64,
    pub nat_mappings: u64,
    pub containers: u64,
    pub cgroups: u64,
}

/// Everything that was seen but could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Drops {
    /// Counted by the eBPF programs (ring buffers full, maps full, unreadable records).
    pub kernel_proc_ring_full: u64,
    pub kernel_tcp_ring_full: u64,
    pub kernel_stats_map_full: u64,
    pub kernel_record_read_failed: u64,
    /// Conntrack event overruns (followed by a full re-dump).
    pub conntrack_overruns: u64,
    /// Refused by the agent's own bounded tables.
    pub table_full: Overflow,
}

impl Drops {
    /// Events lost for good (an overrun is repaired by the re-dump that follows).
    pub fn lost(&self) -> u64 {
        let t = &self.table_full;
        self.kernel_proc_ring_full
            + self.kernel_tcp_ring_full
            + self.kernel_stats_map_full
            + self.kernel_record_read_failed
            + t.processes
            + t.connections
            + t.listeners
            + t.nat_mappings
            + t.containers
            + t.cgroups
    }
}

/// The node as the agent sees it.
#[derive(Debug)]
pub struct NodeState {
    limits: Limits,
    processes: ProcessTable,
    connections: ConnectionTable,
    containers: ContainerTable,
    host: Option<HostFacts>,
    drops: Drops,
    /// cgroup ids seen in events whose path is not known yet, for the collector to resolve.
    unresolved_cgroups: HashSet<u64>,
}

impl NodeState {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            processes: ProcessTable::new(limits.max_processes),
            connections: ConnectionTable::new(
                limits.max_connections,
                limits.max_listeners,
                limits.max_nat_mappings,
            ),
            containers: ContainerTable::new(limits.max_containers, limits.max_cgroups),
            host: None,
            drops: Drops::default(),
            unresolved_cgroups: HashSet::new(),
        }
    }

    pub fn processes(&self) -> &ProcessTable {
        &self.processes
    }

    pub fn connections(&self) -> &ConnectionTable {
        &self.connections
    }

    pub fn containers(&self) -> &ContainerTable {
        &self.containers
    }

    pub fn drops(&self) -> &Drops {
        &self.drops
    }

    /// Applies one event seen at `now`.
    pub fn apply(&mut self, event: Event, now: BootNanos) {
        let cgroup = match &event {
            Event::ProcessExec(exec) => exec.cgroup_id,
            Event::ConnectionOpened { owner, .. } => owner.as_ref().and_then(|o| o.cgroup_id),
            _ => None,
        };
        if let Some(id) = cgroup
            && !self.containers.knows_cgroup(id)
            && self.unresolved_cgroups.len() < self.limits.max_cgroups
        {
            self.unresolved_cgroups.insert(id);
        }
        let overflow = &mut self.drops.table_full;
        match event {
            Event::ProcessExec(exec) => {
                if self.processes.exec(exec).is_err() {
                    overflow.processes += 1;
                }
            }
            Event::ProcessExit { pid } => self.processes.exit(pid, now),
            Event::ProcessDetails(details) => {
                if self.processes.details(details, now).is_err() {
                    overflow.processes += 1;
                }
            }
            Event::ProcessScanComplete { live } => self.processes.scan_complete(&live, now),
            Event::ConnectionOpened {
                pair,
                direction,
                owner,
            } => {
                if self
                    .connections
                    .opened(pair, direction, owner, now)
                    .is_err()
                {
                    overflow.connections += 1;
                }
            }
            Event::ConnectionClosed { pair } => self.connections.closed(&pair, now),
            Event::Listening { local, owner } => {
                if !self.connections.listening(local, owner) {
                    overflow.listeners += 1;
                }
            }
            Event::SocketsScanned(sockets) => {
                overflow.connections += self.connections.scanned(sockets, now) as u64;
            }
            Event::ConnectionCounters(counters) => self.connections.counters(counters),
            Event::NatAdded(mapping) => {
                if !self.connections.nat_added(mapping) {
                    overflow.nat_mappings += 1;
                }
            }
            Event::NatRemoved(mapping) => self.connections.nat_removed(&mapping),
            Event::NatResync(mappings) => {
                overflow.nat_mappings += self.connections.nat_resync(mappings) as u64;
            }
            Event::ConntrackOverrun => self.drops.conntrack_overruns += 1,
            Event::ContainerUpdated(container) => {
                if !self.containers.updated(container) {
                    overflow.containers += 1;
                }
            }
            Event::ContainerRemoved { id } => self.containers.removed(&id),
            Event::ContainersResync(containers) => {
                overflow.containers += self.containers.resync(containers) as u64;
            }
            Event::CgroupPath { id, path } => {
                if !self.containers.cgroup_path(id, path) {
                    overflow.cgroups += 1;
                }
            }
            Event::Host(facts) => self.host = Some(facts),
            Event::KernelDrops(kernel) => {
                self.drops.kernel_proc_ring_full = kernel.proc_ring_full;
                self.drops.kernel_tcp_ring_full = kernel.tcp_ring_full;
                self.drops.kernel_stats_map_full = kernel.stats_map_full;
                self.drops.kernel_record_read_failed = kernel.record_read_failed;
            }
        }
    }

    /// Forgets exited processes and closed connections older than the retention window.
    pub fn expire(&mut self, now: BootNanos) {
        self.processes.expire(now, self.limits.retention_ns);
        self.connections.expire(now, self.limits.retention_ns);
    }

    /// cgroup ids that events referred to and whose path is not known, handed over once each
    /// to the collector to resolve.
    pub fn take_unresolved_cgroups(&mut self) -> HashSet<u64> {
        std::mem::take(&mut self.unresolved_cgroups)
    }

    /// Open connections whose counters should be refreshed.
    pub fn open_connections(&self) -> Vec<SocketPair> {
        self.connections.open_pairs()
    }

    /// The container a process belongs to, through its cgroup.
    pub fn container_of_process(&self, pid: u32) -> Option<&str> {
        let process = self.processes.get(pid)?;
        self.containers
            .container_of_paths(process.cgroup_paths.iter().map(String::as_str))
            .or_else(|| {
                self.containers
                    .container_of_paths(process.cgroup.as_deref())
            })
            .or_else(|| {
                process
                    .cgroup_id
                    .and_then(|id| self.containers.container_of_cgroup(id))
            })
    }

    /// A serialisable picture of the node at `now`.
    pub fn snapshot(&self, mode: &CollectionMode, observed_seconds: f64) -> Snapshot {
        snapshot::build(self, mode, observed_seconds)
    }

    pub fn host(&self) -> Option<&HostFacts> {
        self.host.as_ref()
    }
}

#[cfg(test)]
mod tests;
