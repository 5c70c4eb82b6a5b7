//! Containers from the Docker engine through bollard, kept current from its event stream.
//!
//! [`DockerClient::connect`] finds the engine like the docker CLI (`DOCKER_HOST`, else
//! `/var/run/docker.sock`) and negotiates the API version down to the engine's; no engine gives
//! `Ok(None)`. [`DockerClient::containers`] inspects every container into a [`Container`];
//! [`DockerClient::changes`] says which container to re-inspect. The inspect conversion is
//! pure: missing or malformed fields become `None` or empty. The cgroup path comes from
//! `/proc/<pid>/cgroup` of the init process, as seen from the agent's cgroup namespace.

use std::{cmp::Reverse, collections::HashMap, future::ready, io, net::IpAddr, time::UNIX_EPOCH};

use bollard::{
    Docker,
    errors::Error as BollardError,
    models::EventMessageTypeEnum as EventType,
    models::{ContainerInspectResponse, EndpointSettings, EventMessage, PortBinding, PortMap},
    query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder},
};
use futures_util::{Stream, StreamExt, TryStreamExt, stream};

use crate::model::{Container, ContainerNetwork, PublishedPort};

/// How many inspect requests [`DockerClient::containers`] keeps in flight.
const INSPECT_CONCURRENCY: usize = 8;

