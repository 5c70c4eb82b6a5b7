//! Loads strata's eBPF programs into the kernel, attaches them, and reads what they record:
//! process and TCP events from ring buffers (pushed to the collector as they arrive), and
//! per-connection counters and drop counters from maps (polled).
//!
//! Anything that prevents eBPF from working is an [`Unavailable`] whose message says why in
//! one line; the collector then falls back to polling procfs.

pub mod decode;
pub mod layout;

use std::{fs, io, os::fd::AsFd as _, path::Path};

use agent_common::{ConnKey, ConnStats, ProcEvent, TcpEvent, TracepointLayout, drop_slot, names};
use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, MapError, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, ProgramError, TracePoint},
};
use tokio::{io::unix::AsyncFd, sync::mpsc};
use tracing::{debug, info, warn};

use self::layout::LayoutError;
use crate::{
    core::{Event, events::Counters, events::KernelDrops},
    model::SocketPair,
};

/// The eBPF object built by `build.rs` (empty when built with `AYA_BUILD_SKIP=1`).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/strata-probes"));

/// Where tracefs is expected; mounted there when absent.
const TRACEFS: &str = "/sys/kernel/tracing";

/// Why eBPF collection cannot run here.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("this agent was built without its eBPF programs (AYA_BUILD_SKIP)")]
    NotBuilt,
    #[error("loading eBPF programs needs root, and the agent runs as uid {0}")]
    NotRoot(u32),
    #[error("tracefs is not mounted at {TRACEFS} and mounting it failed")]
    Tracefs(#[source] io::Error),
    #[error("unexpected tracepoint layout")]
    Layout(#[from] LayoutError),
    #[error("the kernel refused the eBPF object")]
    Load(#[source] aya::EbpfError),
    #[error("program {name} could not be loaded or attached")]
    Program {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("map {name} is missing or of the wrong type")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
}

/// The loaded programs and the maps the collector polls. Dropping it detaches everything.
pub struct Probes {
    stats: PerCpuHashMap<MapData, ConnKey, ConnStats>,
    drops: PerCpuArray<MapData, u64>,
    /// Keeps the programs attached.
    _ebpf: Ebpf,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes").finish_non_exhaustive()
    }
}

/// The ring buffers, to be handed to [`spawn_readers`].
pub struct Rings {
    proc_events: RingBuf<MapData>,
    tcp_events: RingBuf<MapData>,
}

impl std::fmt::Debug for Rings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rings").finish_non_exhaustive()
    }
}

/// Loads and attaches every program. `cgroup2` is the cgroup v2 mount for the byte counters;
/// without it (or when attaching there fails) connections are still followed, without bytes.
pub fn load(cgroup2: Option<&Path>) -> Result<(Probes, Rings), Unavailable> {
    if OBJECT.is_empty() {
        return Err(Unavailable::NotBuilt);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(Unavailable::NotRoot(euid));
    }
    ensure_tracefs().map_err(Unavailable::Tracefs)?;
    let layout = layout::layout(|category, name| {
        fs::read_to_string(format!("{TRACEFS}/events/{category}/{name}/format"))
    })?;
    if layout != TracepointLayout::LINUX_6_18 {
        info!(
            ?layout,
            "tracepoint records differ from Linux 6.18; using this kernel's offsets"
        );
    }
    let log_level = if tracing::enabled!(tracing::Level::DEBUG) {
        aya_log::Level::Debug
    } else {
        aya_log::Level::Info
    };
    let mut ebpf = EbpfLoader::new()
        .override_global(names::LAYOUT, &layout, true)
        .override_global(aya_log::LEVEL, &(log_level as u8), false)
        .load(OBJECT)
        .map_err(Unavailable::Load)?;
    spawn_kernel_logger(&mut ebpf);

    for (category, name) in layout::TRACEPOINTS {
        attach_tracepoint(&mut ebpf, category, name)?;
    }
    match cgroup2 {
        Some(cgroup2) => {
            if let Err(err) = attach_byte_counters(&mut ebpf, cgroup2) {
                warn!(error = %crate::error_chain(&err), "byte counters unavailable");
            }
        }
        None => warn!("byte counters unavailable: no cgroup v2 hierarchy is mounted"),
    }

    let mut take = |name: &'static str| {
        ebpf.take_map(name).ok_or(Unavailable::Map {
            name,
            source: MapError::InvalidName { name: name.into() },
        })
    };
    let proc_events = take(names::PROC_EVENTS)?;
    let tcp_events = take(names::TCP_EVENTS)?;
    let stats = take(names::CONN_STATS)?;
    let drops = take(names::DROPS)?;
    let map_err = |name| move |source| Unavailable::Map { name, source };
    let probes = Probes {
        stats: PerCpuHashMap::try_from(stats).map_err(map_err(names::CONN_STATS))?,
        drops: PerCpuArray::try_from(drops).map_err(map_err(names::DROPS))?,
        _ebpf: ebpf,
    };
    let rings = Rings {
        proc_events: RingBuf::try_from(proc_events).map_err(map_err(names::PROC_EVENTS))?,
        tcp_events: RingBuf::try_from(tcp_events).map_err(map_err(names::TCP_EVENTS))?,
    };
    Ok((probes, rings))
}

