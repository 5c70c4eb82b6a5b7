//! A set of two aggregators, two agents that find their leader through ZooKeeper, and a
//! pymesos framework with running tasks moves from one real ZooKeeper server to another in
//! the six phases, driven by `strata migrate`. Every phase is first rolled back, which must
//! leave the source as it was, then run again; the tasks run throughout and none is lost.

use std::{collections::BTreeMap, time::Duration};

use serde_json::{Value, json};
use tests::{
    cluster::{Agent, Aggregator, TaskReaper, strata, wait_for_leader},
    framework::PyFramework,
    privileged, unique,
    zk::ZkServer,
};

const PATIENCE: Duration = Duration::from_secs(90);

fn strata_ok(aggregator: &Aggregator, args: &[&str]) -> String {
    let output = strata(aggregator, args);
    assert!(output.status.success(), "strata {args:?} failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The set's durable records on a cluster (frameworks, tasks, apps) and its CA: each path,
/// with the CA's data (records are rewritten with new times as a new leader takes over).
fn records(server: &str) -> BTreeMap<String, Vec<u8>> {
    let url: aggregator::zk::url::ZkUrl = format!("zk://{server}/strata").parse().expect("url");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = aggregator::zk::connect(&url).await.expect("connects");
        let tree = aggregator::zk::read::read_tree(&client, &url)
            .await
            .expect("reads");
        tree.nodes
            .into_iter()
            .filter(|(path, node)| {
                !node.ephemeral
                    && [
                        "/state/frameworks/",
                        "/state/tasks/",
                        "/state/apps/",
                        "/state/ca",
                    ]
                    .iter()
                    .any(|p| path.starts_with(p))
            })
            .map(|(path, node)| {
                let data = if path == "/state/ca" {
                    node.data
                } else {
                    Vec::new()
                };
                (path, data)
            })
            .collect()
    })
}

fn all_running(tasks: &Value, ids: &[String]) -> bool {
    let states: Vec<(&str, &str)> = tasks["get_tasks"]["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["task_id"]["value"].as_str().unwrap_or(""),
                t["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    ids.iter()
        .all(|id| states.contains(&(id.as_str(), "TASK_RUNNING")))
}

/// Whether a create under the set's path on `server` is refused.
fn source_refuses_writes(server: &str) -> bool {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = zookeeper_client::Client::connect(server)
            .await
            .expect("connects");
        let open = zookeeper_client::CreateMode::Persistent
            .with_acls(zookeeper_client::Acls::anyone_all());
        let created = client
            .create("/strata/after-the-cut-over", b"x", &open)
            .await;
        matches!(created, Err(zookeeper_client::Error::NoAuth))
    })
}

