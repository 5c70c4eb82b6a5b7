//! Building the topology views from every agent's state: hosts, containers, container images,
//! processes and processes by name, with edges from connections resolved across hosts.
//!
//! A connection's far end is found by its destination (the NAT destination when the agent
//! resolved one): first among the local ends of connections other agents accepted, then among
//! the hosts' own addresses. Loopback and duplicated private addresses (every Docker bridge
//! uses 172.17.0.0/16) prefer the connection's own host.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::{IpAddr, SocketAddr},
};

use proto::model::Direction;
use serde::Serialize;

use super::agents::AgentState;

/// The views, by the name the API uses.
pub const VIEWS: [&str; 5] = [
    "hosts",
    "containers",
    "containers-by-image",
    "processes",
    "processes-by-name",
];

/// A reference to a node of another view.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct NodeRef {
    pub view: &'static str,
    pub id: String,
    pub label: String,
}

/// One node of a view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub id: String,
    pub label: String,
    /// The host (or hosts, for grouped views) the node lives on.
    pub hosts: BTreeSet<String>,
    /// True when every agent behind the node is disconnected.
    pub stale: bool,
    pub metadata: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    pub parents: BTreeSet<NodeRef>,
    pub children: BTreeSet<NodeRef>,
    /// Ids of the nodes this one has connections to.
    pub adjacency: BTreeSet<String>,
}

impl Node {
    fn new(id: String, label: String) -> Self {
        Self {
            id,
            label,
            hosts: BTreeSet::new(),
            stale: true,
            metadata: BTreeMap::new(),
            metrics: BTreeMap::new(),
            parents: BTreeSet::new(),
            children: BTreeSet::new(),
            adjacency: BTreeSet::new(),
        }
    }
}

/// One view: nodes by id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct View {
    pub nodes: BTreeMap<String, Node>,
    /// False for a view skipped by the last build (nobody was looking at it).
    #[serde(skip)]
    pub built: bool,
}

impl Default for View {
    fn default() -> Self {
        Self {
            nodes: BTreeMap::new(),
            built: true,
        }
    }
}

/// The views that hold a node per process; the largest by far, built only when wanted.
pub const PROCESS_VIEWS: [&str; 2] = ["processes", "processes-by-name"];

impl View {
    fn node(&mut self, id: &str, label: &str) -> &mut Node {
        self.nodes
            .entry(id.to_owned())
            .or_insert_with(|| Node::new(id.to_owned(), label.to_owned()))
    }

    /// Edges as (source, target) pairs.
    pub fn edges(&self) -> impl Iterator<Item = (&str, &str)> {
        self.nodes.values().flat_map(|n| {
            n.adjacency
                .iter()
                .map(move |target| (n.id.as_str(), target.as_str()))
        })
    }

    fn link(&mut self, source: &str, target: &str) {
        if source != target
            && self.nodes.contains_key(target)
            && let Some(node) = self.nodes.get_mut(source)
        {
            node.adjacency.insert(target.to_owned());
        }
    }
}

/// All views at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Views {
    pub views: BTreeMap<&'static str, View>,
}

impl Default for Views {
    /// Every view, empty.
    fn default() -> Self {
        Self {
            views: VIEWS.iter().map(|name| (*name, View::default())).collect(),
        }
    }
}

impl Views {
    pub fn get(&self, name: &str) -> Option<&View> {
        self.views.get(name)
    }
}

/// Ids of the nodes a process belongs to in each view.
struct Placement {
    host: String,
    process: String,
    name: String,
    container: Option<String>,
    image: Option<String>,
}

fn process_id(agent: &str, pid: u32) -> String {
    format!("{agent};{pid}")
}

fn without_prefix(address: &str) -> Option<IpAddr> {
    address.split('/').next()?.parse().ok()
}

