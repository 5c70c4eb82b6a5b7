//! The report as plain Rust types: what agents build and the aggregator merges. These types
//! know nothing of FlatBuffers; [`crate::encode`] and [`crate::decode`] cross the boundary.

use std::net::SocketAddr;

/// Whether a report replaces what the aggregator holds for its agent or changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Full,
    Delta,
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Unknown,
    Outbound,
    Inbound,
}

/// A TCP connection as one end (a socket on the reporting host) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub nat_destination: Option<SocketAddr>,
    pub pid: Option<u32>,
    pub direction: Direction,
    pub closed: bool,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub retransmits: u64,
}

impl Connection {
    /// Where the connection really goes: the NAT destination when translated.
    pub fn destination(&self) -> SocketAddr {
        self.nat_destination.unwrap_or(self.remote)
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Process {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: String,
    pub cmdline: Vec<String>,
    pub user: Option<String>,
    pub cgroup: Option<String>,
    pub container_id: Option<String>,
    pub cpu_percent: Option<f32>,
    pub rss_bytes: Option<u64>,
    pub start_ns: Option<u64>,
    pub exited: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Port {
    pub container_port: u16,
    pub host_port: Option<u16>,
    pub protocol: String,
    pub host_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Network {
    pub name: String,
    pub ip_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: String,
    pub labels: Vec<(String, String)>,
    pub pid: Option<u32>,
    pub ports: Vec<Port>,
    pub networks: Vec<Network>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interface {
    pub name: String,
    /// Addresses with prefix length, `10.0.0.1/24`.
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Host {
    pub hostname: String,
    pub kernel_release: String,
    pub os: Option<String>,
    pub cpus: u32,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub load_average: [f32; 3],
    pub uptime_seconds: f64,
    pub cpu_usage_percent: Option<f32>,
    pub interfaces: Vec<Interface>,
}

/// One agent report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The agent's identity; the aggregator checks it against the agent's certificate.
    pub agent_id: String,
    /// Increases by one with every report the agent sends.
    pub sequence: u64,
    /// When the agent built it, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    pub kind: ReportKind,
    /// Present in full reports and when the host's facts changed.
    pub host: Option<Host>,
    pub processes: Vec<Process>,
    pub removed_processes: Vec<u32>,
    pub containers: Vec<Container>,
    pub removed_containers: Vec<String>,
    pub connections: Vec<Connection>,
    pub removed_connections: Vec<(SocketAddr, SocketAddr)>,
    pub collection_mode: String,
    pub events_lost: u64,
}

impl Report {
    /// An empty report of `kind`.
    pub fn new(
        agent_id: impl Into<String>,
        sequence: u64,
        timestamp_ms: u64,
        kind: ReportKind,
    ) -> Self {
        Self {
            agent_id: agent_id.into(),
            sequence,
            timestamp_ms,
            kind,
            host: None,
            processes: Vec::new(),
            removed_processes: Vec::new(),
            containers: Vec::new(),
            removed_containers: Vec::new(),
            connections: Vec::new(),
            removed_connections: Vec::new(),
            collection_mode: String::new(),
            events_lost: 0,
        }
    }
}
