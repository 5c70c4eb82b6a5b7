//! Types shared by the strata agent and its eBPF programs: the records the kernel side writes
//! into ring buffers and maps, and the tracepoint layout user space hands to the kernel side.
//!
//! Everything here is `#[repr(C)]`, `no_std` and free of padding surprises: one definition of
//! each record, read on both sides. The `user` feature adds `aya::Pod` so user space can read
//! the records out of maps.
#![no_std]

/// Length of a task's `comm` in the kernel (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;
/// Bytes of an exec's filename kept in a [`ProcEvent`]; longer names are cut.
pub const FILENAME_LEN: usize = 128;

/// Names of the maps and programs in the eBPF object, so both sides agree.
pub mod names {
    pub const PROC_EVENTS: &str = "PROC_EVENTS";
    pub const TCP_EVENTS: &str = "TCP_EVENTS";
    pub const CONN_STATS: &str = "CONN_STATS";
    pub const DROPS: &str = "DROPS";
    pub const LAYOUT: &str = "LAYOUT";
    pub const EXEC: &str = "sched_process_exec";
    pub const FORK: &str = "sched_process_fork";
    pub const EXIT: &str = "sched_process_exit";
    pub const SOCK_STATE: &str = "inet_sock_set_state";
    pub const RETRANSMIT: &str = "tcp_retransmit_skb";
    pub const SKB_EGRESS: &str = "count_egress";
    pub const SKB_INGRESS: &str = "count_ingress";
}

/// Capacity of each bounded map and ring buffer. User space reads them from here too.
pub mod bounds {
    /// Bytes in the process event ring buffer.
    pub const PROC_RING_BYTES: u32 = 512 * 1024;
    /// Bytes in the TCP event ring buffer.
    pub const TCP_RING_BYTES: u32 = 512 * 1024;
    /// Forked tasks whose parent and fork time are remembered until they exec or exit.
    pub const FORKS: u32 = 32 * 1024;
    /// Sockets in `SYN_SENT` waiting to learn their owner.
    pub const CONNECTING: u32 = 16 * 1024;
    /// Listening sockets and their owners.
    pub const LISTENERS: u32 = 4 * 1024;
    /// TCP connections with byte and retransmit counters.
    pub const CONN_STATS: u32 = 64 * 1024;
}

/// Kinds of process events.
pub mod proc_kind {
    pub const EXEC: u32 = 1;
    pub const EXIT: u32 = 2;
}

/// Kinds of TCP events.
pub mod tcp_kind {
    /// An outgoing connection reached ESTABLISHED; owner is the process that called connect.
    pub const CONNECT: u32 = 1;
    /// An incoming connection reached ESTABLISHED; owner is the listener's process, if known.
    pub const ACCEPT: u32 = 2;
    /// An established connection reached CLOSE.
    pub const CLOSE: u32 = 3;
    /// A socket started listening; owner is the process that called listen.
    pub const LISTEN: u32 = 4;
}

/// Indexes of the per-CPU drop counters in the `DROPS` map.
pub mod drop_slot {
    /// A process event found the ring buffer full.
    pub const PROC_RING_FULL: u32 = 0;
    /// A TCP event found the ring buffer full.
    pub const TCP_RING_FULL: u32 = 1;
    /// A connection's counters could not be inserted into `CONN_STATS`.
    pub const STATS_MAP_FULL: u32 = 2;
    /// A tracepoint record could not be read at its configured offset.
    pub const RECORD_READ: u32 = 3;
    /// Number of slots.
    pub const COUNT: u32 = 4;
}

/// A process exec or exit, written to the `PROC_EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcEvent {
    /// One of [`proc_kind`].
    pub kind: u32,
    /// Thread-group id (the user-visible pid).
    pub pid: u32,
    /// Parent's pid as seen at fork; 0 when the fork happened before the agent started.
    pub ppid: u32,
    pub _pad: u32,
    /// cgroup v2 id of the task (`bpf_get_current_cgroup_id`).
    pub cgroup_id: u64,
    /// When the event happened, nanoseconds since boot.
    pub event_boot_ns: u64,
    /// When the process was forked, nanoseconds since boot; 0 when unknown.
    pub start_boot_ns: u64,
    /// NUL-padded task name.
    pub comm: [u8; COMM_LEN],
    /// NUL-terminated path given to exec (exec only).
    pub filename: [u8; FILENAME_LEN],
}