/// Mounts tracefs where aya and the layout reader look for it, when it is not there.
fn ensure_tracefs() -> io::Result<()> {
    if Path::new(TRACEFS).join("events/sched").exists() {
        return Ok(());
    }
    info!("mounting tracefs at {TRACEFS}");
    let c = |s: &str| std::ffi::CString::new(s).map_err(io::Error::other);
    let (source, target) = (c("tracefs")?, c(TRACEFS)?);
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call; data is null.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            source.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The program `name` of the object, loaded into the kernel as a `T`.
fn load_program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, Unavailable>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
    T: LoadableProgram,
{
    let fail = |source| Unavailable::Program { name, source };
    let program: &mut T = ebpf
        .program_mut(name)
        .ok_or(ProgramError::NotLoaded)
        .and_then(|p| p.try_into())
        .map_err(fail)?;
    program.load_into_kernel().map_err(fail)?;
    Ok(program)
}

/// The program types the agent loads, behind one `load`.
trait LoadableProgram {
    fn load_into_kernel(&mut self) -> Result<(), ProgramError>;
}

impl LoadableProgram for TracePoint {
    fn load_into_kernel(&mut self) -> Result<(), ProgramError> {
        self.load()
    }
}

impl LoadableProgram for CgroupSkb {
    fn load_into_kernel(&mut self) -> Result<(), ProgramError> {
        self.load()
    }
}

fn attach_tracepoint(
    ebpf: &mut Ebpf,
    category: &'static str,
    name: &'static str,
) -> Result<(), Unavailable> {
    let fail = |source| Unavailable::Program { name, source };
    let program: &mut TracePoint = load_program(ebpf, name)?;
    program.attach(category, name).map_err(fail)?;
    debug!(category, name, "tracepoint attached");
    Ok(())
}

fn attach_byte_counters(ebpf: &mut Ebpf, cgroup2: &Path) -> Result<(), Unavailable> {
    let cgroup = fs::File::open(cgroup2).map_err(|err| Unavailable::Program {
        name: names::SKB_EGRESS,
        source: ProgramError::IOError(err),
    })?;
    for (name, direction) in [
        (names::SKB_EGRESS, CgroupSkbAttachType::Egress),
        (names::SKB_INGRESS, CgroupSkbAttachType::Ingress),
    ] {
        let fail = |source| Unavailable::Program { name, source };
        let program: &mut CgroupSkb = load_program(ebpf, name)?;
        // With BPF links (Linux 5.7+) every cgroup attachment may coexist with others, so
        // several agents (or other tools) can count on the same cgroup; `Single` is the only
        // mode the link API accepts.
        program
            .attach(cgroup.as_fd(), direction, CgroupAttachMode::Single)
            .map_err(fail)?;
    }
    debug!(cgroup = %cgroup2.display(), "byte counters attached");
    Ok(())
}

/// Forwards the eBPF side's aya-log records to the agent's log.
fn spawn_kernel_logger(ebpf: &mut Ebpf) {
    let logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(logger) => logger,
        Err(err) => return warn!(error = %err, "kernel-side logs unavailable"),
    };
    let mut logger = match readable(logger) {
        Ok(logger) => logger,
        Err(err) => return warn!(error = %err, "kernel-side logs unavailable"),
    };
    tokio::spawn(async move {
        while let Ok(mut guard) = logger.readable_mut().await {
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}

/// Registers an owned map or logger descriptor with tokio for readiness.
fn readable<T: std::os::fd::AsRawFd>(inner: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: `inner` is an aya RingBuf (or the logger around one) that owns its descriptor;
    // it is moved into the AsyncFd, so the descriptor stays open and names the same map for
    // the AsyncFd's whole life, and its `as_raw_fd` always returns that descriptor.
    unsafe { AsyncFd::register_with_interest(inner, tokio::io::Interest::READABLE) }
        .map_err(|err| err.into_parts().1)
}

/// Starts one task per ring buffer; each sends decoded events in batches to `events`.
pub fn spawn_readers(rings: Rings, events: mpsc::Sender<Vec<Event>>) -> io::Result<()> {
    let proc_ring = readable(rings.proc_events)?;
    let tcp_ring = readable(rings.tcp_events)?;
    tokio::spawn(read_ring(proc_ring, events.clone(), |bytes| {
        decode::read_record::<ProcEvent>(bytes).and_then(|r| decode::proc_event(&r))
    }));
    tokio::spawn(read_ring(tcp_ring, events, |bytes| {
        decode::read_record::<TcpEvent>(bytes).and_then(|r| decode::tcp_event(&r))
    }));
    Ok(())
}

/// How often ring buffers are drained without a wake-up: the kernel side wakes the reader
/// only when much is waiting (see `WAKEUP_BYTES` in agent-ebpf), so this bounds the delay.
const DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

async fn read_ring(
    mut ring: AsyncFd<RingBuf<MapData>>,
    events: mpsc::Sender<Vec<Event>>,
    decode: fn(&[u8]) -> Option<Event>,
) {
    let mut undecodable = 0u64;
    let mut drain = tokio::time::interval(DRAIN_INTERVAL);
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            guard = ring.readable_mut() => match guard {
                Ok(mut guard) => guard.clear_ready(),
                Err(err) => return warn!(error = %err, "ring buffer reader stopped"),
            },
            _ = drain.tick() => {}
        }
        let mut batch = Vec::new();
        let ring = ring.get_mut();
        while let Some(item) = ring.next() {
            match decode(&item) {
                Some(event) => batch.push(event),
                None => {
                    undecodable += 1;
                    if undecodable.is_power_of_two() {
                        warn!(undecodable, "ring buffer record of unknown kind or size");
                    }
                }
            }
        }
        if !batch.is_empty() && events.send(batch).await.is_err() {
            return; // the collector is gone
        }
    }
}

impl Probes {
    /// Current counters of each connection the kernel has seen traffic for.
    pub fn counters(&self, pairs: &[SocketPair]) -> Vec<(SocketPair, Counters)> {
        pairs
            .iter()
            .filter_map(|pair| {
                let per_cpu = self.stats.get(&decode::key(pair), 0).ok()?;
                Some((*pair, decode::counters(per_cpu.iter())))
            })
            .collect()
    }

    /// Drops the kernel's counters of closed connections.
    pub fn forget(&mut self, pairs: &[SocketPair]) {
        for pair in pairs {
            // Absent keys (no traffic counted, or evicted) are fine.
            let _ = self.stats.remove(&decode::key(pair));
        }
    }

    /// The kernel side's drop counters, summed over CPUs.
    pub fn kernel_drops(&self) -> KernelDrops {
        let slot = |index: u32| {
            self.drops
                .get(&index, 0)
                .map(|per_cpu| per_cpu.iter().sum::<u64>())
                .unwrap_or(0)
        };
        KernelDrops {
            proc_ring_full: slot(drop_slot::PROC_RING_FULL),
            tcp_ring_full: slot(drop_slot::TCP_RING_FULL),
            stats_map_full: slot(drop_slot::STATS_MAP_FULL),
            record_read_failed: slot(drop_slot::RECORD_READ),
        }
    }
}
