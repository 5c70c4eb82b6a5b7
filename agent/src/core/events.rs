//! The events that feed the core state. Every collector (eBPF ring buffers, procfs scans,
//! conntrack, Docker) turns what it sees into these; nothing else changes the state.

use std::net::SocketAddr;

use crate::model::{BootNanos, Container, Direction, NatMapping, SocketPair};

use super::host::HostFacts;

/// The process that owns a socket, as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub comm: Option<String>,
    pub cgroup_id: Option<u64>,
}

/// A process exec as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecEvent {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: String,
    pub filename: Option<String>,
    pub cgroup_id: Option<u64>,
    pub start: Option<BootNanos>,
}

/// What a procfs read of one process found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcessDetails {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: Option<String>,
    pub cmdline: Option<Vec<String>>,
    pub exe: Option<String>,
    pub uid: Option<u32>,
    pub user: Option<String>,
    /// The unified (v2) cgroup path, else the first v1 path.
    pub cgroup: Option<String>,
    /// Every cgroup path of the process (v1 and v2), to find its container.
    pub cgroup_paths: Vec<String>,
    pub start: Option<BootNanos>,
    /// User plus system CPU time consumed so far, in nanoseconds.
    pub cpu_time_ns: Option<u64>,
    pub rss_bytes: Option<u64>,
    /// Inode of the process's network namespace.
    pub netns: Option<u64>,
}

/// A TCP socket found by a procfs scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedSocket {
    pub pair: SocketPair,
    pub pid: Option<u32>,
    /// True for sockets in LISTEN.
    pub listening: bool,
}

/// Byte, packet and retransmit counters of one connection, since it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Counters {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub retransmits: u64,
}

/// Counts of events the kernel side could not record (cumulative, summed over CPUs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelDrops {
    pub proc_ring_full: u64,
    pub tcp_ring_full: u64,
    pub stats_map_full: u64,
    pub record_read_failed: u64,
}

/// Something a collector saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    ProcessExec(ExecEvent),
    ProcessExit {
        pid: u32,
    },
    /// Details read from procfs; creates the process when it is new.
    ProcessDetails(ProcessDetails),
    /// A full procfs scan finished: processes not in `live` are gone.
    ProcessScanComplete {
        live: Vec<u32>,
    },
    ConnectionOpened {
        pair: SocketPair,
        direction: Direction,
        owner: Option<Owner>,
    },
    ConnectionClosed {
        pair: SocketPair,
    },
    Listening {
        local: SocketAddr,
        owner: Owner,
    },
    /// A full procfs socket scan (all network namespaces); replaces the scanned view.
    SocketsScanned(Vec<ScannedSocket>),
    ConnectionCounters(Vec<(SocketPair, Counters)>),
    NatAdded(NatMapping),
    NatRemoved(NatMapping),
    /// A full conntrack dump: replaces the NAT table.
    NatResync(Vec<NatMapping>),
    /// Conntrack dropped events (socket overrun); a resync follows.
    ConntrackOverrun,
    ContainerUpdated(Container),
    ContainerRemoved {
        id: String,
    },
    /// The full container list: replaces the container table.
    ContainersResync(Vec<Container>),
    CgroupPath {
        id: u64,
        path: String,
    },
    Host(HostFacts),
    KernelDrops(KernelDrops),
}
