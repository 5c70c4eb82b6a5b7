//! The serialisable picture of a node: what `strata-agent snapshot` prints and what reports
//! are built from.

use std::net::SocketAddr;

use serde::Serialize;

use super::{Drops, NodeState, connections::Connection, host::HostFacts, processes::Process};
use crate::model::Container;

/// How the agent collects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum CollectionMode {
    /// eBPF programs in the kernel, with procfs for details and pre-existing state.
    Ebpf,
    /// Polling procfs only, and why.
    Procfs { reason: String },
}

/// A process with the container it belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessView {
    #[serde(flatten)]
    pub process: Process,
    pub container_id: Option<String>,
}

/// A connection with its container and, when translated, its real destination.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    #[serde(flatten)]
    pub connection: Connection,
    pub container_id: Option<String>,
    /// The destination after NAT (a published port, a DNAT rule), from conntrack.
    pub nat_destination: Option<SocketAddr>,
}

/// A container with the pids of its processes.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerView {
    #[serde(flatten)]
    pub container: Container,
    pub processes: Vec<u32>,
}

/// The node at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub collection: CollectionMode,
    pub observed_seconds: f64,
    pub host: Option<HostFacts>,
    pub processes: Vec<ProcessView>,
    pub containers: Vec<ContainerView>,
    pub connections: Vec<ConnectionView>,
    pub dropped: Drops,
}

pub(super) fn build(state: &NodeState, mode: &CollectionMode, observed_seconds: f64) -> Snapshot {
    let mut processes: Vec<ProcessView> = state
        .processes()
        .iter()
        .map(|process| ProcessView {
            container_id: state.container_of_process(process.pid).map(str::to_owned),
            process: process.clone(),
        })
        .collect();
    processes.sort_by_key(|p| p.process.pid);

    let mut containers: Vec<ContainerView> = state
        .containers()
        .iter()
        .map(|container| ContainerView {
            processes: processes
                .iter()
                .filter(|p| p.process.alive() && p.container_id.as_deref() == Some(&container.id))
                .map(|p| p.process.pid)
                .collect(),
            container: container.clone(),
        })
        .collect();
    containers.sort_by(|a, b| a.container.name.cmp(&b.container.name));

    let mut connections: Vec<ConnectionView> = state
        .connections()
        .iter()
        .map(|connection| ConnectionView {
            container_id: connection_container(state, connection),
            nat_destination: state.connections().real_destination(&connection.pair()),
            connection: with_owner(state, connection),
        })
        .collect();
    connections.sort_by_key(|c| (c.connection.local, c.connection.remote));

    Snapshot {
        collection: mode.clone(),
        observed_seconds,
        host: state.host().cloned(),
        processes,
        containers,
        connections,
        dropped: *state.drops(),
    }
}

/// The connection, with its owner filled in from the listener table when the event that
/// opened it could not name one.
fn with_owner(state: &NodeState, connection: &Connection) -> Connection {
    let mut connection = connection.clone();
    if connection.pid.is_none()
        && let Some(owner) = state.connections().listener_owner(connection.local)
    {
        connection.pid = Some(owner.pid);
    }
    if connection.comm.is_none()
        && let Some(process) = connection.pid.and_then(|pid| state.processes().get(pid))
    {
        connection.comm = Some(process.comm.clone());
    }
    connection
}

fn connection_container(state: &NodeState, connection: &Connection) -> Option<String> {
    connection
        .pid
        .and_then(|pid| state.container_of_process(pid))
        .or_else(|| {
            connection
                .cgroup_id
                .and_then(|id| state.containers().container_of_cgroup(id))
        })
        .map(str::to_owned)
}
