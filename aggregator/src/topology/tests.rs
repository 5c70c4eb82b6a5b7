//! Merging reports from several agents into views, with edges resolved across hosts.

use proto::model::{
    Connection, Container, Direction, Host, Interface, Process, Report, ReportKind,
};

use super::{Topology, diff::diff};

fn process(pid: u32, comm: &str, container: Option<&str>) -> Process {
    Process {
        pid,
        comm: comm.into(),
        container_id: container.map(Into::into),
        ..Process::default()
    }
}

fn connection(local: &str, remote: &str, pid: u32, direction: Direction) -> Connection {
    Connection {
        local: local.parse().expect("addr"),
        remote: remote.parse().expect("addr"),
        nat_destination: None,
        pid: Some(pid),
        direction,
        closed: false,
        bytes_sent: 10,
        bytes_received: 10,
        retransmits: 0,
    }
}

fn full(agent: &str, ip: &str) -> Report {
    let mut report = Report::new(agent, 1, 0, ReportKind::Full);
    report.host = Some(Host {
        hostname: format!("host-{agent}"),
        interfaces: vec![Interface {
            name: "eth0".into(),
            addresses: vec![format!("{ip}/24")],
        }],
        ..Host::default()
    });
    report
}

/// Agent a's curl (in container c1) talks to agent b's nginx (in container c2) through a
/// translated address; agent b's sshd is reached by address only.
fn two_hosts() -> Topology {
    let mut topology = Topology::default();
    let mut a = full("a", "10.0.0.1");
    a.containers = vec![Container {
        id: "c1".into(),
        name: "client".into(),
        image: "curl:8".into(),
        ..Container::default()
    }];
    a.processes = vec![process(10, "curl", Some("c1")), process(11, "ssh", None)];
    let mut dialled = connection("10.0.0.1:40000", "10.96.0.1:80", 10, Direction::Outbound);
    dialled.nat_destination = Some("10.0.0.2:8080".parse().expect("addr"));
    a.connections = vec![
        dialled,
        connection("10.0.0.1:40001", "10.0.0.2:22", 11, Direction::Outbound),
        connection("127.0.0.1:5000", "127.0.0.1:6000", 11, Direction::Outbound),
    ];
    let mut b = full("b", "10.0.0.2");
    b.containers = vec![Container {
        id: "c2".into(),
        name: "web".into(),
        image: "nginx:1".into(),
        ..Container::default()
    }];
    b.processes = vec![
        process(20, "nginx", Some("c2")),
        process(21, "postgres", None),
    ];
    b.connections = vec![
        connection("10.0.0.2:8080", "10.0.0.1:40000", 20, Direction::Inbound),
        // Agent b's own loopback server on the port agent a dialled on its loopback.
        connection("127.0.0.1:6000", "127.0.0.1:5001", 21, Direction::Inbound),
    ];
    for agent in ["a", "b"] {
        topology.connected(agent);
    }
    topology.apply(a, 1).expect("a applies");
    topology.apply(b, 1).expect("b applies");
    topology
}

fn edges(topology: &mut Topology, view: &str) -> Vec<(String, String)> {
    let views = topology.refresh();
    let mut edges: Vec<_> = views
        .get(view)
        .expect("view exists")
        .edges()
        .map(|(s, t)| (s.to_owned(), t.to_owned()))
        .collect();
    edges.sort();
    edges
}

#[test]
fn a_connection_through_nat_links_processes_containers_images_and_hosts() {
    let mut topology = two_hosts();
    assert_eq!(
        edges(&mut topology, "processes"),
        [("a;10".to_owned(), "b;20".to_owned())]
    );
    assert_eq!(
        edges(&mut topology, "containers"),
        [("c1".to_owned(), "c2".to_owned())]
    );
    assert_eq!(
        edges(&mut topology, "containers-by-image"),
        [("curl:8".to_owned(), "nginx:1".to_owned())]
    );
    assert_eq!(
        edges(&mut topology, "processes-by-name"),
        [("curl".to_owned(), "nginx".to_owned())]
    );
    // The ssh connection reaches host b by its address alone; loopback never crosses hosts.
    assert_eq!(
        edges(&mut topology, "hosts"),
        [("host-a".to_owned(), "host-b".to_owned())]
    );
}

#[test]
fn nodes_carry_parents_children_and_metadata() {
    let mut topology = two_hosts();
    let views = topology.refresh();
    let nginx = &views.get("processes").expect("view").nodes["b;20"];
    let parents: Vec<_> = nginx
        .parents
        .iter()
        .map(|p| (p.view, p.id.as_str()))
        .collect();
    assert_eq!(parents, [("containers", "c2"), ("hosts", "host-b")]);
    let web = &views.get("containers").expect("view").nodes["c2"];
    assert_eq!(web.metadata["image"], "nginx:1");
    assert_eq!(
        web.children
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["b;20"]
    );
    let host = &views.get("hosts").expect("view").nodes["host-b"];
    assert_eq!(host.metrics["processes"], 2.0);
    assert!(!host.stale);
}

#[test]
fn a_disconnected_agent_is_stale_then_expires_and_diffs_say_so() {
    let mut topology = two_hosts();
    let before = topology.refresh();
    let generation = topology.agent("b").expect("agent b").generation;
    topology.disconnected("b", generation - 1, 1_000);
    assert!(
        !topology.refresh().get("hosts").expect("view").nodes["host-b"].stale,
        "an older connection ended"
    );
    topology.disconnected("b", generation, 1_000);
    let stale = topology.refresh();
    assert!(stale.get("hosts").expect("view").nodes["host-b"].stale);
    let changed = diff(
        before.get("hosts").expect("view"),
        stale.get("hosts").expect("view"),
    );
    assert_eq!(
        changed
            .update
            .iter()
            .map(|n| n.id.as_str())
            .collect::<Vec<_>>(),
        ["host-b"]
    );
    topology.expire(1_000 + super::DEFAULT_STALE_WINDOW_MS + 1);
    let after = topology.refresh();
    let gone = diff(
        stale.get("processes").expect("view"),
        after.get("processes").expect("view"),
    );
    assert_eq!(gone.remove, ["b;20", "b;21"]);
    assert!(
        !after
            .get("hosts")
            .expect("view")
            .nodes
            .contains_key("host-b")
    );
}
