//! The agent in eBPF mode against the real kernel: processes, TCP connections with bytes, and
//! NAT resolution through conntrack across network namespaces the test creates.

use std::{process::Command, time::Duration};

use serde_json::Value;
use tests::{
    agent::{AgentRun, find},
    netns::{Namespace, NftTable},
    peer::Peer,
    privileged, unique,
};

const PEER: &str = env!("CARGO_BIN_EXE_tcp-peer");

fn connection<'a>(snapshot: &'a Value, local: &str, remote: &str) -> &'a Value {
    let found = find(snapshot, "connections", |c| {
        c["local"] == local && c["remote"] == remote
    });
    assert_eq!(
        found.len(),
        1,
        "connection {local} -> {remote} in {:#}",
        snapshot["connections"]
    );
    found[0]
}

#[test]
fn a_process_started_after_the_agent_appears_with_pid_parent_and_cmdline() {
    if !privileged("a_process_started_after_the_agent_appears") {
        return;
    }
    let agent = AgentRun::start(2.5, &[]);
    let mut sleeper = Command::new("sleep")
        .arg("31.4159")
        .spawn()
        .expect("start sleep");
    let snapshot = agent.finish();
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    assert_eq!(
        snapshot["collection"]["mode"], "ebpf",
        "{:#}",
        snapshot["collection"]
    );
    let pid = sleeper.id();
    let found = find(&snapshot, "processes", |p| p["pid"] == pid);
    assert_eq!(found.len(), 1, "pid {pid} in the snapshot");
    let process = found[0];
    assert_eq!(process["comm"], "sleep");
    assert_eq!(process["cmdline"], serde_json::json!(["sleep", "31.4159"]));
    assert_eq!(process["ppid"], std::process::id());
    assert!(
        process["start_ns"].as_u64().is_some_and(|ns| ns > 0),
        "{process:#}"
    );
    assert_eq!(snapshot["dropped"]["kernel_proc_ring_full"], 0);
}

#[test]
fn a_tcp_connection_between_two_processes_appears_from_both_ends_with_bytes() {
    if !privileged("a_tcp_connection_between_two_processes_appears") {
        return;
    }
    let agent = AgentRun::start(3.0, &[]);
    let server = Peer::serve(PEER, None, "127.0.0.1:0");
    let server_addr = server.word(1).to_owned();
    let client = Peer::connect(PEER, None, &server_addr, 20_000, 30.0);
    let client_addr = client.word(1).to_owned();
    let snapshot = agent.finish();

    let outbound = connection(&snapshot, &client_addr, &server_addr);
    assert_eq!(outbound["pid"], client.pid());
    assert_eq!(outbound["direction"], "outbound");
    assert!(
        outbound["bytes_sent"].as_u64() >= Some(20_000),
        "{outbound:#}"
    );
    assert!(
        outbound["bytes_received"].as_u64() >= Some(20_000),
        "{outbound:#}"
    );
    assert_eq!(outbound["closed_at_ns"], Value::Null);

    let inbound = connection(&snapshot, &server_addr, &client_addr);
    assert_eq!(inbound["pid"], server.pid());
    assert_eq!(inbound["direction"], "inbound");
    assert!(
        inbound["bytes_received"].as_u64() >= Some(20_000),
        "{inbound:#}"
    );
    assert_eq!(snapshot["dropped"]["kernel_tcp_ring_full"], 0);
}

#[test]
fn an_ipv6_connection_keeps_its_ipv6_addresses() {
    if !privileged("an_ipv6_connection_keeps_its_ipv6_addresses") {
        return;
    }
    let agent = AgentRun::start(2.5, &[]);
    let server = Peer::serve(PEER, None, "[::1]:0");
    let server_addr = server.word(1).to_owned();
    let client = Peer::connect(PEER, None, &server_addr, 4_000, 30.0);
    let client_addr = client.word(1).to_owned();
    assert!(client_addr.starts_with("[::1]:"), "{client_addr}");
    let snapshot = agent.finish();

    let outbound = connection(&snapshot, &client_addr, &server_addr);
    assert_eq!(outbound["pid"], client.pid());
    assert!(
        outbound["bytes_sent"].as_u64() >= Some(4_000),
        "{outbound:#}"
    );
    let inbound = connection(&snapshot, &server_addr, &client_addr);
    assert_eq!(inbound["pid"], server.pid());
}

#[test]
fn retransmits_are_counted_on_a_lossy_path() {
    if !privileged("retransmits_are_counted_on_a_lossy_path") {
        return;
    }
    let server = Peer::serve(PEER, None, "127.0.0.1:0");
    let server_addr = server.word(1).to_owned();
    let port = server_addr.rsplit(':').next().expect("port").to_owned();
    // Drop every third data packet to the server as it arrives: the client has sent it, so
    // TCP must retransmit it. (A packet dropped on output is never counted as sent.)
    let _loss = NftTable::create(
        &unique("strata_loss_"),
        &format!(
            "chain input {{ type filter hook input priority 0; \
             tcp dport {port} meta length > 1000 numgen inc mod 3 == 1 drop; }}"
        ),
    );
    let agent = AgentRun::start(4.0, &[]);
    let client = Peer::connect(PEER, None, &server_addr, 200_000, 30.0);
    let client_addr = client.word(1).to_owned();
    let snapshot = agent.finish();

    let outbound = connection(&snapshot, &client_addr, &server_addr);
    assert!(outbound["retransmits"].as_u64() > Some(0), "{outbound:#}");
}

#[test]
fn a_connection_through_dnat_is_attributed_to_its_real_destination() {
    if !privileged("a_connection_through_dnat_is_attributed") {
        return;
    }
    let namespace = Namespace::create(&unique("stdn"), "10.201.0.1/24", "10.201.0.2/24");
    let _nat = NftTable::create(
        &unique("strata_dnat_"),
        "chain output { type nat hook output priority -100; \
         ip daddr 10.201.0.100 tcp dport 80 dnat to 10.201.0.2:8080; }",
    );
    let server = Peer::serve(PEER, Some(&namespace.name), "10.201.0.2:8080");
    let agent = AgentRun::start(3.0, &[]);
    let client = Peer::connect(PEER, None, "10.201.0.100:80", 1_000, 30.0);
    let client_addr = client.word(1).to_owned();
    let snapshot = agent.finish();

    let dialled = connection(&snapshot, &client_addr, "10.201.0.100:80");
    assert_eq!(dialled["pid"], client.pid());
    assert_eq!(dialled["nat_destination"], "10.201.0.2:8080", "{dialled:#}");
    // The accepting end lives in the namespace; eBPF sees it there too.
    let accepted = connection(&snapshot, "10.201.0.2:8080", &client_addr);
    assert_eq!(accepted["pid"], server.pid());
    assert_eq!(accepted["direction"], "inbound");
    drop(namespace);
    std::thread::sleep(Duration::from_millis(10));
}