/// Builds the views from the agents' states; the process views only with `process_views`
/// (edges between processes still feed the other views).
pub fn build<'a>(
    agents: impl IntoIterator<Item = &'a AgentState> + Clone,
    process_views: bool,
) -> Views {
    let mut hosts = View::default();
    let mut containers = View::default();
    let mut images = View::default();
    let mut processes = View::default();
    let mut names = View::default();
    let mut placements: HashMap<(String, u32), Placement> = HashMap::new();
    let mut host_of_ip: HashMap<IpAddr, Vec<String>> = HashMap::new();
    let mut accepted: HashMap<SocketAddr, Vec<(String, Option<u32>)>> = HashMap::new();
    let mut hostname_of: HashMap<&str, String> = HashMap::new();

    for agent in agents.clone() {
        let host_id = agent.hostname().to_owned();
        hostname_of.insert(&agent.agent_id, host_id.clone());
        let host = hosts.node(&host_id, &host_id);
        host.hosts.insert(host_id.clone());
        host.stale = !agent.connected;
        let h = &agent.host;
        host.metadata.extend([
            ("agent_id".into(), agent.agent_id.clone()),
            ("kernel".into(), h.kernel_release.clone()),
            ("os".into(), h.os.clone().unwrap_or_default()),
            ("collection".into(), agent.collection_mode.clone()),
        ]);
        host.metrics.extend([
            ("cpus".into(), f64::from(h.cpus)),
            ("memory_total_bytes".into(), h.memory_total_bytes as f64),
            (
                "memory_available_bytes".into(),
                h.memory_available_bytes as f64,
            ),
            ("load1".into(), f64::from(h.load_average[0])),
            ("processes".into(), agent.processes.len() as f64),
            ("containers".into(), agent.containers.len() as f64),
            ("connections".into(), agent.connections.len() as f64),
            ("events_lost".into(), agent.events_lost as f64),
        ]);
        if let Some(cpu) = h.cpu_usage_percent {
            host.metrics
                .insert("cpu_usage_percent".into(), f64::from(cpu));
        }
        for ip in h
            .interfaces
            .iter()
            .flat_map(|i| &i.addresses)
            .filter_map(|a| without_prefix(a))
        {
            if !ip.is_loopback() {
                host_of_ip
                    .entry(ip)
                    .or_default()
                    .push(agent.agent_id.clone());
            }
        }
        let host_ref = NodeRef {
            view: "hosts",
            id: host_id.clone(),
            label: host_id.clone(),
        };

        for container in agent.containers.values() {
            let node = containers.node(&container.id, &container.name);
            node.hosts.insert(host_id.clone());
            node.stale = !agent.connected;
            node.metadata.extend([
                ("name".into(), container.name.clone()),
                ("image".into(), container.image.clone()),
                ("state".into(), container.state.clone()),
            ]);
            for (key, value) in &container.labels {
                node.metadata.insert(format!("label.{key}"), value.clone());
            }
            let ports: Vec<String> = container
                .ports
                .iter()
                .map(|p| match p.host_port {
                    Some(host_port) => format!("{host_port}->{}/{}", p.container_port, p.protocol),
                    None => format!("{}/{}", p.container_port, p.protocol),
                })
                .collect();
            node.metadata.insert("ports".into(), ports.join(", "));
            node.parents.insert(host_ref.clone());
            let image = images.node(&container.image, &container.image);
            image.hosts.insert(host_id.clone());
            image.stale &= !agent.connected;
            *image.metrics.entry("containers".into()).or_default() += 1.0;
            image.children.insert(NodeRef {
                view: "containers",
                id: container.id.clone(),
                label: container.name.clone(),
            });
        }

        for process in agent.processes.values().filter(|p| !p.exited) {
            let id = process_id(&agent.agent_id, process.pid);
            let container = process
                .container_id
                .as_ref()
                .filter(|c| agent.containers.contains_key(*c))
                .cloned();
            let image = container
                .as_ref()
                .map(|c| agent.containers[c].image.clone());
            if process_views {
                let node = processes.node(&id, &process.comm);
                node.hosts.insert(host_id.clone());
                node.stale = !agent.connected;
                node.metadata.extend([
                    ("pid".into(), process.pid.to_string()),
                    ("comm".into(), process.comm.clone()),
                    ("cmdline".into(), process.cmdline.join(" ")),
                    ("user".into(), process.user.clone().unwrap_or_default()),
                ]);
                if let Some(cpu) = process.cpu_percent {
                    node.metrics.insert("cpu_percent".into(), f64::from(cpu));
                }
                if let Some(rss) = process.rss_bytes {
                    node.metrics.insert("rss_bytes".into(), rss as f64);
                }
                node.parents.insert(host_ref.clone());
                if let Some(container_id) = &container {
                    let label = agent.containers[container_id].name.clone();
                    let container_ref = NodeRef {
                        view: "containers",
                        id: container_id.clone(),
                        label,
                    };
                    node.parents.insert(container_ref);
                }
                let by_name = names.node(&process.comm, &process.comm);
                by_name.hosts.insert(host_id.clone());
                by_name.stale &= !agent.connected;
                *by_name.metrics.entry("processes".into()).or_default() += 1.0;
            }
            if let Some(container_id) = &container {
                let child = NodeRef {
                    view: "processes",
                    id: id.clone(),
                    label: process.comm.clone(),
                };
                containers.node(container_id, "").children.insert(child);
            }
            placements.insert(
                (agent.agent_id.clone(), process.pid),
                Placement {
                    host: host_id.clone(),
                    process: id,
                    name: process.comm.clone(),
                    container,
                    image,
                },
            );
        }
        if let Some(host) = hosts.nodes.get_mut(&host_id) {
            host.children
                .extend(agent.containers.values().map(|c| NodeRef {
                    view: "containers",
                    id: c.id.clone(),
                    label: c.name.clone(),
                }));
        }
        for connection in agent
            .connections
            .values()
            .filter(|c| c.direction == Direction::Inbound)
        {
            accepted
                .entry(connection.local)
                .or_default()
                .push((agent.agent_id.clone(), connection.pid));
        }
    }

    for agent in agents {
        for connection in agent.connections.values() {
            if connection.direction == Direction::Inbound {
                continue;
            }
            let Some(source) = connection
                .pid
                .and_then(|pid| placements.get(&(agent.agent_id.clone(), pid)))
            else {
                continue;
            };
            let destination = connection.destination();
            // Loopback stays on its host; other addresses prefer the own host, else must
            // be unambiguous.
            let host_local = destination.ip().is_loopback();
            let prefer_own = |candidates: &[(String, Option<u32>)]| {
                candidates
                    .iter()
                    .find(|(a, _)| *a == agent.agent_id)
                    .or_else(|| (!host_local && candidates.len() == 1).then(|| &candidates[0]))
                    .cloned()
            };
            let target = accepted.get(&destination).and_then(|c| prefer_own(c));
            let target_placement = target
                .as_ref()
                .and_then(|(a, pid)| pid.and_then(|pid| placements.get(&(a.clone(), pid))));
            match target_placement {
                Some(target) => {
                    hosts.link(&source.host, &target.host);
                    processes.link(&source.process, &target.process);
                    names.link(&source.name, &target.name);
                    if let (Some(a), Some(b)) = (&source.container, &target.container) {
                        containers.link(a, b);
                    }
                    if let (Some(a), Some(b)) = (&source.image, &target.image) {
                        images.link(a, b);
                    }
                }
                None => {
                    let target_agent = target.map(|(a, _)| a).or_else(|| {
                        host_of_ip
                            .get(&destination.ip())
                            .and_then(|agents| (agents.len() == 1).then(|| agents[0].clone()))
                    });
                    if let Some(target_host) =
                        target_agent.and_then(|a| hostname_of.get(a.as_str()))
                    {
                        hosts.link(&source.host, target_host);
                    }
                }
            }
        }
    }

    processes.built = process_views;
    names.built = process_views;
    let views = [
        ("hosts", hosts),
        ("containers", containers),
        ("containers-by-image", images),
        ("processes", processes),
        ("processes-by-name", names),
    ];
    Views {
        views: views.into_iter().collect(),
    }
}
