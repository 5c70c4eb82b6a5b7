//! The procfs fallback (`--no-ebpf`) finds the same processes and connections by polling.

use std::process::Command;

use tests::{
    agent::{AgentRun, find},
    peer::Peer,
    privileged,
};

const PEER: &str = env!("CARGO_BIN_EXE_tcp-peer");

#[test]
fn the_procfs_fallback_finds_processes_and_connections_with_owners() {
    if !privileged("the_procfs_fallback_finds_processes_and_connections") {
        return;
    }
    let agent = AgentRun::start(2.5, &["--no-ebpf", "--scan-interval", "0.5"]);
    let mut sleeper = Command::new("sleep")
        .arg("27.1828")
        .spawn()
        .expect("start sleep");
    let server = Peer::serve(PEER, None, "127.0.0.1:0");
    let server_addr = server.word(1).to_owned();
    let client = Peer::connect(PEER, None, &server_addr, 1_000, 30.0);
    let client_addr = client.word(1).to_owned();
    let snapshot = agent.finish();
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    assert_eq!(snapshot["collection"]["mode"], "procfs");
    assert_eq!(snapshot["collection"]["reason"], "disabled by --no-ebpf");
    let pid = sleeper.id();
    let process = find(&snapshot, "processes", |p| p["pid"] == pid);
    assert_eq!(process.len(), 1, "pid {pid} found by polling");
    assert_eq!(
        process[0]["cmdline"],
        serde_json::json!(["sleep", "27.1828"])
    );

    let outbound = find(&snapshot, "connections", |c| {
        c["local"] == client_addr.as_str() && c["remote"] == server_addr.as_str()
    });
    assert_eq!(outbound.len(), 1, "{:#}", snapshot["connections"]);
    assert_eq!(outbound[0]["pid"], client.pid());
    assert_eq!(outbound[0]["direction"], "outbound");
    let inbound = find(&snapshot, "connections", |c| {
        c["local"] == server_addr.as_str() && c["remote"] == client_addr.as_str()
    });
    assert_eq!(inbound.len(), 1);
    assert_eq!(inbound[0]["pid"], server.pid());
    assert_eq!(inbound[0]["direction"], "inbound");
}
