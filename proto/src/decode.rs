//! Decoding received buffers: size check, FlatBuffers verification under explicit limits,
//! then conversion to the plain Rust types. Nothing is read from a buffer that failed either.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use flatbuffers::VerifierOptions;

use crate::{
    fb,
    model::{
        Connection, Container, Direction, Host, Interface, Network, Port, Process, Report,
        ReportKind,
    },
};

/// What a received buffer may be, at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes in one buffer.
    pub max_bytes: usize,
    /// Nesting of tables and vectors.
    pub max_depth: usize,
    /// Tables in one buffer.
    pub max_tables: usize,
}

impl Default for Limits {
    /// Room for a host with thousands of containers and tens of thousands of connections.
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 16,
            max_tables: 1_000_000,
        }
    }
}

impl Limits {
    fn verifier_options(&self) -> VerifierOptions {
        VerifierOptions {
            max_depth: self.max_depth,
            max_tables: self.max_tables,
            max_apparent_size: self.max_bytes,
            ignore_missing_null_terminator: false,
        }
    }
}

/// Why a buffer was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("buffer of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("buffer failed FlatBuffers verification")]
    Invalid(#[from] flatbuffers::InvalidFlatbuffer),
    #[error("required field {0} is missing")]
    Missing(&'static str),
    #[error("compressed report does not decompress")]
    Compression(#[source] lz4_flex::block::DecompressError),
    #[error("unknown {what} value {value}")]
    UnknownValue { what: &'static str, value: i64 },
}

/// Checks size and structure; returns the verified root.
pub(crate) fn verified<'a, T>(
    buf: &'a [u8],
    limits: &Limits,
    root: fn(&VerifierOptions, &'a [u8]) -> Result<T, flatbuffers::InvalidFlatbuffer>,
) -> Result<T, DecodeError> {
    if buf.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge {
            size: buf.len(),
            limit: limits.max_bytes,
        });
    }
    Ok(root(&limits.verifier_options(), buf)?)
}

pub(crate) fn socket_addr(endpoint: &fb::Endpoint) -> SocketAddr {
    let mut octets = [0u8; 16];
    for (i, byte) in endpoint.addr().iter().enumerate().take(16) {
        octets[i] = byte;
    }
    let v6 = Ipv6Addr::from(octets);
    let ip = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
    SocketAddr::new(ip, endpoint.port())
}

fn text(value: Option<&str>) -> String {
    value.unwrap_or_default().to_owned()
}

fn nonzero<T: PartialEq + Default>(value: T) -> Option<T> {
    (value != T::default()).then_some(value)
}

fn process(p: fb::Process<'_>) -> Process {
    Process {
        pid: p.pid(),
        ppid: nonzero(p.ppid()),
        comm: text(p.comm()),
        cmdline: p
            .cmdline()
            .map(|c| c.iter().map(str::to_owned).collect())
            .unwrap_or_default(),
        user: p.user().map(str::to_owned),
        cgroup: p.cgroup().map(str::to_owned),
        container_id: p.container_id().map(str::to_owned),
        cpu_percent: Some(p.cpu_percent()).filter(|c| *c >= 0.0),
        rss_bytes: nonzero(p.rss_bytes()),
        start_ns: nonzero(p.start_ns()),
        exited: p.exited(),
    }
}

fn container(c: fb::Container<'_>) -> Result<Container, DecodeError> {
    Ok(Container {
        id: c
            .id()
            .ok_or(DecodeError::Missing("container.id"))?
            .to_owned(),
        name: text(c.name()),
        image: text(c.image()),
        state: text(c.state()),
        labels: c
            .labels()
            .map(|l| l.iter().map(|l| (text(l.key()), text(l.value()))).collect())
            .unwrap_or_default(),
        pid: nonzero(c.pid()),
        ports: c
            .ports()
            .map(|ports| {
                ports
                    .iter()
                    .map(|p| Port {
                        container_port: p.container_port(),
                        host_port: nonzero(p.host_port()),
                        protocol: text(p.protocol()),
                        host_ip: p.host_ip().map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        networks: c
            .networks()
            .map(|n| {
                n.iter()
                    .map(|n| Network {
                        name: text(n.name()),
                        ip_address: n.ip_address().map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn host(h: fb::Host<'_>) -> Host {
    Host {
        hostname: text(h.hostname()),
        kernel_release: text(h.kernel_release()),
        os: h.os().map(str::to_owned),
        cpus: h.cpus(),
        memory_total_bytes: h.memory_total_bytes(),
        memory_available_bytes: h.memory_available_bytes(),
        load_average: [h.load1(), h.load5(), h.load15()],
        uptime_seconds: h.uptime_seconds(),
        cpu_usage_percent: Some(h.cpu_usage_percent()).filter(|c| *c >= 0.0),
        interfaces: h
            .interfaces()
            .map(|i| {
                i.iter()
                    .map(|i| Interface {
                        name: text(i.name()),
                        addresses: i
                            .addresses()
                            .map(|a| a.iter().map(str::to_owned).collect())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn connection(c: fb::Connection<'_>) -> Result<Connection, DecodeError> {
    Ok(Connection {
        local: socket_addr(c.local().ok_or(DecodeError::Missing("connection.local"))?),
        remote: socket_addr(
            c.remote()
                .ok_or(DecodeError::Missing("connection.remote"))?,
        ),
        nat_destination: c.nat_destination().map(socket_addr),
        pid: nonzero(c.pid()),
        direction: match c.direction() {
            fb::Direction::Outbound => Direction::Outbound,
            fb::Direction::Inbound => Direction::Inbound,
            _ => Direction::Unknown,
        },
        closed: c.closed(),
        bytes_sent: c.bytes_sent(),
        bytes_received: c.bytes_received(),
        retransmits: c.retransmits(),
    })
}

/// Verifies and decodes a report.
pub fn report(buf: &[u8], limits: &Limits) -> Result<Report, DecodeError> {
    let r = verified(buf, limits, fb::root_as_report_with_opts)?;
    let kind = match r.kind() {
        fb::ReportKind::Full => ReportKind::Full,
        fb::ReportKind::Delta => ReportKind::Delta,
        other => {
            return Err(DecodeError::UnknownValue {
                what: "report kind",
                value: other.0.into(),
            });
        }
    };
    let agent_id = r
        .agent_id()
        .ok_or(DecodeError::Missing("report.agent_id"))?
        .to_owned();
    let mut report = Report::new(agent_id, r.sequence(), r.timestamp_ms(), kind);
    report.host = r.host().map(host);
    report.processes = r
        .processes()
        .map(|p| p.iter().map(process).collect())
        .unwrap_or_default();
    report.removed_processes = r
        .removed_processes()
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    report.containers = match r.containers() {
        Some(cs) => cs.iter().map(container).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    report.removed_containers = r
        .removed_containers()
        .map(|c| c.iter().map(str::to_owned).collect())
        .unwrap_or_default();
    report.connections = match r.connections() {
        Some(cs) => cs.iter().map(connection).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    report.removed_connections = r
        .removed_connections()
        .map(|keys| {
            keys.iter()
                .map(|k| (socket_addr(k.local()), socket_addr(k.remote())))
                .collect()
        })
        .unwrap_or_default();
    report.collection_mode = text(r.collection_mode());
    report.events_lost = r.events_lost();
    Ok(report)
}
