//! The master against a real framework written by others: pymesos, the Mesos v1 scheduler
//! client, runs unchanged against the aggregator. Two agents (attributes node:n1 and n2)
//! run 20 command tasks and 2 Docker tasks; a task is killed; the framework reconciles; the
//! aggregator is killed and restarted mid-run and every task is still accounted for; an
//! agent is killed and restarted and its running task survives and can still be killed.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{
    cluster::{Agent, Aggregator},
    docker,
    framework::PyFramework,
    privileged, unique,
};

const PATIENCE: Duration = Duration::from_secs(60);

fn agent(
    aggregator: &Aggregator,
    token: &str,
    state: &std::path::Path,
    node: &str,
    ports: &str,
) -> Agent {
    let resources = format!("cpus:4;mem:4096;disk:1000;ports:[{ports}]");
    let attributes = format!("node:{node}");
    Agent::start(
        None,
        None,
        aggregator.quic,
        token,
        state,
        &[
            "--no-ebpf",
            "--resources",
            &resources,
            "--attributes",
            &attributes,
        ],
    )
}

fn task(id: &str, node: &str, shell: &str) -> Value {
    json!({ "id": id, "node": node, "cpus": 0.1, "mem": 32, "shell": shell })
}

fn live_state(tasks: &Value, id: &str) -> Option<String> {
    tasks["get_tasks"]["tasks"]
        .as_array()?
        .iter()
        .find(|t| t["task_id"]["value"] == id)
        .and_then(|t| t["state"].as_str().map(str::to_owned))
}

#[test]
fn pymesos_runs_tasks_through_restarts_of_the_aggregator_and_an_agent() {
    if !privileged("pymesos_runs_tasks_through_restarts_of_the_aggregator_and_an_agent") {
        return;
    }
    docker::ensure_image();
    let dir = std::env::temp_dir().join(unique("strata-master"));
    let mut aggregator = Aggregator::start(&dir.join("aggregator"), "127.0.0.1", &[]);
    let token = aggregator.token();
    let mut n1 = agent(&aggregator, &token, &dir.join("n1"), "n1", "31000-31100");
    let _n2 = agent(&aggregator, &token, &dir.join("n2"), "n2", "31200-31300");
    let mut framework = PyFramework::start(&aggregator.http.to_string());
    framework.wait("subscription", PATIENCE, |f| {
        f.events().iter().any(|e| e["event"] == "subscribed")
    });

    // 20 command tasks across both agents, then 2 Docker tasks.
    let ids: Vec<String> = (0..20).map(|i| format!("cmd-{i}")).collect();
    let tasks: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            task(
                id,
                if i % 2 == 0 { "n1" } else { "n2" },
                "sleep 1; echo done",
            )
        })
        .collect();
    framework.launch(&tasks);
    framework.wait_states(&ids, "TASK_RUNNING", PATIENCE);
    framework.wait_states(&ids, "TASK_FINISHED", PATIENCE);
    let agents: std::collections::BTreeSet<String> = framework
        .events()
        .iter()
        .filter(|e| e["event"] == "update" && e["state"] == "TASK_FINISHED")
        .filter_map(|e| e["agent"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(agents.len(), 2, "tasks ran on both agents");
    let docker_ids = ["docker-1".to_owned(), "docker-2".to_owned()];
    framework.launch(&[
        json!({ "id": "docker-1", "node": "n1", "cpus": 0.1, "mem": 64, "image": docker::IMAGE, "ports": 1, "shell": "echo hello; sleep 2" }),
        json!({ "id": "docker-2", "node": "n2", "cpus": 0.1, "mem": 64, "image": docker::IMAGE, "ports": 1, "shell": "echo hello; sleep 2" }),
    ]);
    framework.wait_states(&docker_ids, "TASK_RUNNING", PATIENCE);
    framework.wait_states(&docker_ids, "TASK_FINISHED", PATIENCE);

    // Kill one long task.
    framework.launch(&[task("long-1", "n1", "sleep 600")]);
    framework.wait_states(&["long-1".to_owned()], "TASK_RUNNING", PATIENCE);
    framework.send(json!({ "cmd": "kill", "id": "long-1" }));
    framework.wait_states(&["long-1".to_owned()], "TASK_KILLED", PATIENCE);

    // Reconcile: the master answers with the latest state of live tasks.
    let survivors = ["survivor-1".to_owned(), "survivor-2".to_owned()];
    framework.launch(&[
        task("survivor-1", "n1", "sleep 600"),
        task("survivor-2", "n2", "sleep 600"),
    ]);
    framework.wait_states(&survivors, "TASK_RUNNING", PATIENCE);
    let before = framework.events().len();
    framework.send(json!({ "cmd": "reconcile" }));
    framework.wait("reconciliation", PATIENCE, |f| {
        f.events()[before..]
            .iter()
            .filter(|e| e["event"] == "update" && e["reason"] == "REASON_RECONCILIATION")
            .count()
            >= 2
    });

    // The aggregator dies mid-run: after its restart every task is accounted for.
    aggregator.kill_and_restart();
    let restarted = framework.events().len();
    framework.wait("re-subscription", PATIENCE, |f| {
        f.events()[restarted..]
            .iter()
            .any(|e| e["event"] == "subscribed" || e["event"] == "resubscribed")
    });
    let tasks = aggregator.wait_for_tasks(PATIENCE, |tasks| {
        survivors
            .iter()
            .all(|s| live_state(tasks, s).as_deref() == Some("TASK_RUNNING"))
    });
    assert!(
        tasks["get_tasks"]["tasks"]
            .as_array()
            .is_some_and(|t| t.len() >= 2),
        "{tasks:#}"
    );
    let before = framework.events().len();
    framework.send(json!({ "cmd": "reconcile" }));
    framework.wait("reconciliation after the restart", PATIENCE, |f| {
        survivors.iter().all(|s| {
            f.events()[before..]
                .iter()
                .any(|e| e["id"] == s.as_str() && e["state"] == "TASK_RUNNING")
        })
    });

    // An agent dies and comes back: its task kept running and is still under control.
    drop(n1);
    n1 = agent(&aggregator, &token, &dir.join("n1"), "n1", "31000-31100");
    n1.logs.wait_for(&["registered"], PATIENCE);
    let after = aggregator.operator("GET_TASKS");
    assert_eq!(
        live_state(&after, "survivor-1").as_deref(),
        Some("TASK_RUNNING"),
        "{after:#}"
    );
    framework.send(json!({ "cmd": "kill", "id": "survivor-1" }));
    framework.wait_states(&["survivor-1".to_owned()], "TASK_KILLED", PATIENCE);
    framework.send(json!({ "cmd": "kill", "id": "survivor-2" }));
    framework.wait_states(&["survivor-2".to_owned()], "TASK_KILLED", PATIENCE);
    assert!(
        !framework
            .states("survivor-1")
            .iter()
            .any(|s| s == "TASK_LOST" || s == "TASK_FAILED"),
        "survivor-1 went {:?}",
        framework.states("survivor-1")
    );
    drop(framework);
    drop(n1);
    let _ = std::fs::remove_dir_all(&dir);
}
