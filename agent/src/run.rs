//! `strata-agent run`: collect continuously and report to the aggregator, under the CPU
//! budget, and run the tasks the master launches here.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tracing::warn;

use crate::{
    collect::{Collector, Config},
    exec::{ExecConfig, Executor},
    governor::Governor,
    report::build,
    transport::client::{self, LinkConfig},
};

/// CPU time this process has used, in nanoseconds.
fn own_cpu_ns() -> Option<u64> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    let ticks = stat.utime + stat.stime;
    Some(ticks.saturating_mul(1_000_000_000) / procfs::ticks_per_second().max(1))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What an agent reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// Everything on the host.
    Host,
    /// Only the processes in the agent's own network namespace, and their connections.
    Netns,
}

/// The inode of this process's network namespace.
fn own_netns() -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self/ns/net").ok().map(|m| m.ino())
}

/// Runs until the process is stopped: the collector, the executor (which recovers the tasks
/// of an earlier run first) and the link to the aggregator.
pub async fn run(
    collect: Config,
    mut link: LinkConfig,
    cpu_budget_percent: f64,
    scope: Scope,
    exec: ExecConfig,
) {
    link.executor = Some(Executor::start(exec));
    let netns = match scope {
        Scope::Host => None,
        Scope::Netns => own_netns(),
    };
    let interval = link.interval;
    let mut collector = Collector::start(collect).await;
    let mut governor = Governor::new(cpu_budget_percent, collector.config().scan_interval);
    let (states, receiver) = watch::channel(None);
    tokio::spawn(client::run(link, receiver));
    let mut next = tokio::time::Instant::now();
    let mut cpu_then = own_cpu_ns();
    let mut wall_then = tokio::time::Instant::now();
    loop {
        next += interval;
        collector.run_until(next).await;
        let snapshot = collector.snapshot();
        // The link task fills in the agent id it joined with.
        states.send_replace(Some(build::content("", &snapshot, netns, now_ms())));
        let (cpu_now, wall_now) = (own_cpu_ns(), tokio::time::Instant::now());
        if let (Some(now), Some(then)) = (cpu_now, cpu_then) {
            let wall = wall_now.duration_since(wall_then).as_nanos().max(1) as f64;
            let percent = 100.0 * now.saturating_sub(then) as f64 / wall;
            if let Some(scan) = governor.observe(percent) {
                collector.set_scan_interval(scan);
                warn!(
                    cpu_percent = percent,
                    budget_percent = cpu_budget_percent,
                    scan_interval = ?scan,
                    "CPU governor changed the scan interval"
                );
            }
        }
        (cpu_then, wall_then) = (cpu_now, wall_now);
    }
}