/// Polls the migration's status on `aggregator` (a standby redirects to the leader; one
/// taking over answers 503 for a moment) until `accept` holds.
fn wait_status(aggregator: &Aggregator, accept: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + PATIENCE;
    let url = format!("http://{}/api/v1/migration/status", aggregator.http);
    let mut last = Value::Null;
    while std::time::Instant::now() < deadline {
        if let Ok(mut answer) = ureq::get(&url).call()
            && let Ok(status) = answer.body_mut().read_json::<Value>()
        {
            if accept(&status) {
                return status;
            }
            last = status;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{url} did not answer as expected within {PATIENCE:?}: {last}");
}

fn status(aggregator: &Aggregator) -> Value {
    aggregator.get("/api/v1/migration/status")
}

#[test]
fn a_set_moves_between_zookeeper_clusters_phase_by_phase_and_back() {
    if !privileged("a_set_moves_between_zookeeper_clusters_phase_by_phase_and_back") {
        return;
    }
    let dir = std::env::temp_dir().join(unique("strata-migrate"));
    let _reaper = TaskReaper(dir.clone());
    let mut source = ZkServer::standalone(&dir.join("zk-source"));
    let target_server = ZkServer::standalone(&dir.join("zk-target"));
    let (from, to) = (
        format!("zk://{}/strata", source.address()),
        format!("zk://{}/strata", target_server.address()),
    );
    let args = ["--zk", &from, "--zk-session-timeout-secs", "4"];
    let mut aggregators: Vec<Aggregator> = (0..2)
        .map(|i| Aggregator::start(&dir.join(format!("aggregator-{i}")), "127.0.0.1", &args))
        .collect();
    let alive = [true, true];
    let leader = wait_for_leader(&aggregators, &alive, PATIENCE);
    let token = aggregators[leader].token();
    let agents: Vec<Agent> = (1..=2)
        .map(|n| Agent::numbered_to(&from, None, &format!("node:n{n}"), &token, &dir, n))
        .collect();
    let mut framework = PyFramework::start(&from);
    framework.wait("subscription", PATIENCE, |f| {
        f.events().iter().any(|e| e["event"] == "subscribed")
    });
    let framework_id = framework
        .events()
        .iter()
        .find_map(|e| e["framework_id"].as_str().map(str::to_owned))
        .expect("a framework id");
    let ids: Vec<String> = (0..4).map(|i| format!("moving-{i}")).collect();
    let tasks: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"id": id, "node": format!("n{}", i % 2 + 1), "cpus": 0.1, "mem": 32, "shell": "sleep 900"}))
        .collect();
    framework.launch(&tasks);
    framework.wait_states(&ids, "TASK_RUNNING", PATIENCE);

    // Bad requests get clear answers and change nothing.
    let leader_http = format!("http://{}", aggregators[leader].http);
    let post = |path: &str, body: &str| {
        let mut response = tests::cluster::no_redirects()
            .post(&format!("{leader_http}{path}"))
            .header("content-type", "application/json")
            .send(body)
            .expect("answers");
        let body: Value = response.body_mut().read_json().unwrap_or_default();
        (
            response.status().as_u16(),
            body["message"].as_str().unwrap_or("").to_owned(),
        )
    };
    assert_eq!(post("/api/v1/migration/phases/2/start", "{}").0, 409);
    assert_eq!(post("/api/v1/migration/phases/1/start", "{}").0, 400);
    assert_eq!(
        post("/api/v1/migration/phases/1/start", "{\"target\": 3}").0,
        400
    );
    assert_eq!(post("/api/v1/migration/phases/9/start", "{}").0, 404);
    assert_eq!(post("/api/v1/migration/phases/x/start", "{}").0, 400);
    let (code, why) = post(
        "/api/v1/migration/phases/1/start",
        &json!({"target": from}).to_string(),
    );
    assert_eq!(code, 422, "the source is no target: {why}");
    assert!(
        why.contains("same cluster") || why.contains("already holds"),
        "{why}"
    );
    let (code, why) = post(
        "/api/v1/migration/phases/1/start",
        &json!({"target": "zk://127.0.0.1:1/strata"}).to_string(),
    );
    assert_eq!(code, 422, "an unreachable target: {why}");
    assert!(why.contains("127.0.0.1:1"), "{why}");
    assert_eq!(status(&aggregators[leader])["active"], false);

    let plan = strata_ok(&aggregators[leader], &["migrate", "plan"]);
    assert!(plan.contains("cut-over"), "{plan}");

    for phase in 1..=6u8 {
        let leader = wait_for_leader(&aggregators, &alive, PATIENCE);
        let before = records(&source.address());
        let phase_arg = phase.to_string();
        let mut start = vec!["migrate", "start", "--phase", &phase_arg, "--timeout", "90"];
        if phase == 1 {
            start.extend(["--target", &to]);
        }
        // Phase 5 waits for the framework's detector to leave the source: it fails over to
        // the target (same framework id, tasks untouched) once the drain says it is there.
        if phase == 5 {
            let output = strata(
                &aggregators[leader],
                &["migrate", "start", "--phase", "5", "--timeout", "3"],
            );
            assert!(
                !output.status.success(),
                "the framework still watches the source"
            );
            assert!(
                String::from_utf8_lossy(&output.stdout).contains("client session(s) still open")
            );
            drop(framework);
            framework = PyFramework::resume(&to, &framework_id);
            framework.wait("re-subscription through the target", PATIENCE, |f| {
                f.events()
                    .iter()
                    .any(|e| e["event"] == "subscribed" || e["event"] == "resubscribed")
            });
            strata_ok(
                &aggregators[leader],
                &["migrate", "validate", "--phase", "5", "--timeout", "90"],
            );
        } else {
            let out = strata_ok(&aggregators[leader], &start);
            assert!(out.contains("validated"), "{out}");
        }
        // Roll it back: the source is as it was, the tasks run on.
        let leader = wait_for_leader(&aggregators, &alive, PATIENCE);
        strata_ok(
            &aggregators[leader],
            &["migrate", "rollback", "--phase", &phase_arg],
        );
        let leader = wait_for_leader(&aggregators, &alive, PATIENCE);
        assert_eq!(
            records(&source.address()),
            before,
            "phase {phase}'s rollback changed the source"
        );
        aggregators[leader].wait_for_tasks(PATIENCE, |t| all_running(t, &ids));
        eprintln!("phase {phase} rolled back; the source is as it was");
        // And again, for good.
        strata_ok(&aggregators[leader], &start);
        let leader = wait_for_leader(&aggregators, &alive, PATIENCE);
        aggregators[leader].wait_for_tasks(PATIENCE, |t| all_running(t, &ids));
        // A leader killed mid-migration: its successor (or itself, started again with the
        // source's address) carries on from the record, with the sync running.
        if phase == 4 {
            aggregators[leader].kill_and_restart();
            let leader = wait_for_leader(&aggregators, &alive, PATIENCE);
            // It or its successor carries on from the record, with the sync running.
            wait_status(&aggregators[leader], |s| {
                s["phases"][3]["state"] == "validated"
                    && !s["sync"].is_null()
                    && s["masters_at"] == to.as_str()
            });
        }
    }

    let leader = wait_for_leader(&aggregators, &alive, PATIENCE);
    // Agents whose leader was killed come back once their QUIC connection times out.
    let done = wait_status(&aggregators[leader], |s| {
        s["fenced"] == true && s["agents"].as_array().is_some_and(|a| a.len() == 2)
    });
    assert_eq!(done["masters_at"], to.as_str(), "{done}");
    assert!(
        done["agents"]
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|l| l["discovery"] == to.as_str())),
        "{done}"
    );
    assert!(all_running(
        &aggregators[leader].operator("GET_TASKS"),
        &ids
    ));
    // The source is fenced: nothing writes there any more.
    assert!(source_refuses_writes(&source.address()));
    // An aggregator started again with the source's address joins the set on the target.
    let standby = 1 - leader;
    aggregators[standby].kill_and_restart();
    wait_status(&aggregators[standby], |s| s["masters_at"] == to.as_str());
    framework.send(json!({"cmd": "reconcile"}));
    let terminal = [
        "TASK_LOST",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_GONE",
        "TASK_DROPPED",
        "TASK_ERROR",
    ];
    assert!(
        !framework
            .events()
            .iter()
            .any(|e| terminal.contains(&e["state"].as_str().unwrap_or(""))),
        "a task was lost: {:?}",
        framework.events()
    );
    for id in &ids {
        framework.send(json!({"cmd": "kill", "id": id}));
    }
    framework.wait_states(&ids, "TASK_KILLED", PATIENCE);

    // The source goes away: aggregators and agents started again with its address go where
    // they remember the set moved.
    source.kill();
    aggregators[standby].kill_and_restart();
    drop(agents);
    let _agents: Vec<Agent> = (1..=2)
        .map(|n| Agent::numbered_to(&from, None, &format!("node:n{n}"), &token, &dir, n))
        .collect();
    let leader = wait_for_leader(&aggregators, &alive, PATIENCE);
    wait_status(&aggregators[leader], |s| {
        s["agents"]
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|l| l["discovery"] == to.as_str()))
    });
    wait_status(&aggregators[standby], |s| s["masters_at"] == to.as_str());
}
