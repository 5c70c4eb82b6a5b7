//! The agent's own description of what it sees on a node: processes, TCP connections,
//! containers and host facts. Collectors produce these types; the core state stores them; the
//! snapshot serialises them. Nothing here does I/O.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
};

use serde::Serialize;

/// Nanoseconds since boot (`CLOCK_BOOTTIME`), the clock eBPF and procfs start times share.
pub type BootNanos = u64;

/// The two ends of a TCP socket as its owner sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SocketPair {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl SocketPair {
    /// The pair as the peer sees it.
    pub fn reversed(self) -> Self {
        Self {
            local: self.remote,
            remote: self.local,
        }
    }
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// This host called `connect`.
    Outbound,
    /// This host accepted it on a listening socket.
    Inbound,
    /// Found by a scan; the scan cannot tell who opened it.
    Unknown,
}

/// One conntrack entry whose destination was rewritten (DNAT, a published port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NatMapping {
    /// The tuple as the initiator sent it: `local` is the initiator, `remote` the address it
    /// dialled.
    pub original: SocketPair,
    /// Where the connection really goes: the source address of the reply direction.
    pub real_destination: SocketAddr,
}

/// A container as the Docker engine describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    /// Full 64-hex-digit id.
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// Docker's state word: created, running, paused, restarting, exited, dead.
    pub state: String,
    /// Pid of the container's init process on the host, when running.
    pub pid: Option<u32>,
    /// cgroup path of the container (relative to the cgroup mount), when known.
    pub cgroup: Option<String>,
    pub ports: Vec<PublishedPort>,
    pub networks: Vec<ContainerNetwork>,
}

/// A container port and where the host publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedPort {
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub host_ip: Option<IpAddr>,
    pub host_port: Option<u16>,
}

/// A network a container is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerNetwork {
    pub name: String,
    pub ip_address: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
    pub mac_address: Option<String>,
}

/// A network interface of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac_address: Option<String>,
    pub mtu: Option<u32>,
    pub up: bool,
    pub addresses: Vec<InterfaceAddress>,
}

/// An address assigned to an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceAddress {
    pub address: IpAddr,
    pub prefix_len: u8,
}
