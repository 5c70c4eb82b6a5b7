//! Encoding reports into FlatBuffers.

use std::net::{IpAddr, SocketAddr};

use flatbuffers::{FlatBufferBuilder, WIPOffset};

use crate::{
    fb,
    model::{Container, Direction, Host, Process, Report, ReportKind},
};

/// An address in the wire's IPv6 form (IPv4 as IPv4-mapped).
pub(crate) fn endpoint(addr: SocketAddr) -> fb::Endpoint {
    let octets = match addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    fb::Endpoint::new(&octets, addr.port())
}

fn direction(direction: Direction) -> fb::Direction {
    match direction {
        Direction::Unknown => fb::Direction::Unknown,
        Direction::Outbound => fb::Direction::Outbound,
        Direction::Inbound => fb::Direction::Inbound,
    }
}

type Builder<'a> = FlatBufferBuilder<'a>;

fn strings<'a>(
    fbb: &mut Builder<'a>,
    items: &[String],
) -> WIPOffset<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<&'a str>>> {
    let offsets: Vec<_> = items.iter().map(|s| fbb.create_string(s)).collect();
    fbb.create_vector(&offsets)
}

fn process<'a>(fbb: &mut Builder<'a>, p: &Process) -> WIPOffset<fb::Process<'a>> {
    let comm = fbb.create_string(&p.comm);
    let cmdline = strings(fbb, &p.cmdline);
    let user = p.user.as_deref().map(|s| fbb.create_string(s));
    let cgroup = p.cgroup.as_deref().map(|s| fbb.create_string(s));
    let container_id = p.container_id.as_deref().map(|s| fbb.create_string(s));
    fb::Process::create(
        fbb,
        &fb::ProcessArgs {
            pid: p.pid,
            ppid: p.ppid.unwrap_or(0),
            comm: Some(comm),
            cmdline: Some(cmdline),
            user,
            cgroup,
            container_id,
            cpu_percent: p.cpu_percent.unwrap_or(-1.0),
            rss_bytes: p.rss_bytes.unwrap_or(0),
            start_ns: p.start_ns.unwrap_or(0),
            exited: p.exited,
        },
    )
}

fn container<'a>(fbb: &mut Builder<'a>, c: &Container) -> WIPOffset<fb::Container<'a>> {
    let labels: Vec<_> = c
        .labels
        .iter()
        .map(|(key, value)| {
            let args = fb::LabelArgs {
                key: Some(fbb.create_string(key)),
                value: Some(fbb.create_string(value)),
            };
            fb::Label::create(fbb, &args)
        })
        .collect();
    let labels = fbb.create_vector(&labels);
    let ports: Vec<_> = c
        .ports
        .iter()
        .map(|p| {
            let args = fb::PortArgs {
                container_port: p.container_port,
                host_port: p.host_port.unwrap_or(0),
                protocol: Some(fbb.create_string(&p.protocol)),
                host_ip: p.host_ip.as_deref().map(|ip| fbb.create_string(ip)),
            };
            fb::Port::create(fbb, &args)
        })
        .collect();
    let ports = fbb.create_vector(&ports);
    let networks: Vec<_> = c
        .networks
        .iter()
        .map(|n| {
            let args = fb::NetworkArgs {
                name: Some(fbb.create_string(&n.name)),
                ip_address: n.ip_address.as_deref().map(|ip| fbb.create_string(ip)),
            };
            fb::Network::create(fbb, &args)
        })
        .collect();
    let networks = fbb.create_vector(&networks);
    let args = fb::ContainerArgs {
        id: Some(fbb.create_string(&c.id)),
        name: Some(fbb.create_string(&c.name)),
        image: Some(fbb.create_string(&c.image)),
        state: Some(fbb.create_string(&c.state)),
        labels: Some(labels),
        pid: c.pid.unwrap_or(0),
        ports: Some(ports),
        networks: Some(networks),
    };
    fb::Container::create(fbb, &args)
}

fn host<'a>(fbb: &mut Builder<'a>, h: &Host) -> WIPOffset<fb::Host<'a>> {
    let interfaces: Vec<_> = h
        .interfaces
        .iter()
        .map(|i| {
            let args = fb::InterfaceArgs {
                name: Some(fbb.create_string(&i.name)),
                addresses: Some(strings(fbb, &i.addresses)),
            };
            fb::Interface::create(fbb, &args)
        })
        .collect();
    let interfaces = fbb.create_vector(&interfaces);
    let args = fb::HostArgs {
        hostname: Some(fbb.create_string(&h.hostname)),
        kernel_release: Some(fbb.create_string(&h.kernel_release)),
        os: h.os.as_deref().map(|os| fbb.create_string(os)),
        cpus: h.cpus,
        memory_total_bytes: h.memory_total_bytes,
        memory_available_bytes: h.memory_available_bytes,
        load1: h.load_average[0],
        load5: h.load_average[1],
        load15: h.load_average[2],
        uptime_seconds: h.uptime_seconds,
        cpu_usage_percent: h.cpu_usage_percent.unwrap_or(-1.0),
        interfaces: Some(interfaces),
    };
    fb::Host::create(fbb, &args)
}

/// Encodes a report; the bytes are what goes on the wire.
pub fn report(report: &Report) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(1024 + 128 * report.connections.len());
    let agent_id = fbb.create_string(&report.agent_id);
    let host = report.host.as_ref().map(|h| host(&mut fbb, h));
    let processes: Vec<_> = report
        .processes
        .iter()
        .map(|p| process(&mut fbb, p))
        .collect();
    let processes = fbb.create_vector(&processes);
    let removed_processes = fbb.create_vector(&report.removed_processes);
    let containers: Vec<_> = report
        .containers
        .iter()
        .map(|c| container(&mut fbb, c))
        .collect();
    let containers = fbb.create_vector(&containers);
    let removed_containers = strings(&mut fbb, &report.removed_containers);
    let connections: Vec<_> = report
        .connections
        .iter()
        .map(|c| {
            let (local, remote) = (endpoint(c.local), endpoint(c.remote));
            let nat = c.nat_destination.map(endpoint);
            let args = fb::ConnectionArgs {
                local: Some(&local),
                remote: Some(&remote),
                nat_destination: nat.as_ref(),
                pid: c.pid.unwrap_or(0),
                direction: direction(c.direction),
                closed: c.closed,
                bytes_sent: c.bytes_sent,
                bytes_received: c.bytes_received,
                retransmits: c.retransmits,
            };
            fb::Connection::create(&mut fbb, &args)
        })
        .collect();
    let connections = fbb.create_vector(&connections);
    let removed: Vec<fb::ConnectionKey> = report
        .removed_connections
        .iter()
        .map(|(local, remote)| fb::ConnectionKey::new(&endpoint(*local), &endpoint(*remote)))
        .collect();
    let removed_connections = fbb.create_vector(&removed);
    let collection_mode = fbb.create_string(&report.collection_mode);
    let root = fb::Report::create(
        &mut fbb,
        &fb::ReportArgs {
            agent_id: Some(agent_id),
            sequence: report.sequence,
            timestamp_ms: report.timestamp_ms,
            kind: match report.kind {
                ReportKind::Full => fb::ReportKind::Full,
                ReportKind::Delta => fb::ReportKind::Delta,
            },
            host,
            processes: Some(processes),
            removed_processes: Some(removed_processes),
            containers: Some(containers),
            removed_containers: Some(removed_containers),
            connections: Some(connections),
            removed_connections: Some(removed_connections),
            collection_mode: Some(collection_mode),
            events_lost: report.events_lost,
        },
    );
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}
