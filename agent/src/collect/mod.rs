//! The collector: the async shell around the pure core. It starts every source (eBPF, or
//! procfs polling when eBPF is unavailable; conntrack; Docker; host facts), feeds what they
//! see into [`NodeState`] as events, and on each tick reads what is polled.
//!
//! Sources send batches of events over one bounded channel; a source that outruns the core
//! waits (eBPF ring buffers then fill and the kernel side counts the drops).

pub mod cgroups;
pub mod conntrack;
pub mod docker;
pub mod ebpf;
pub mod host;
pub mod links;
pub mod procfs;
mod sources;

use std::{
    collections::HashSet,
    path::PathBuf,
    time::{Duration, Instant},
};

use tokio::{sync::mpsc, task};
use tracing::{info, warn};

use crate::{
    core::{CollectionMode, Event, Limits, NodeState, Snapshot},
    model::SocketPair,
};

/// Batches of events in flight between sources and the core.
const EVENT_CHANNEL_BATCHES: usize = 1024;
/// Processes whose full details are read per tick, at most (bounds the cost of exec storms).
const DETAILS_PER_TICK: usize = 256;

/// What to collect and how often.
#[derive(Debug, Clone)]
pub struct Config {
    /// Try eBPF first (false forces procfs polling).
    pub ebpf: bool,
    /// Follow conntrack for NAT.
    pub conntrack: bool,
    /// Watch the Docker engine.
    pub docker: bool,
    /// How often counters and new processes' details are read.
    pub tick: Duration,
    /// How often every process's CPU and memory (and, without eBPF, all sockets) are read.
    pub scan_interval: Duration,
    /// How often host facts are refreshed.
    pub host_interval: Duration,
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ebpf: true,
            conntrack: true,
            docker: true,
            tick: Duration::from_secs(1),
            scan_interval: Duration::from_secs(5),
            host_interval: Duration::from_secs(30),
            limits: Limits::default(),
        }
    }
}

/// A running collector and the state it maintains.
#[derive(Debug)]
pub struct Collector {
    config: Config,
    state: NodeState,
    mode: CollectionMode,
    probes: Option<ebpf::Probes>,
    events: mpsc::Receiver<Vec<Event>>,
    cgroup2: Option<PathBuf>,
    /// Connections closed since the last tick: their final counters are read, then dropped.
    closed_since_tick: Vec<SocketPair>,
    cpu_ticks: Option<host::CpuTicks>,
    ticker: tokio::time::Interval,
    last_scan: Instant,
    last_host: Instant,
    started: Instant,
}

