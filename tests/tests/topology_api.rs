//! The topology API with a real agent and Docker engine: a container's connections appear
//! under the container, filters select by label, and the WebSocket sends diffs as the node
//! changes.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::{
    cluster::{Agent, Aggregator},
    docker::{self, Container},
    privileged, unique,
};

const PATIENCE: Duration = Duration::from_secs(30);

fn start(name: &str) -> (Aggregator, Agent, std::path::PathBuf) {
    let work = std::env::temp_dir().join(unique(name));
    let _ = std::fs::remove_dir_all(&work);
    let aggregator = Aggregator::start(&work.join("aggregator"), "127.0.0.1", &[]);
    let token = aggregator.token();
    let agent = Agent::start(
        None,
        None,
        aggregator.quic,
        &token,
        &work.join("agent"),
        &["--scan-interval", "1"],
    );
    aggregator.wait_for("/api/agents", PATIENCE, |a| {
        a["agents"][0]["connected"] == true
    });
    (aggregator, agent, work)
}

fn nodes(view: &Value) -> &[Value] {
    view["nodes"].as_array().map_or(&[], Vec::as_slice)
}

#[test]
fn a_containers_connections_appear_under_the_container() {
    if !privileged("a_containers_connections_appear_under_the_container") {
        return;
    }
    docker::ensure_image();
    let container = Container::run(
        &unique("strata-topo-web-"),
        &["-p", "80", "--label", "strata.test=topology"],
        &["httpd", "-f", "-p", "80"],
    );
    let host_port =
        container.inspect("{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}");
    let gateway = container.inspect("{{.NetworkSettings.Gateway}}");
    let (aggregator, _agent, work) = start("strata-topo-");
    let me = std::process::id();
    let request = || {
        let mut stream = TcpStream::connect(format!("{gateway}:{host_port}")).expect("connect");
        stream
            .write_all(b"GET / HTTP/1.0\r\n\r\n")
            .expect("request");
        let _ = stream.read_to_end(&mut Vec::new());
    };
    request();

    let deadline = Instant::now() + PATIENCE;
    let (served_by, view) = loop {
        request();
        let view = aggregator.get("/api/topology/processes");
        let inside = nodes(&view).iter().find(|n| {
            n["parents"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["id"] == container.id.as_str()))
        });
        let mine = nodes(&view)
            .iter()
            .find(|n| n["metadata"]["pid"] == me.to_string().as_str());
        if let (Some(inside), Some(mine)) = (inside, mine)
            && mine["adjacency"]
                .as_array()
                .is_some_and(|a| a.contains(&inside["id"]))
        {
            break (inside["id"].as_str().unwrap_or("").to_owned(), view);
        }
        assert!(
            Instant::now() < deadline,
            "no edge from this test to the container's httpd: {view:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        nodes(&view)
            .iter()
            .any(|n| n["id"] == served_by.as_str() && n["label"] == "httpd")
    );

    let detail = aggregator.get(&format!("/api/topology/containers/{}", container.id));
    assert_eq!(detail["node"]["metadata"]["label.strata.test"], "topology");
    let children = &detail["node"]["children"];
    assert!(
        children
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["id"] == served_by.as_str())),
        "{detail:#}"
    );
    let filtered = aggregator.get("/api/topology/containers?label=strata.test=topology");
    assert_eq!(nodes(&filtered).len(), 1, "{filtered:#}");
    let none = aggregator.get("/api/topology/containers?label=strata.test=nothing");
    assert!(nodes(&none).is_empty());
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn the_websocket_sends_the_view_then_diffs_as_processes_come_and_go() {
    if !privileged("the_websocket_sends_the_view_then_diffs") {
        return;
    }
    let (aggregator, _agent, work) = start("strata-ws-");
    let url = format!("ws://{}/api/topology/processes-by-name/ws", aggregator.http);
    let (mut socket, _) = tungstenite::connect(&url).expect("WebSocket upgrade");
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_mut() {
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("read timeout");
    }
    let first: Value = serde_json::from_str(
        socket
            .read()
            .expect("first message")
            .to_text()
            .expect("text"),
    )
    .expect("JSON diff");
    assert!(
        first["add"].as_array().is_some_and(|a| !a.is_empty()),
        "the whole view comes first"
    );

    // A process with a name nothing else on the machine has.
    let probe = work.join("strata-wsprobe");
    std::fs::create_dir_all(&work).expect("work dir");
    std::fs::copy("/bin/sleep", &probe).expect("copy sleep");
    let mut sleeper = std::process::Command::new(&probe)
        .arg("44.4")
        .spawn()
        .expect("start the probe");
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(
            Instant::now() < deadline,
            "no diff adding the probe process"
        );
        let message = socket.read().expect("a diff");
        let diff: Value =
            serde_json::from_str(message.to_text().expect("text")).expect("JSON diff");
        let changed = diff["add"]
            .as_array()
            .into_iter()
            .chain(diff["update"].as_array())
            .flatten();
        if changed.clone().any(|n| n["id"] == "strata-wsprobe") {
            break;
        }
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let error = ureq::get(&format!("http://{}/api/topology/nothing", aggregator.http)).call();
    assert!(
        matches!(error, Err(ureq::Error::StatusCode(404))),
        "{error:?}"
    );
    let _ = std::fs::remove_dir_all(&work);
}