/// Failures talking to the Docker engine.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The client could not be set up (e.g. an unsupported `DOCKER_HOST` scheme).
    #[error("connecting to the docker engine")]
    Connect(#[source] BollardError),
    /// The engine answered `/version` with an error or an unreadable version.
    #[error("negotiating the docker api version")]
    Negotiate(#[source] BollardError),
    /// Listing containers failed.
    #[error("listing docker containers")]
    List(#[source] BollardError),
    /// Inspecting one container failed (other than it being gone).
    #[error("inspecting docker container {id}")]
    Inspect {
        /// The container id or name asked for.
        id: String,
        /// What the engine or the transport reported.
        #[source]
        source: BollardError,
    },
    /// The event stream failed.
    #[error("reading the docker event stream")]
    Events(#[source] BollardError),
}

/// A connected engine (wraps bollard::Docker after version negotiation).
#[derive(Debug, Clone)]
pub struct DockerClient {
    docker: Docker,
}

/// A container changed: re-inspect it (`removed` is true for destroy events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerChange {
    /// Full container id.
    pub id: String,
    /// The engine's action as sent: `create`, `start`, `die`, `health_status: healthy`, ...
    pub action: String,
    /// The container is gone for good (`destroy`): there is nothing left to inspect.
    pub removed: bool,
}

impl DockerClient {
    /// Connects with the local defaults (DOCKER_HOST or /var/run/docker.sock) and negotiates
    /// the API version. Ok(None) when no engine is there (socket missing or refused): a host
    /// without Docker is normal.
    pub async fn connect() -> Result<Option<Self>, DockerError> {
        let docker = match Docker::connect_with_defaults() {
            Err(e) if engine_absent(&e) => return Ok(None),
            connected => connected.map_err(DockerError::Connect)?,
        };
        let docker = match docker.negotiate_version().await {
            Err(e) if engine_absent(&e) => return Ok(None),
            negotiated => negotiated.map_err(DockerError::Negotiate)?,
        };
        Ok(Some(Self { docker }))
    }

    /// The engine client itself, for the executor's container tasks.
    pub fn engine(&self) -> &Docker {
        &self.docker
    }

    /// The negotiated API version string, for logs.
    pub fn api_version(&self) -> String {
        self.docker.client_version().to_string()
    }

    /// All containers (running and stopped), each fully inspected, in the engine's list order
    /// (newest first). One removed between listing and inspecting is left out.
    pub async fn containers(&self) -> Result<Vec<Container>, DockerError> {
        let options = ListContainersOptionsBuilder::new().all(true).build();
        let listed = self.docker.list_containers(Some(options)).await;
        let ids = listed.map_err(DockerError::List)?.into_iter();
        let found: Vec<Option<Container>> = stream::iter(ids.filter_map(|c| c.id))
            .map(|id| async move { self.container(&id).await })
            .buffered(INSPECT_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// One container inspected; Ok(None) if it no longer exists (404).
    pub async fn container(&self, id: &str) -> Result<Option<Container>, DockerError> {
        let inspected = match self.docker.inspect_container(id, None).await {
            Ok(inspected) => inspected,
            Err(e) if is_gone(&e) => return Ok(None),
            Err(source) => {
                return Err(DockerError::Inspect {
                    id: id.to_owned(),
                    source,
                });
            }
        };
        let Some(mut container) = container_from_inspect(inspected) else {
            tracing::debug!(id, "docker inspect without a container id; skipped");
            return Ok(None);
        };
        if let Some(pid) = container.pid {
            container.cgroup = read_cgroup(pid).await;
        }
        Ok(Some(container))
    }

    /// The engine's container event stream (type=container), mapped to ContainerChange.
    ///
    /// It starts at the time of this call (`since`, on the assumption that the engine shares
    /// our clock; it replays what happened before the first poll), so call it before
    /// [`Self::containers`] to miss nothing. It ends when the engine closes the connection
    /// (e.g. it restarts): reconnect then, and resync.
    pub fn changes(
        &self,
    ) -> impl Stream<Item = Result<ContainerChange, DockerError>> + Send + 'static {
        let filters = HashMap::from([("type", vec!["container"])]);
        let mut options = EventsOptionsBuilder::new().filters(&filters);
        if let Ok(now) = UNIX_EPOCH.elapsed() {
            options = options.since(&format!("{}.{:09}", now.as_secs(), now.subsec_nanos()));
        }
        let options = options.build();
        self.docker.events(Some(options)).filter_map(|event| {
            ready(match event {
                Ok(message) => change_from_event(message).map(Ok),
                Err(e) => Some(Err(DockerError::Events(e))),
            })
        })
    }
}

/// Whether a connection error means "no engine here" rather than a broken one.
fn engine_absent(error: &BollardError) -> bool {
    use io::ErrorKind::{ConnectionRefused, NotFound};
    let first: &(dyn std::error::Error + 'static) = error;
    let absent = |e: &(dyn std::error::Error + 'static)| {
        let kind = e.downcast_ref::<io::Error>().map(io::Error::kind);
        matches!(kind, Some(NotFound | ConnectionRefused))
    };
    let mut causes = std::iter::successors(Some(first), |e| e.source());
    matches!(error, BollardError::SocketNotFoundError(_)) || causes.any(absent)
}

/// The engine's answer when a container does not exist.
fn is_gone(error: &BollardError) -> bool {
    matches!(error, BollardError::DockerResponseServerError { status_code, .. } if *status_code == 404)
}

/// The cgroup of a running process, or None when it is gone or unreadable.
async fn read_cgroup(pid: u32) -> Option<String> {
    match tokio::fs::read_to_string(format!("/proc/{pid}/cgroup")).await {
        Ok(text) => cgroup_from_proc(&text),
        Err(error) => {
            tracing::debug!(pid, %error, "reading a container's cgroup");
            None
        }
    }
}

/// The path in a `/proc/<pid>/cgroup` file: the cgroup v2 `0::` line, else the first line with
/// a path; a path below the root wins over `/` (a hybrid host's unused v2 hierarchy).
fn cgroup_from_proc(text: &str) -> Option<String> {
    let lines = text.lines().filter_map(|line| {
        let (hierarchy, rest) = line.split_once(':')?;
        let (controllers, path) = rest.split_once(':')?;
        let unified = hierarchy == "0" && controllers.is_empty();
        (!path.is_empty()).then_some((path != "/", unified, path))
    });
    // Rank: below the root first, then the unified line, then the earliest line.
    let rank =
        |&(i, (below, unified, _)): &(usize, (bool, bool, &str))| (below, unified, Reverse(i));
    let best = lines.enumerate().max_by_key(rank);
    best.map(|(_, (_, _, path))| path.to_owned())
}

/// The agent's view of an inspect document, with no `cgroup` (that needs `/proc`). None when
/// the document has no id.
fn container_from_inspect(inspected: ContainerInspectResponse) -> Option<Container> {
    let id = inspected.id.filter(|id| !id.is_empty())?;
    let config = inspected.config.unwrap_or_default();
    let state = inspected.state.unwrap_or_default();
    let network = inspected.network_settings.unwrap_or_default();
    let bindings = inspected.host_config.and_then(|h| h.port_bindings);
    let ports = network.ports.filter(|p| !p.is_empty()).or(bindings);
    let endpoints = network.networks.unwrap_or_default().into_iter();
    let mut networks: Vec<_> = endpoints.map(|(name, e)| network_from(name, e)).collect();
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    let name = inspected.name.unwrap_or_default();
    let image = config.image.filter(|i| !i.is_empty()).or(inspected.image);
    let pid = state.pid.filter(|_| state.running == Some(true));
    Some(Container {
        id,
        name: name.trim_start_matches('/').to_owned(),
        image: image.unwrap_or_default(),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        state: state.status.map(|s| s.to_string()).unwrap_or_default(),
        pid: pid.and_then(|p| u32::try_from(p).ok()).filter(|&p| p > 0),
        cgroup: None,
        ports: published_ports(ports.unwrap_or_default()),
        networks,
    })
}

/// One entry per host binding, or one without a host side for an exposed, unpublished port.
/// Keys that are not `port[/protocol]` are skipped.
fn published_ports(ports: PortMap) -> Vec<PublishedPort> {
    let mut out = Vec::new();
    for (key, bindings) in ports {
        let (port, protocol) = key.split_once('/').unwrap_or((&key, "tcp"));
        let Ok(container_port) = port.parse::<u16>() else {
            continue;
        };
        let bindings = bindings.filter(|b| !b.is_empty());
        for binding in bindings.unwrap_or_else(|| vec![PortBinding::default()]) {
            out.push(PublishedPort {
                container_port,
                protocol: protocol.to_owned(),
                host_ip: parse_ip(binding.host_ip.as_deref()),
                host_port: binding.host_port.and_then(|p| p.parse().ok()),
            });
        }
    }
    out.sort_by_key(|p| (p.container_port, p.protocol.clone(), p.host_ip, p.host_port));
    out
}

/// A network attachment; the IPv6 address and gateway stand in when there is no IPv4 one.
fn network_from(name: String, endpoint: EndpointSettings) -> ContainerNetwork {
    let v6_ip = endpoint.global_ipv6_address.as_deref();
    let v6_gateway = endpoint.ipv6_gateway.as_deref();
    ContainerNetwork {
        name,
        ip_address: parse_ip(endpoint.ip_address.as_deref()).or_else(|| parse_ip(v6_ip)),
        gateway: parse_ip(endpoint.gateway.as_deref()).or_else(|| parse_ip(v6_gateway)),
        mac_address: endpoint.mac_address.filter(|m| !m.is_empty()),
    }
}

fn parse_ip(text: Option<&str>) -> Option<IpAddr> {
    text.and_then(|t| t.parse().ok())
}

/// A container event as a change to act on; None for other event types or without an id.
fn change_from_event(message: EventMessage) -> Option<ContainerChange> {
    if message.typ.is_some_and(|t| t != EventType::CONTAINER) {
        return None;
    }
    let id = message.actor.and_then(|a| a.id);
    let (id, action) = (id.filter(|id| !id.is_empty())?, message.action);
    let action = action.unwrap_or_default();
    let removed = action == "destroy";
    Some(ContainerChange {
        id,
        action,
        removed,
    })
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use std::collections::BTreeMap;

    use bollard::models::{ContainerConfig, ContainerState, EventActor, HostConfig};
    use bollard::models::{ContainerStateStatusEnum as Status, NetworkSettings};

    use super::*;

    type Ports<'a> = &'a [(&'a str, Option<Vec<PortBinding>>)];

    fn some(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    fn bind(ip: &str, port: &str) -> PortBinding {
        PortBinding {
            host_ip: some(ip),
            host_port: some(port),
        }
    }

    fn port(port: u16, protocol: &str, ip: &str, host_port: Option<u16>) -> PublishedPort {
        let (container_port, protocol, host_ip) = (port, protocol.to_owned(), ip.parse().ok());
        PublishedPort {
            container_port,
            protocol,
            host_ip,
            host_port,
        }
    }

    /// What a 20.10 engine says after `docker run -p 18081:80 --label app=web`.
    fn inspected(running: bool, ports: Ports<'_>) -> ContainerInspectResponse {
        let mut state = ContainerState::default();
        let status = [Status::EXITED, Status::RUNNING][usize::from(running)];
        (state.status, state.running, state.pid) = (Some(status), Some(running), Some(42));
        let mut config = ContainerConfig::default();
        config.image = some("strata-test/busybox");
        config.labels = Some(HashMap::from([("app".into(), "web".into())]));
        let (mut host, bound) = (HostConfig::default(), vec![bind("", "18081")]);
        host.port_bindings = Some(HashMap::from([("80/tcp".into(), Some(bound))]));
        let mut bridge = EndpointSettings::default();
        (bridge.ip_address, bridge.gateway) = (some("172.17.0.2"), some("172.17.0.1"));
        bridge.mac_address = some("02:42:ac:11:00:02");
        let mut net = NetworkSettings::default();
        net.ports = Some(
            ports
                .iter()
                .map(|(k, v)| ((*k).into(), v.clone()))
                .collect(),
        );
        net.networks = Some(HashMap::from([("bridge".into(), bridge)]));
        let mut c = ContainerInspectResponse::default();
        (c.id, c.name, c.image) = (some("abc123"), some("/web"), some("sha256:6070"));
        (c.state, c.config, c.host_config) = (Some(state), Some(config), Some(host));
        c.network_settings = Some(net);
        c
    }

    #[test]
    fn running_and_stopped_containers() {
        let published = Some(vec![bind("::", "18081"), bind("0.0.0.0", "18081")]);
        let running = inspected(true, &[("80/tcp", published), ("443/tcp", None)]);
        let v4 = port(80, "tcp", "0.0.0.0", Some(18081));
        let v6 = port(80, "tcp", "::", Some(18081));
        let mut expected = Container {
            id: "abc123".into(),
            name: "web".into(),
            image: "strata-test/busybox".into(),
            labels: BTreeMap::from([("app".into(), "web".into())]),
            state: "running".into(),
            pid: Some(42),
            cgroup: None,
            ports: vec![v4, v6, port(443, "tcp", "", None)],
            networks: vec![ContainerNetwork {
                name: "bridge".into(),
                ip_address: "172.17.0.2".parse().ok(),
                gateway: "172.17.0.1".parse().ok(),
                mac_address: some("02:42:ac:11:00:02"),
            }],
        };
        assert_eq!(container_from_inspect(running), Some(expected.clone()));
        // Stopped: no pid, and the ports come from HostConfig.PortBindings.
        (expected.state, expected.pid) = ("exited".into(), None);
        expected.ports = vec![port(80, "tcp", "", Some(18081))];
        let stopped = container_from_inspect(inspected(false, &[]));
        assert_eq!(stopped, Some(expected));
    }

    #[test]
    fn malformed_inspect_gives_empty_fields() {
        let empty = ContainerInspectResponse::default();
        assert_eq!(container_from_inspect(empty), None);
        let udp = Some(vec![bind("?", "x")]);
        let mut bad = inspected(true, &[("x/tcp", None), ("70000", None), ("53/udp", udp)]);
        let (mut state, mut endpoint) = (ContainerState::default(), EndpointSettings::default());
        (state.running, state.pid) = (Some(true), Some(-1));
        (bad.state, bad.config) = (Some(state), None);
        (endpoint.ip_address, endpoint.gateway) = (some(""), some("nonsense"));
        if let Some(settings) = bad.network_settings.as_mut() {
            settings.networks = Some(HashMap::from([("bridge".into(), endpoint)]));
        }
        let c = container_from_inspect(bad).expect("an id");
        assert_eq!((c.image.as_str(), c.state.as_str()), ("sha256:6070", ""));
        assert_eq!((c.pid, c.labels.len()), (None, 0));
        assert_eq!(c.ports, [port(53, "udp", "", None)]);
        let network = c.networks.first().map(|n| (n.ip_address, n.gateway));
        assert_eq!(network, Some((None, None)));
    }

    #[test]
    fn cgroup_lines() {
        let hybrid = "9:name=systemd:/docker/a\n1:cpu:/docker/b\n0::/docker/c\n";
        assert_eq!(cgroup_from_proc(hybrid).as_deref(), Some("/docker/c"));
        let v1 = "junk\n12:memory:/docker/a\n1:cpu:/docker/b\n0::/\n";
        assert_eq!(cgroup_from_proc(v1).as_deref(), Some("/docker/a"));
        assert_eq!(cgroup_from_proc("1:cpu:/\n0::/\n").as_deref(), Some("/"));
        assert_eq!(cgroup_from_proc("0::\n"), None);
    }

    #[test]
    fn events_to_changes() {
        let change = |typ, action: &str, id: Option<&str>| {
            let (mut event, mut actor) = (EventMessage::default(), EventActor::default());
            actor.id = id.map(Into::into);
            (event.typ, event.action, event.actor) = (Some(typ), some(action), Some(actor));
            change_from_event(event).map(|c| (c.id, c.action, c.removed))
        };
        let destroy = change(EventType::CONTAINER, "destroy", Some("c1"));
        assert_eq!(destroy, Some(("c1".into(), "destroy".into(), true)));
        let start = change(EventType::CONTAINER, "start", Some("c1"));
        assert_eq!(start, Some(("c1".into(), "start".into(), false)));
        assert_eq!(change(EventType::IMAGE, "pull", Some("i")), None);
        assert_eq!(change(EventType::CONTAINER, "die", None), None);
    }
}
