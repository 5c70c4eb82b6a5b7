//! The agent with a real Docker engine: a container appears with its processes, its published
//! port, and connections to it resolved through the port's DNAT to the container.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
};

use tests::{
    agent::{AgentRun, find},
    docker::{self, Container},
    privileged, unique,
};

#[test]
fn a_container_appears_with_its_processes_port_and_connections() {
    if !privileged("a_container_appears_with_its_processes_port_and_connections") {
        return;
    }
    docker::ensure_image();
    let container = Container::run(
        &unique("strata-test-web-"),
        &["-p", "80", "--label", "strata.test=web"],
        &["httpd", "-f", "-p", "80"],
    );
    let host_port: u16 = container
        .inspect("{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}")
        .parse()
        .expect("published host port");
    let gateway = container.inspect("{{.NetworkSettings.Gateway}}");
    let container_ip = container.inspect("{{.NetworkSettings.IPAddress}}");
    let container_pid: u32 = container.inspect("{{.State.Pid}}").parse().expect("pid");

    let agent = AgentRun::start(3.0, &[]);
    // From the host to the published port on the bridge gateway: Docker's DNAT applies.
    let mut stream = TcpStream::connect((gateway.as_str(), host_port)).expect("connect");
    let local = stream.local_addr().expect("local addr").to_string();
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(
        response.starts_with("HTTP/1."),
        "httpd answered: {response:?}"
    );
    let snapshot = agent.finish();

    let found = find(&snapshot, "containers", |c| {
        c["id"] == container.id.as_str()
    });
    assert_eq!(found.len(), 1, "container in {:#}", snapshot["containers"]);
    let seen = found[0];
    assert_eq!(seen["name"], container.name.as_str());
    assert_eq!(seen["image"], docker::IMAGE);
    assert_eq!(seen["state"], "running");
    assert_eq!(seen["labels"]["strata.test"], "web");
    assert_eq!(seen["pid"], container_pid);
    assert!(
        seen["processes"]
            .as_array()
            .is_some_and(|p| p.contains(&container_pid.into())),
        "container processes: {}",
        seen["processes"]
    );
    let published = seen["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .any(|p| p["container_port"] == 80 && p["host_port"] == host_port);
    assert!(published, "port 80 -> {host_port} in {}", seen["ports"]);

    let remote = format!("{gateway}:{host_port}");
    let dialled = find(&snapshot, "connections", |c| {
        c["local"] == local && c["remote"] == remote
    });
    assert_eq!(
        dialled.len(),
        1,
        "{local} -> {remote} in {:#}",
        snapshot["connections"]
    );
    assert_eq!(dialled[0]["pid"], std::process::id());
    assert_eq!(dialled[0]["nat_destination"], format!("{container_ip}:80"));
    let served = find(&snapshot, "connections", |c| {
        c["local"] == format!("{container_ip}:80")
    });
    assert!(
        served
            .iter()
            .any(|c| c["container_id"] == container.id.as_str()),
        "the container's end of the connection: {served:#?}"
    );
}
