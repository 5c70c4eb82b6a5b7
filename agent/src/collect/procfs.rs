//! Reading processes and TCP sockets from procfs. Used at start-up (so a restarted agent
//! knows what already runs and talks), for details eBPF events do not carry (cmdline, user,
//! cgroups, CPU, memory), and as the whole collector when eBPF is unavailable.
//!
//! Everything here blocks; the collector runs it on tokio's blocking pool. A process that
//! exits while it is read is skipped: procfs is a moving target.

use std::{
    collections::{HashMap, hash_map::Entry},
    fs,
    net::SocketAddr,
    os::unix::fs::MetadataExt as _,
};

use procfs::{
    net::TcpState,
    process::{FDTarget, Process},
};

use crate::{
    core::events::{ProcessDetails, ScannedSocket},
    model::{BootNanos, SocketPair},
};

/// How much of a process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// CPU, memory, parent and start time (`stat`, `statm`): cheap, for every scan.
    Usage,
    /// Also cmdline, exe, user and cgroups: read once per process (and after each exec).
    Full,
}

/// Converts clock ticks (`stat` times) to nanoseconds.
fn ticks_to_ns(ticks: u64) -> u64 {
    let per_second = procfs::ticks_per_second().max(1);
    ticks.saturating_mul(1_000_000_000) / per_second
}

/// The pids of all processes now.
pub fn pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Reads one process; `None` when it is gone (or unreadable).
pub fn read_process(pid: u32, depth: Depth) -> Option<ProcessDetails> {
    let process = Process::new(i32::try_from(pid).ok()?).ok()?;
    let stat = process.stat().ok()?;
    let page_size = procfs::page_size();
    let mut details = ProcessDetails {
        pid,
        ppid: u32::try_from(stat.ppid).ok().filter(|&ppid| ppid != 0),
        comm: Some(stat.comm.clone()),
        start: Some(ticks_to_ns(stat.starttime)),
        cpu_time_ns: Some(ticks_to_ns(stat.utime + stat.stime)),
        rss_bytes: process.statm().ok().map(|m| m.resident * page_size),
        ..ProcessDetails::default()
    };
    if depth == Depth::Full {
        details.netns = fs::metadata(format!("/proc/{pid}/ns/net"))
            .ok()
            .map(|m| m.ino());
        // Kernel threads have an empty cmdline; keep it empty rather than unknown.
        details.cmdline = Some(process.cmdline().unwrap_or_default());
        details.exe = process.exe().ok().map(|p| p.to_string_lossy().into_owned());
        if let Ok(status) = process.status() {
            details.uid = Some(status.ruid);
            details.user = uzers::get_user_by_uid(status.ruid)
                .map(|u| u.name().to_string_lossy().into_owned());
        }
        if let Ok(cgroups) = process.cgroups() {
            let cgroups: Vec<_> = cgroups.into_iter().collect();
            // A task's own cgroup first (it may be a v1 one on a hybrid host): the
            // aggregator finds each task's processes by it.
            details.cgroup = cgroups
                .iter()
                .find(|c| {
                    c.pathname
                        .split('/')
                        .any(|segment| segment == proto::exec::TASK_CGROUP_ROOT)
                })
                .or_else(|| cgroups.iter().find(|c| c.hierarchy == 0))
                .or_else(|| cgroups.first())
                .map(|c| c.pathname.clone());
            details.cgroup_paths = cgroups.into_iter().map(|c| c.pathname).collect();
        }
    }
    Some(details)
}

/// Reads every process at `depth`, and the full details of those in `full_for`.
pub fn scan_processes(full_for: impl Fn(u32) -> bool) -> (Vec<ProcessDetails>, Vec<u32>) {
    let live = pids();
    let details = live
        .iter()
        .filter_map(|&pid| {
            read_process(
                pid,
                if full_for(pid) {
                    Depth::Full
                } else {
                    Depth::Usage
                },
            )
        })
        .collect();
    (details, live)
}

/// Every TCP socket on the node, in every network namespace, with its owning process.
///
/// `/proc/<pid>/net/tcp{,6}` shows the namespace of `<pid>`, so one process per namespace is
/// read; socket inodes found in `/proc/<pid>/fd` name the owners.
pub fn scan_sockets() -> Vec<ScannedSocket> {
    let mut owner_of_inode = HashMap::new();
    let mut reader_of_netns: HashMap<u64, u32> = HashMap::new();
    for pid in pids() {
        let Ok(process) = Process::new(pid as i32) else {
            continue;
        };
        if let Ok(netns) = fs::metadata(format!("/proc/{pid}/ns/net")) {
            reader_of_netns.entry(netns.ino()).or_insert(pid);
        }
        let Ok(fds) = process.fd() else { continue };
        for fd in fds.flatten() {
            if let FDTarget::Socket(inode) = fd.target {
                owner_of_inode.entry(inode).or_insert(pid);
            }
        }
    }
    let mut sockets: HashMap<SocketPair, ScannedSocket> = HashMap::new();
    for pid in reader_of_netns.into_values() {
        let Ok(process) = Process::new(pid as i32) else {
            continue;
        };
        let entries = process.tcp().into_iter().chain(process.tcp6()).flatten();
        for entry in entries {
            let listening = match entry.state {
                TcpState::Listen => true,
                TcpState::Established => false,
                _ => continue,
            };
            let pair = SocketPair {
                local: unmap(entry.local_address),
                remote: unmap(entry.remote_address),
            };
            let socket = ScannedSocket {
                pair,
                pid: owner_of_inode.get(&entry.inode).copied(),
                listening,
            };
            // The same listener may appear in several namespaces' views only if it is the
            // same socket; keep the first owner found.
            match sockets.entry(pair) {
                Entry::Vacant(slot) => {
                    slot.insert(socket);
                }
                Entry::Occupied(mut slot) if slot.get().pid.is_none() => {
                    slot.insert(socket);
                }
                Entry::Occupied(_) => {}
            }
        }
    }
    sockets.into_values().collect()
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) as plain IPv4, as eBPF events give them.
fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// Nanoseconds since boot, the clock eBPF timestamps use.
pub fn boot_nanos() -> BootNanos {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_BOOTTIME exists on every supported
    // kernel, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) };
    (now.tv_sec as u64).saturating_mul(1_000_000_000) + now.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_found_with_its_details() {
        let me = std::process::id();
        assert!(pids().contains(&me));
        let details = read_process(me, Depth::Full).expect("own process is readable");
        assert!(details.cmdline.is_some_and(|c| !c.is_empty()));
        assert!(details.rss_bytes.is_some_and(|rss| rss > 0));
        assert!(details.start.is_some_and(|start| start <= boot_nanos()));
        assert!(!details.cgroup_paths.is_empty());
    }

    #[test]
    fn a_listening_socket_of_this_process_is_found_with_its_owner() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let local = listener.local_addr().expect("local addr");
        let found = scan_sockets()
            .into_iter()
            .find(|s| s.listening && s.pair.local == local)
            .expect("listener found");
        assert_eq!(found.pid, Some(std::process::id()));
    }

    #[test]
    fn mapped_addresses_become_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:80".parse().expect("addr");
        assert_eq!(
            unmap(mapped),
            "10.0.0.1:80".parse::<SocketAddr>().expect("addr")
        );
    }
}
