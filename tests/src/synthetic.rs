//! Synthetic hosts for the benchmarks: reports with a given number of containers, processes
//! and connections, and a steady churn of changes, deterministic for a seed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use proto::model::{
    Connection, Container, Direction, Host, Interface, Network, Port, Process, Report, ReportKind,
};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

/// The size of a synthetic host.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub containers: usize,
    pub processes: usize,
    pub connections: usize,
}

/// The address of host `index` on the synthetic network (10.x.y.z).
pub fn host_ip(index: u32) -> Ipv4Addr {
    let n = index + 1;
    Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8)
}

/// A full report of synthetic host `index`. Connections go to other hosts of `hosts`.
pub fn host(agent_id: &str, index: u32, hosts: u32, shape: Shape, seed: u64) -> Report {
    let mut rng = StdRng::seed_from_u64(seed ^ u64::from(index));
    let ip = host_ip(index);
    let mut report = Report::new(agent_id, 0, 0, ReportKind::Full);
    report.host = Some(Host {
        hostname: format!("node-{index:05}"),
        kernel_release: "6.18.0".into(),
        os: Some("Debian GNU/Linux 12".into()),
        cpus: 32,
        memory_total_bytes: 128 << 30,
        memory_available_bytes: 64 << 30,
        load_average: [1.5, 1.2, 1.0],
        uptime_seconds: 86_400.0,
        cpu_usage_percent: Some(35.0),
        interfaces: vec![Interface {
            name: "eth0".into(),
            addresses: vec![format!("{ip}/16")],
        }],
    });
    report.containers = (0..shape.containers)
        .map(|c| Container {
            id: format!("{:064x}", (u64::from(index) << 32) | c as u64),
            name: format!("svc-{}-{c}", c % 20),
            image: format!("registry.local/team/svc-{}:1.{}", c % 20, c % 3),
            state: "running".into(),
            labels: vec![
                ("app".into(), format!("svc-{}", c % 20)),
                ("tier".into(), "backend".into()),
            ],
            pid: Some(10_000 + c as u32),
            ports: vec![Port {
                container_port: 8080,
                host_port: Some(30_000 + c as u16),
                protocol: "tcp".into(),
                host_ip: None,
            }],
            networks: vec![Network {
                name: "bridge".into(),
                ip_address: Some(format!("172.17.{}.{}", c / 250, c % 250 + 2)),
            }],
        })
        .collect();
    report.processes = (0..shape.processes)
        .map(|p| {
            let container = (shape.containers > 0 && p.is_multiple_of(2))
                .then(|| report.containers[p % shape.containers].id.clone());
            Process {
                pid: 10_000 + p as u32,
                ppid: Some(1),
                comm: format!("worker-{}", p % 50),
                cmdline: vec![
                    format!("/usr/bin/worker-{}", p % 50),
                    "--config".into(),
                    "/etc/app.toml".into(),
                ],
                user: Some("app".into()),
                cgroup: container.as_ref().map(|c| format!("/docker/{c}")),
                container_id: container,
                cpu_percent: Some(rng.random_range(0.0..5.0)),
                rss_bytes: Some(rng.random_range(10..500) << 20),
                start_ns: Some(1_000_000_000),
                exited: false,
            }
        })
        .collect();
    report.connections = (0..shape.connections)
        .map(|i| connection(&mut rng, ip, hosts, shape, i as u32))
        .collect();
    report.collection_mode = "ebpf".into();
    report
}

fn connection(rng: &mut StdRng, ip: Ipv4Addr, hosts: u32, shape: Shape, i: u32) -> Connection {
    let peer = host_ip(rng.random_range(0..hosts.max(1)));
    let outbound = i.is_multiple_of(2);
    let (local_port, remote_port) = if outbound {
        (20_000 + (i % 40_000) as u16, 8080)
    } else {
        (8080, 20_000 + (i % 40_000) as u16)
    };
    Connection {
        local: SocketAddr::new(IpAddr::V4(ip), local_port),
        remote: SocketAddr::new(IpAddr::V4(peer), remote_port),
        nat_destination: None,
        pid: Some(10_000 + i % shape.processes.max(1) as u32),
        direction: if outbound {
            Direction::Outbound
        } else {
            Direction::Inbound
        },
        closed: false,
        bytes_sent: rng.random_range(100..1_000_000),
        bytes_received: rng.random_range(100..1_000_000),
        retransmits: 0,
    }
}

/// One second of steady-state change: counters of 2% of connections move, 1% of connections
/// close and as many open, 1% of processes change CPU and memory, the host's uptime moves.
pub fn churn(report: &mut Report, second: u32, hosts: u32, shape: Shape, rng: &mut StdRng) {
    let ip = match report
        .host
        .as_ref()
        .and_then(|h| h.interfaces.first())
        .and_then(|i| i.addresses.first())
    {
        Some(address) => address
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or(Ipv4Addr::LOCALHOST),
        None => Ipv4Addr::LOCALHOST,
    };
    let n = report.connections.len();
    for _ in 0..n / 50 {
        let c = &mut report.connections[rng.random_range(0..n)];
        c.bytes_sent += rng.random_range(100..10_000);
        c.bytes_received += rng.random_range(100..10_000);
    }
    for k in 0..n / 100 {
        let slot = rng.random_range(0..n);
        let fresh = shape.connections as u32 + second * 1_000 + k as u32;
        report.connections[slot] = connection(rng, ip, hosts, shape, fresh);
    }
    let p = report.processes.len();
    for _ in 0..p / 100 {
        let process = &mut report.processes[rng.random_range(0..p)];
        process.cpu_percent = Some(rng.random_range(0.0..5.0));
        process.rss_bytes = Some(rng.random_range(10..500) << 20);
    }
    if let Some(host) = report.host.as_mut() {
        host.uptime_seconds += 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_reports_and_their_deltas_survive_the_wire() {
        let shape = Shape {
            containers: 5,
            processes: 20,
            connections: 20,
        };
        let mut report = host("a", 3, 10, shape, 1);
        let limits = proto::Limits::default();
        let decoded = proto::compress::open(&proto::compress::seal(&report), &limits);
        assert_eq!(decoded.as_ref().map_err(ToString::to_string), Ok(&report));
        let mut rng = StdRng::seed_from_u64(2);
        churn(&mut report, 1, 10, shape, &mut rng);
        let mut differ = agent::report::delta::Differ::new(100);
        differ.next(host("a", 3, 10, shape, 1));
        let delta = differ.next(report);
        let decoded = proto::compress::open(&proto::compress::seal(&delta), &limits);
        assert_eq!(decoded.as_ref().map_err(ToString::to_string), Ok(&delta));
        // As the aggregator load program sends them.
        let shape = Shape {
            containers: 500,
            processes: 20,
            connections: 20,
        };
        let mut content = host("sim-16-bf6cbff3", 16, 20, shape, 3);
        let mut differ = agent::report::delta::Differ::new(120);
        for second in 1..5 {
            churn(&mut content, second, 20, shape, &mut rng);
            let report = differ.next(content.clone());
            let decoded = proto::compress::open(&proto::compress::seal(&report), &limits);
            assert!(
                decoded.is_ok(),
                "second {second}: {}",
                decoded
                    .err()
                    .map(|e| agent::error_chain(&e))
                    .unwrap_or_default()
            );
        }
    }
}
