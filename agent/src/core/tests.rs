//! Tests of the core fed by event sequences as collectors produce them.

use super::{
    events::{ExecEvent, Owner, ProcessDetails},
    *,
};
use crate::model::{Container, Direction, NatMapping};

const CONTAINER: &str = "4fb82e3c8dd38c38fc362ac018ade180b616ec4d9ecd9ef80cf028d3efbe8df1";

fn pair(local: &str, remote: &str) -> SocketPair {
    SocketPair {
        local: local.parse().expect("test address"),
        remote: remote.parse().expect("test address"),
    }
}

fn container() -> Container {
    Container {
        id: CONTAINER.into(),
        name: "web".into(),
        image: "busybox".into(),
        labels: Default::default(),
        state: "running".into(),
        pid: Some(300),
        cgroup: Some(format!("/docker/{CONTAINER}")),
        ports: vec![],
        networks: vec![],
    }
}

#[test]
fn a_containerised_client_behind_dnat_is_fully_attributed() {
    let mut state = NodeState::new(Limits::default());
    let dialled = pair("172.17.0.2:40000", "10.99.0.1:80");
    for event in [
        Event::ContainersResync(vec![container()]),
        Event::CgroupPath {
            id: 77,
            path: format!("/docker/{CONTAINER}"),
        },
        Event::ProcessExec(ExecEvent {
            pid: 300,
            ppid: Some(1),
            comm: "wget".into(),
            filename: Some("/bin/wget".into()),
            cgroup_id: Some(77),
            start: Some(5),
        }),
        Event::NatAdded(NatMapping {
            original: dialled,
            real_destination: "10.0.1.2:8080".parse().expect("addr"),
        }),
        Event::ConnectionOpened {
            pair: dialled,
            direction: Direction::Outbound,
            owner: Some(Owner {
                pid: 300,
                comm: Some("wget".into()),
                cgroup_id: Some(77),
            }),
        },
    ] {
        state.apply(event, 10);
    }
    let snapshot = state.snapshot(&CollectionMode::Ebpf, 1.0);
    let connection = &snapshot.connections[0];
    assert_eq!(connection.container_id.as_deref(), Some(CONTAINER));
    assert_eq!(
        connection.nat_destination,
        Some("10.0.1.2:8080".parse().expect("addr"))
    );
    assert_eq!(snapshot.containers[0].processes, [300]);
    assert_eq!(snapshot.dropped.lost(), 0);
}

#[test]
fn bounds_refuse_and_count_instead_of_growing() {
    let limits = Limits {
        max_processes: 2,
        max_connections: 1,
        ..Limits::default()
    };
    let mut state = NodeState::new(limits);
    for pid in 1..=5 {
        state.apply(
            Event::ProcessDetails(ProcessDetails {
                pid,
                ..ProcessDetails::default()
            }),
            1,
        );
    }
    for port in 1..=3 {
        let pair = pair(&format!("10.0.0.1:{port}"), "10.0.0.2:80");
        state.apply(
            Event::ConnectionOpened {
                pair,
                direction: Direction::Outbound,
                owner: None,
            },
            1,
        );
    }
    assert_eq!(state.processes().len(), 2);
    assert_eq!(state.drops().table_full.processes, 3);
    assert_eq!(state.drops().table_full.connections, 2);
    assert_eq!(state.drops().lost(), 5);
}

#[test]
fn exited_processes_and_closed_connections_expire_after_retention() {
    let limits = Limits {
        retention_ns: 100,
        ..Limits::default()
    };
    let mut state = NodeState::new(limits);
    let p = pair("10.0.0.1:1", "10.0.0.2:2");
    state.apply(
        Event::ProcessDetails(ProcessDetails {
            pid: 1,
            ..ProcessDetails::default()
        }),
        0,
    );
    state.apply(
        Event::ConnectionOpened {
            pair: p,
            direction: Direction::Outbound,
            owner: None,
        },
        0,
    );
    state.apply(Event::ProcessExit { pid: 1 }, 10);
    state.apply(Event::ConnectionClosed { pair: p }, 10);
    state.expire(100);
    assert_eq!((state.processes().len(), state.connections().len()), (1, 1));
    state.expire(111);
    assert_eq!((state.processes().len(), state.connections().len()), (0, 0));
}

#[test]
fn kernel_drop_counters_are_reported_as_lost() {
    let mut state = NodeState::new(Limits::default());
    state.apply(
        Event::KernelDrops(KernelDrops {
            proc_ring_full: 2,
            tcp_ring_full: 1,
            ..KernelDrops::default()
        }),
        0,
    );
    state.apply(Event::ConntrackOverrun, 0);
    assert_eq!(state.drops().lost(), 3);
    assert_eq!(state.drops().conntrack_overruns, 1);
}
