//! Host facts from procfs, uname and rtnetlink: identity, CPUs, memory, load, uptime and
//! network interfaces.

use std::fs;

use procfs::{Current as _, CurrentSI as _, KernelStats, LoadAverage, Meminfo, Uptime};
use tracing::debug;

use super::links;
use crate::core::host::HostFacts;

/// Busy and total CPU ticks of the host, to compute usage between two readings.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTicks {
    busy: u64,
    total: u64,
}

fn read_trimmed(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// `PRETTY_NAME` from an os-release text.
fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        line.strip_prefix("PRETTY_NAME=")
            .map(|v| v.trim_matches('"').to_owned())
    })
}

/// Reads the host's facts; `previous` is the last CPU reading, for the usage in between.
pub fn read(previous: Option<CpuTicks>) -> (HostFacts, Option<CpuTicks>) {
    let stats = KernelStats::current().ok();
    let ticks = stats.as_ref().map(|s| {
        let t = &s.total;
        let idle = t.idle + t.iowait.unwrap_or(0);
        let busy = t.user
            + t.nice
            + t.system
            + t.irq.unwrap_or(0)
            + t.softirq.unwrap_or(0)
            + t.steal.unwrap_or(0);
        CpuTicks {
            busy,
            total: busy + idle,
        }
    });
    let cpus = stats.as_ref().map_or(0, |s| s.cpu_time.len() as u32);
    let cpu_usage_percent = match (previous, ticks) {
        (Some(before), Some(now)) if now.total > before.total => Some(
            100.0 * f64::from(cpus.max(1)) * (now.busy - before.busy) as f64
                / (now.total - before.total) as f64,
        ),
        _ => None,
    };
    let memory = Meminfo::current().ok();
    let load = LoadAverage::current().ok();
    let links = links::links().unwrap_or_else(|err| {
        debug!(error = %crate::error_chain(&err), "network interfaces unavailable");
        Vec::new()
    });
    let facts = HostFacts {
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
        kernel_release: read_trimmed("/proc/sys/kernel/osrelease"),
        os: fs::read_to_string("/etc/os-release")
            .ok()
            .as_deref()
            .and_then(pretty_name),
        cpus,
        memory_total_bytes: memory.as_ref().map_or(0, |m| m.mem_total),
        memory_available_bytes: memory.as_ref().and_then(|m| m.mem_available).unwrap_or(0),
        load_average: load.map_or([0.0; 3], |l| {
            [l.one.into(), l.five.into(), l.fifteen.into()]
        }),
        uptime_seconds: Uptime::current().map_or(0.0, |u| u.uptime),
        cpu_usage_percent,
        links,
    };
    (facts, ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_pretty_name_is_unquoted() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn this_host_has_cpus_memory_and_a_loopback_interface() {
        let (facts, ticks) = read(None);
        assert!(facts.cpus >= 1 && facts.memory_total_bytes > 0 && facts.uptime_seconds > 0.0);
        assert!(
            facts.links.iter().any(|l| l.name == "lo"),
            "{:?}",
            facts.links
        );
        // Clock ticks are 10 ms; wait for a few so the two readings differ.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (again, _) = read(ticks);
        let usage = again.cpu_usage_percent.expect("usage between two readings");
        assert!(
            (0.0..=100.0 * f64::from(facts.cpus)).contains(&usage),
            "{usage}"
        );
    }
}
