//! Process lifecycle: fork (remember parent and start time), exec and exit (emit events).

use agent_common::{COMM_LEN, FILENAME_LEN, ProcEvent, bounds, drop_slot, proc_kind};
use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_get_current_comm, bpf_ktime_get_boot_ns, bpf_probe_read_kernel_str},
    },
    macros::{map, tracepoint},
    maps::LruHashMap,
    programs::TracePointContext,
};

use crate::{LAYOUT, PROC_EVENTS, count_drop, current_cgroup_id, current_pid, wakeup_flags};

/// What a fork tells us about a task before it execs.
#[repr(C)]
#[derive(Clone, Copy)]
struct ForkInfo {
    ppid: u32,
    _pad: u32,
    start_boot_ns: u64,
}

/// Child task id -> parent and fork time, kept until the task exits.
#[map]
static FORKS: LruHashMap<u32, ForkInfo> = LruHashMap::with_max_entries(bounds::FORKS, 0);

fn boot_ns() -> u64 {
    // SAFETY: a helper without arguments, allowed in tracepoint programs.
    unsafe { bpf_ktime_get_boot_ns() }
}

#[tracepoint]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    let offset = LAYOUT.load().fork_child_pid as usize;
    // SAFETY: the offset comes from the tracepoint's format file (checked by user space);
    // `read_at` reads through bpf_probe_read, so a wrong offset fails instead of faulting.
    let Ok(child) = (unsafe { ctx.read_at::<i32>(offset) }) else {
        count_drop(drop_slot::RECORD_READ);
        return 0;
    };
    let info = ForkInfo {
        ppid: current_pid(),
        _pad: 0,
        start_boot_ns: boot_ns(),
    };
    // An LRU map makes room by itself; insertion only fails on allocation failure.
    let _ = FORKS.insert(child as u32, info, 0);
    0
}

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let pid = current_pid();
    // SAFETY: the value is copied out at once; the map entry may be replaced concurrently,
    // which at worst yields a stale parent.
    let fork = unsafe { FORKS.get(pid) }.copied();
    let offset = LAYOUT.load().exec_filename as usize;
    // SAFETY: as in `sched_process_fork`.
    let data_loc = unsafe { ctx.read_at::<u32>(offset) }.unwrap_or(0);
    let filename = (data_loc & 0xffff) as usize;
    emit(
        &ctx,
        proc_kind::EXEC,
        pid,
        fork,
        (data_loc != 0).then_some(filename),
    );
    0
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tid, tgid) = (pid_tgid as u32, (pid_tgid >> 32) as u32);
    let _ = FORKS.remove(tid);
    // Threads exit too; the process is gone when its leader exits.
    if tid == tgid {
        emit(&ctx, proc_kind::EXIT, tgid, None, None);
    }
    0
}

/// Writes one [`ProcEvent`] into the ring buffer, counting a drop when it is full.
#[inline(always)]
fn emit(
    ctx: &TracePointContext,
    kind: u32,
    pid: u32,
    fork: Option<ForkInfo>,
    filename_offset: Option<usize>,
) {
    let Some(mut entry) = PROC_EVENTS.reserve::<ProcEvent>(0) else {
        count_drop(drop_slot::PROC_RING_FULL);
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points to a reserved, exclusively owned ring-buffer slot of the right
    // size; fields are written through raw pointers so no reference to uninitialised memory
    // is made; the helpers write at most the lengths they are given.
    unsafe {
        (&raw mut (*event).kind).write(kind);
        (&raw mut (*event).pid).write(pid);
        (&raw mut (*event).ppid).write(fork.map_or(0, |f| f.ppid));
        (&raw mut (*event)._pad).write(0);
        (&raw mut (*event).cgroup_id).write(current_cgroup_id());
        (&raw mut (*event).event_boot_ns).write(boot_ns());
        (&raw mut (*event).start_boot_ns).write(fork.map_or(0, |f| f.start_boot_ns));
        let comm = (&raw mut (*event).comm).cast();
        if bpf_get_current_comm(comm, COMM_LEN as u32) < 0 {
            (&raw mut (*event).comm).write([0; COMM_LEN]);
        }
        let filename = (&raw mut (*event).filename).cast::<u8>();
        match filename_offset {
            Some(offset) => {
                // On failure the helper zero-fills the destination.
                let src = ctx.as_ptr().cast::<u8>().add(offset).cast();
                bpf_probe_read_kernel_str(filename.cast(), FILENAME_LEN as u32, src);
            }
            None => filename.write(0),
        }
    }
    entry.submit(wakeup_flags(&PROC_EVENTS));
}