/// A TCP connection's two ends in one address form: IPv4 is stored as an IPv4-mapped IPv6
/// address, ports in host byte order. Used as a map key, so it has no implicit padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ConnKey {
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    pub local_port: u16,
    pub remote_port: u16,
}

/// Who owns a socket: recorded in process context (connect, listen), read later in softirq.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SockOwner {
    pub pid: u32,
    pub _pad: u32,
    pub cgroup_id: u64,
    pub comm: [u8; COMM_LEN],
}

/// A TCP state change worth telling user space about, written to `TCP_EVENTS`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpEvent {
    /// One of [`tcp_kind`].
    pub kind: u32,
    /// `AF_INET` or `AF_INET6`, as the socket was created.
    pub family: u32,
    pub key: ConnKey,
    pub _pad: u32,
    /// The owning process; `pid` 0 when unknown.
    pub owner: SockOwner,
    pub event_boot_ns: u64,
}

/// Per-connection counters in the per-CPU `CONN_STATS` map; user space sums the CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Bytes of IP packets the socket sent (egress) and received (ingress).
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub rx_packets: u64,
    pub retransmits: u64,
}

/// Byte offsets of the tracepoint record fields the eBPF programs read. User space parses them
/// from tracefs `format` files at start-up and overrides the `LAYOUT` global before loading,
/// so one object works across kernels whose records differ (for example `sched_process_fork`
/// moved `child_pid` when its comms became `__data_loc`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracepointLayout {
    pub exec_filename: u32,
    pub fork_child_pid: u32,
    pub sock_skaddr: u32,
    pub sock_oldstate: u32,
    pub sock_newstate: u32,
    pub sock_sport: u32,
    pub sock_dport: u32,
    pub sock_family: u32,
    pub sock_protocol: u32,
    pub sock_saddr_v6: u32,
    pub sock_daddr_v6: u32,
    pub retransmit_sport: u32,
    pub retransmit_dport: u32,
    pub retransmit_saddr_v6: u32,
    pub retransmit_daddr_v6: u32,
}

impl TracepointLayout {
    /// The layout of Linux 6.18, used when no override is given.
    pub const LINUX_6_18: Self = Self {
        exec_filename: 8,
        fork_child_pid: 20,
        sock_skaddr: 8,
        sock_oldstate: 16,
        sock_newstate: 20,
        sock_sport: 24,
        sock_dport: 26,
        sock_family: 28,
        sock_protocol: 30,
        sock_saddr_v6: 40,
        sock_daddr_v6: 56,
        retransmit_sport: 28,
        retransmit_dport: 30,
        retransmit_saddr_v6: 42,
        retransmit_daddr_v6: 58,
    };
}

#[cfg(feature = "user")]
mod pod {
    use super::{ConnKey, ConnStats, ProcEvent, SockOwner, TcpEvent, TracepointLayout};

    // SAFETY: each type is `#[repr(C)]`, `Copy`, made only of integers and integer arrays, and
    // laid out without implicit padding, so every bit pattern is a valid value.
    unsafe impl aya::Pod for ProcEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for ConnKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for SockOwner {}
    // SAFETY: as above.
    unsafe impl aya::Pod for TcpEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for ConnStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for TracepointLayout {}
}

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::*;

    #[test]
    fn records_have_no_implicit_padding() {
        assert_eq!(size_of::<ConnKey>(), 16 + 16 + 2 + 2);
        assert_eq!(size_of::<SockOwner>(), 4 + 4 + 8 + COMM_LEN);
        assert_eq!(
            size_of::<ProcEvent>(),
            4 * 4 + 3 * 8 + COMM_LEN + FILENAME_LEN
        );
        assert_eq!(
            size_of::<TcpEvent>(),
            4 + 4 + 36 + 4 + size_of::<SockOwner>() + 8
        );
        assert_eq!(size_of::<TracepointLayout>(), 15 * 4);
    }
}
