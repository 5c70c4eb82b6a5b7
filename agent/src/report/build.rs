//! The node's state as a report's content: live processes, containers, every retained
//! connection (open and recently closed, so short-lived conversations still show), host facts.

use proto::model as wire;

use crate::{
    core::{CollectionMode, Snapshot},
    model::Direction,
};

fn direction(direction: Direction) -> wire::Direction {
    match direction {
        Direction::Outbound => wire::Direction::Outbound,
        Direction::Inbound => wire::Direction::Inbound,
        Direction::Unknown => wire::Direction::Unknown,
    }
}

/// A full report of `snapshot` (the sender numbers it and may turn it into a delta). With a
/// `netns` scope, only the processes of that network namespace and their connections are
/// reported (an agent per namespace, as in tests or per-tenant setups).
pub fn content(
    agent_id: &str,
    snapshot: &Snapshot,
    netns: Option<u64>,
    timestamp_ms: u64,
) -> wire::Report {
    let in_scope = |p: &&crate::core::snapshot::ProcessView| {
        p.process.alive() && netns.is_none_or(|ns| p.process.netns == Some(ns))
    };
    let pids: std::collections::HashSet<u32> = snapshot
        .processes
        .iter()
        .filter(in_scope)
        .map(|p| p.process.pid)
        .collect();
    let mut report = wire::Report::new(agent_id, 0, timestamp_ms, wire::ReportKind::Full);
    report.host = snapshot.host.as_ref().map(|h| wire::Host {
        hostname: h.hostname.clone(),
        kernel_release: h.kernel_release.clone(),
        os: h.os.clone(),
        cpus: h.cpus,
        memory_total_bytes: h.memory_total_bytes,
        memory_available_bytes: h.memory_available_bytes,
        load_average: h.load_average.map(|l| l as f32),
        uptime_seconds: h.uptime_seconds,
        cpu_usage_percent: h.cpu_usage_percent.map(|c| c as f32),
        interfaces: h
            .links
            .iter()
            .map(|l| wire::Interface {
                name: l.name.clone(),
                addresses: l
                    .addresses
                    .iter()
                    .map(|a| format!("{}/{}", a.address, a.prefix_len))
                    .collect(),
            })
            .collect(),
    });
    report.processes = snapshot
        .processes
        .iter()
        .filter(in_scope)
        .map(|p| wire::Process {
            pid: p.process.pid,
            ppid: p.process.ppid,
            comm: p.process.comm.clone(),
            cmdline: p.process.cmdline.clone(),
            user: p.process.user.clone(),
            cgroup: p.process.cgroup.clone(),
            container_id: p.container_id.clone(),
            cpu_percent: p.process.cpu_percent.map(|c| c as f32),
            rss_bytes: p.process.rss_bytes,
            start_ns: p.process.start_ns,
            exited: false,
        })
        .collect();
    report.containers = snapshot
        .containers
        .iter()
        .map(|c| wire::Container {
            id: c.container.id.clone(),
            name: c.container.name.clone(),
            image: c.container.image.clone(),
            state: c.container.state.clone(),
            labels: c.container.labels.clone().into_iter().collect(),
            pid: c.container.pid,
            ports: c
                .container
                .ports
                .iter()
                .map(|p| wire::Port {
                    container_port: p.container_port,
                    host_port: p.host_port,
                    protocol: p.protocol.clone(),
                    host_ip: p.host_ip.map(|ip| ip.to_string()),
                })
                .collect(),
            networks: c
                .container
                .networks
                .iter()
                .map(|n| wire::Network {
                    name: n.name.clone(),
                    ip_address: n.ip_address.map(|ip| ip.to_string()),
                })
                .collect(),
        })
        .collect();
    report.connections = snapshot
        .connections
        .iter()
        .filter(|c| netns.is_none() || c.connection.pid.is_some_and(|pid| pids.contains(&pid)))
        .map(|c| wire::Connection {
            local: c.connection.local,
            remote: c.connection.remote,
            nat_destination: c.nat_destination,
            pid: c.connection.pid,
            direction: direction(c.connection.direction),
            closed: !c.connection.open(),
            bytes_sent: c.connection.counters.bytes_sent,
            bytes_received: c.connection.counters.bytes_received,
            retransmits: c.connection.counters.retransmits,
        })
        .collect();
    report.collection_mode = match &snapshot.collection {
        CollectionMode::Ebpf => "ebpf".into(),
        CollectionMode::Procfs { .. } => "procfs".into(),
    };
    report.events_lost = snapshot.dropped.lost();
    report
}
