//! An aggregator and three agents, each agent in its own network namespace and with its own
//! hostname, as on three machines: connections become edges across hosts, a killed and
//! restarted aggregator recovers everything from the agents' full reports, and misbehaving
//! clients are refused with a logged reason while the real agents carry on.

use std::time::Duration;

use proto::{control::Control, model::Report, model::ReportKind};
use serde_json::Value;
use tests::{
    cluster::{Agent, Aggregator},
    netns::Lan,
    peer::Peer,
    privileged,
    rogue::Rogue,
    unique,
};

const PEER: &str = env!("CARGO_BIN_EXE_tcp-peer");
const PATIENCE: Duration = Duration::from_secs(30);
/// The aggregator refuses reports over this size in this test.
const MAX_REPORT: usize = 1024 * 1024;

fn edges(view: &Value) -> Vec<(String, String)> {
    view["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| {
                    (
                        e["source"].as_str().unwrap_or("").to_owned(),
                        e["target"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The processes-view id of `pid` on `host`, if the view has it.
fn process_node(view: &Value, host: &str, pid: u32) -> Option<String> {
    view["nodes"].as_array()?.iter().find_map(|node| {
        let on_host = node["hosts"].as_array()?.iter().any(|h| h == host);
        let is_pid = node["metadata"]["pid"]
            .as_str()
            .and_then(|p| p.parse().ok())
            == Some(pid);
        (on_host && is_pid).then(|| node["id"].as_str().unwrap_or("").to_owned())
    })
}

/// Whether the processes view links client `pid` on node-1 to server `pid` on node-2, and the
/// hosts view links node-1 to node-2.
fn linked(aggregator: &Aggregator, client: u32, server: u32) -> bool {
    let processes = aggregator.get("/api/topology/processes");
    let (Some(from), Some(to)) = (
        process_node(&processes, "node-1", client),
        process_node(&processes, "node-2", server),
    ) else {
        return false;
    };
    let hosts = aggregator.get("/api/topology/hosts");
    edges(&processes).contains(&(from, to))
        && edges(&hosts).contains(&("node-1".to_owned(), "node-2".to_owned()))
}

fn connected_agents(aggregator: &Aggregator) -> Vec<(String, u64)> {
    aggregator.get("/api/agents")["agents"]
        .as_array()
        .map(|agents| {
            agents
                .iter()
                .filter(|a| a["connected"] == true)
                .map(|a| {
                    (
                        a["hostname"].as_str().unwrap_or("").to_owned(),
                        a["sequence"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn three_agents_build_one_topology_survive_an_aggregator_restart_and_outlast_bad_clients() {
    if !privileged("three_agents_build_one_topology") {
        return;
    }
    let lan = Lan::create(&unique("sl"), "10.202.0", 3);
    let work = std::env::temp_dir().join(unique("strata-cluster-"));
    let _ = std::fs::remove_dir_all(&work);
    let mut aggregator = Aggregator::start(
        &work.join("aggregator"),
        &lan.address(0),
        &["--max-report-bytes", &MAX_REPORT.to_string()],
    );
    let (http, quic) = (aggregator.http, aggregator.quic);
    let token = aggregator.token();
    let _agents: Vec<Agent> = (1..=3)
        .map(|i| {
            let state = work.join(format!("agent-{i}"));
            let args = ["--scope", "netns", "--no-docker", "--scan-interval", "1"];
            Agent::start(
                Some(lan.namespace(i)),
                Some(&format!("node-{i}")),
                quic,
                &token,
                &state,
                &args,
            )
        })
        .collect();
    aggregator.wait_for("/api/agents", PATIENCE, |answer| {
        answer["agents"]
            .as_array()
            .is_some_and(|a| a.iter().filter(|a| a["connected"] == true).count() == 3)
    });

    // A process on node-1 talks to a server on node-2.
    let server = Peer::serve(
        PEER,
        Some(lan.namespace(2)),
        &format!("{}:7000", lan.address(2)),
    );
    let client = Peer::connect(
        PEER,
        Some(lan.namespace(1)),
        &format!("{}:7000", lan.address(2)),
        4_000,
        300.0,
    );
    let deadline = std::time::Instant::now() + PATIENCE;
    while !linked(&aggregator, client.pid(), server.pid()) {
        assert!(
            std::time::Instant::now() < deadline,
            "no edge node-1 -> node-2 for the connection"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let summary = aggregator.get("/api/topology");
    assert!(
        summary["views"].as_array().is_some_and(|v| v.len() == 5),
        "{summary:#}"
    );
    let node = aggregator.get("/api/topology/hosts/node-2");
    assert_eq!(node["node"]["id"], "node-2");
    assert!(
        node["connections"]["inbound"]
            .as_array()
            .is_some_and(|i| i.contains(&"node-1".into())),
        "{node:#}"
    );
    let found = aggregator.get("/api/search?q=node-3");
    assert!(
        found["matches"].as_array().is_some_and(|m| !m.is_empty()),
        "{found:#}"
    );

    // Killed and restarted, the aggregator gets everything back from full reports.
    aggregator.kill_and_restart();
    let deadline = std::time::Instant::now() + PATIENCE;
    while connected_agents(&aggregator).len() < 3
        || !linked(&aggregator, client.pid(), server.pid())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the topology did not come back after the restart"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Bad clients are refused with a logged reason...
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let rogue = Rogue::new(quic);
        let identity = rogue.join(&aggregator.token()).await;

        let reason = rogue.without_certificate(identity.ca_der.clone()).await;
        assert!(
            reason.contains("client certificate is required"),
            "{reason}"
        );

        let mut session = rogue.session(&identity, &identity.agent_id).await;
        session.send(b"not a flatbuffer at all").await;
        assert_eq!(
            session.next_control().await,
            Some(Control::RequestFull),
            "malformed report"
        );
        session.send(&vec![0u8; MAX_REPORT + 1]).await;
        assert_eq!(
            session.next_control().await,
            Some(Control::RequestFull),
            "oversized report"
        );
        let mut valid = Report::new(identity.agent_id.clone(), 1, 0, ReportKind::Full);
        session.send(&proto::compress::seal(&valid)).await;
        assert_eq!(
            session.next_control().await,
            Some(Control::Ack { sequence: 1 }),
            "a valid report still works"
        );
        valid.agent_id = "someone-else".into();
        valid.sequence = 2;
        session.send(&proto::compress::seal(&valid)).await;
        let reason = session.closed().await;
        assert!(reason.contains("claims agent someone-else"), "{reason}");

        let impostor = rogue.session(&identity, "node-1-impostor").await;
        assert!(
            impostor
                .closed()
                .await
                .contains("hello claims agent node-1-impostor")
        );
    });
    for needles in [
        &["connection refused", "client certificate is required"][..],
        &["malformed report refused"],
        &["oversized report refused"],
        &["connection refused", "claims agent someone-else"],
    ] {
        assert!(
            aggregator.logs.contains(needles),
            "no log line with {needles:?}"
        );
    }
    let metrics = ureq::get(&format!("http://{http}/metrics"))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("text");
    assert!(
        metrics.contains(r#"strata_aggregator_refused_total{reason="oversized"} 1"#),
        "{metrics}"
    );

    // ...while the real agents carry on reporting.
    let before = connected_agents(&aggregator);
    let after = aggregator.wait_for("/api/agents", PATIENCE, |answer| {
        answer["agents"].as_array().is_some_and(|agents| {
            agents
                .iter()
                .filter(|a| {
                    a["connected"] == true
                        && a["hostname"]
                            .as_str()
                            .is_some_and(|h| h.starts_with("node-"))
                })
                .count()
                == 3
                && agents.iter().all(|a| {
                    before.iter().all(|(host, seq)| {
                        a["hostname"] != host.as_str() || a["sequence"].as_u64() > Some(*seq)
                    })
                })
        })
    });
    assert_eq!(
        after["agents"].as_array().map(Vec::len),
        Some(4),
        "three agents and the rogue's record"
    );
    drop(lan);
    let _ = std::fs::remove_dir_all(&work);
}
