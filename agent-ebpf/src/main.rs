//! strata's eBPF programs. Only tracepoints and `cgroup_skb` are used: kprobes and fentry are
//! not available on every kernel strata runs on, tracepoints are.
//!
//! - `sched/sched_process_fork` remembers each child's parent and fork time;
//!   `sched/sched_process_exec` and `sched/sched_process_exit` emit [`ProcEvent`]s.
//! - `sock/inet_sock_set_state` follows TCP sockets: the owner is recorded in process
//!   context (CLOSE->SYN_SENT for connect, ->LISTEN for listen) and looked up when the
//!   connection is established in softirq context; CONNECT, ACCEPT, CLOSE and LISTEN are
//!   emitted as [`TcpEvent`]s.
//! - `tcp/tcp_retransmit_skb` and `cgroup_skb` ingress/egress count retransmits, packets and
//!   bytes per connection in the per-CPU `CONN_STATS` map, which user space polls.
//!
//! Record fields are read at the offsets in the `LAYOUT` global, which user space fills from
//! tracefs `format` files. Every map is bounded; whatever cannot be recorded is counted in
//! `DROPS`, never lost silently.
#![no_std]
#![no_main]

mod conn;
mod process;

use agent_common::{SockOwner, TracepointLayout, bounds, drop_slot};
use aya_ebpf::{
    Global,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_current_cgroup_id},
    macros::map,
    maps::{PerCpuArray, RingBuf},
};

/// Process events for user space.
#[map]
static PROC_EVENTS: RingBuf = RingBuf::with_byte_size(bounds::PROC_RING_BYTES, 0);

/// TCP events for user space.
#[map]
static TCP_EVENTS: RingBuf = RingBuf::with_byte_size(bounds::TCP_RING_BYTES, 0);

/// Per-CPU counters of what could not be recorded, indexed by [`drop_slot`].
#[map]
static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drop_slot::COUNT, 0);

/// Tracepoint record offsets, overridden by user space before load.
#[unsafe(no_mangle)]
static LAYOUT: Global<TracepointLayout> = Global::new(TracepointLayout::LINUX_6_18);

/// Unread bytes in a ring buffer above which a submit wakes the reader. Below it, records
/// wait for the reader's periodic drain: one wake-up per batch instead of per record.
const WAKEUP_BYTES: u64 = 64 * 1024;

/// Submit flags for `ring`: wake the reader only when enough is waiting.
#[inline(always)]
fn wakeup_flags(ring: &RingBuf) -> u64 {
    if ring.query(u64::from(BPF_RB_AVAIL_DATA)) >= WAKEUP_BYTES {
        u64::from(BPF_RB_FORCE_WAKEUP)
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    }
}

/// Counts one thing that could not be recorded.
#[inline(always)]
fn count_drop(slot: u32) {
    if let Some(counter) = DROPS.get_ptr_mut(slot) {
        // SAFETY: the pointer comes from the map lookup and is this CPU's slot; eBPF
        // programs do not migrate CPUs while running, so nothing else writes it meanwhile.
        unsafe { *counter += 1 };
    }
}

/// The thread-group id (user-visible pid) of the current task.
#[inline(always)]
fn current_pid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

/// cgroup v2 id of the current task.
#[inline(always)]
fn current_cgroup_id() -> u64 {
    // SAFETY: a helper without arguments, allowed in tracepoint programs.
    unsafe { bpf_get_current_cgroup_id() }
}

/// The current task as the owner of a socket.
#[inline(always)]
fn current_owner() -> SockOwner {
    SockOwner {
        pid: current_pid(),
        _pad: 0,
        cgroup_id: current_cgroup_id(),
        comm: aya_ebpf::helpers::bpf_get_current_comm().unwrap_or([0; agent_common::COMM_LEN]),
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