impl Collector {
    /// Starts every source. eBPF attaches before the procfs start-up scan, so nothing that
    /// happens in between is missed.
    pub async fn start(config: Config) -> Self {
        let (sender, events) = mpsc::channel(EVENT_CHANNEL_BATCHES);
        let cgroup2 = cgroups::cgroup2_mount();
        let (mode, probes) = if config.ebpf {
            match ebpf::load(cgroup2.as_deref()) {
                Ok((probes, rings)) => match ebpf::spawn_readers(rings, sender.clone()) {
                    Ok(()) => (CollectionMode::Ebpf, Some(probes)),
                    Err(err) => (procfs_mode(format!("reading ring buffers: {err}")), None),
                },
                Err(err) => (procfs_mode(crate::error_chain(&err)), None),
            }
        } else {
            (procfs_mode("disabled by --no-ebpf".into()), None)
        };
        if config.conntrack {
            tokio::spawn(sources::conntrack(sender.clone()));
        }
        if config.docker {
            tokio::spawn(sources::docker(sender.clone()));
        }
        let now = Instant::now();
        let mut ticker = tokio::time::interval(config.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut collector = Self {
            state: NodeState::new(config.limits),
            config,
            mode,
            probes,
            events,
            cgroup2,
            closed_since_tick: Vec::new(),
            cpu_ticks: None,
            ticker,
            last_scan: now,
            last_host: now,
            started: now,
        };
        collector.initial_scan().await;
        collector
    }

    pub fn mode(&self) -> &CollectionMode {
        &self.mode
    }

    pub fn state(&self) -> &NodeState {
        &self.state
    }

    /// Collects until `duration` has passed, then reads every counter once more.
    pub async fn run_for(&mut self, duration: Duration) {
        self.run_until(tokio::time::Instant::now() + duration).await;
        // Whatever arrived meanwhile, then a final reading of every counter.
        while let Ok(batch) = self.events.try_recv() {
            self.apply(batch);
        }
        self.tick(true).await;
    }

    /// Collects until `deadline`, ticking on the collector's own schedule.
    pub async fn run_until(&mut self, deadline: tokio::time::Instant) {
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                Some(batch) = self.events.recv() => self.apply(batch),
                _ = self.ticker.tick() => self.tick(false).await,
            }
        }
    }

    /// Changes how often full procfs scans run (the CPU governor stretches it).
    pub fn set_scan_interval(&mut self, interval: Duration) {
        self.config.scan_interval = interval;
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The node as seen now.
    pub fn snapshot(&self) -> Snapshot {
        self.state
            .snapshot(&self.mode, self.started.elapsed().as_secs_f64())
    }

    fn apply(&mut self, batch: Vec<Event>) {
        let now = procfs::boot_nanos();
        for event in batch {
            if let Event::ConnectionClosed { pair } = &event {
                self.closed_since_tick.push(*pair);
            }
            self.state.apply(event, now);
        }
    }

    async fn initial_scan(&mut self) {
        let (processes, live) = blocking(|| procfs::scan_processes(|_| true)).await;
        let sockets = blocking(procfs::scan_sockets).await;
        let mut batch: Vec<Event> = processes.into_iter().map(Event::ProcessDetails).collect();
        batch.push(Event::ProcessScanComplete { live });
        batch.push(Event::SocketsScanned(sockets));
        self.apply(batch);
        self.refresh_host().await;
        info!(
            mode = ?self.mode,
            processes = self.state.processes().len(),
            connections = self.state.connections().len(),
            "collector started"
        );
        if let CollectionMode::Procfs { reason } = &self.mode {
            warn!("eBPF unavailable, polling procfs instead: {reason}");
        }
    }

    /// Reads what is polled: details of new processes, counters of connections closed since
    /// the last tick, and on each scan interval (or when `everything`) every process's usage
    /// and every open connection's counters.
    async fn tick(&mut self, everything: bool) {
        let mut batch = Vec::new();
        let full_scan = everything || self.last_scan.elapsed() >= self.config.scan_interval;
        if full_scan {
            self.last_scan = Instant::now();
            self.scan(&mut batch).await;
        } else {
            let pending = self.state.processes().needing_details(DETAILS_PER_TICK);
            if !pending.is_empty() {
                let details = blocking(move || {
                    pending
                        .into_iter()
                        .filter_map(|pid| procfs::read_process(pid, procfs::Depth::Full))
                        .collect::<Vec<_>>()
                })
                .await;
                batch.extend(details.into_iter().map(Event::ProcessDetails));
            }
        }
        if let Some(probes) = &mut self.probes {
            let closed = std::mem::take(&mut self.closed_since_tick);
            let mut pairs = closed.clone();
            if full_scan {
                pairs.extend(self.state.open_connections());
            }
            batch.push(Event::ConnectionCounters(probes.counters(&pairs)));
            // Final counters are read; the kernel's entries of closed tuples can go (a tuple
            // reopened meanwhile starts counting again from its next packet).
            let closed: Vec<SocketPair> = closed
                .into_iter()
                .filter(|p| self.state.connections().get(p).is_none_or(|c| !c.open()))
                .collect();
            probes.forget(&closed);
            batch.push(Event::KernelDrops(probes.kernel_drops()));
        }
        self.apply(batch);
        self.resolve_cgroups().await;
        if self.last_host.elapsed() >= self.config.host_interval {
            self.refresh_host().await;
        }
        self.state.expire(procfs::boot_nanos());
    }

    /// Reads every process's usage (full details for those not yet read); without eBPF also
    /// every socket.
    async fn scan(&mut self, batch: &mut Vec<Event>) {
        let known: HashSet<u32> = self
            .state
            .processes()
            .iter()
            .filter(|p| p.alive() && p.details_read)
            .map(|p| p.pid)
            .collect();
        let (processes, live) =
            blocking(move || procfs::scan_processes(|pid| !known.contains(&pid))).await;
        batch.extend(processes.into_iter().map(Event::ProcessDetails));
        batch.push(Event::ProcessScanComplete { live });
        if self.probes.is_none() {
            batch.push(Event::SocketsScanned(blocking(procfs::scan_sockets).await));
        }
    }

    /// Names the cgroups that events referred to; ids not found (a cgroup already deleted)
    /// are not looked for again.
    async fn resolve_cgroups(&mut self) {
        let wanted = self.state.take_unresolved_cgroups();
        let Some(mount) = self.cgroup2.clone() else {
            return;
        };
        if wanted.is_empty() {
            return;
        }
        let found = blocking(move || cgroups::resolve(&mount, &wanted)).await;
        self.apply(
            found
                .into_iter()
                .map(|(id, path)| Event::CgroupPath { id, path })
                .collect(),
        );
    }

    async fn refresh_host(&mut self) {
        self.last_host = Instant::now();
        let previous = self.cpu_ticks;
        let (facts, ticks) = blocking(move || host::read(previous)).await;
        self.cpu_ticks = ticks;
        self.apply(vec![Event::Host(facts)]);
    }
}

fn procfs_mode(reason: String) -> CollectionMode {
    CollectionMode::Procfs { reason }
}

/// Runs blocking procfs work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match task::spawn_blocking(work).await {
        Ok(value) => value,
        // Only a panic in `work` gets here; keep it a panic rather than invent a value.
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}
