//! The app service against the `marathon` Python client, unchanged, on three real agents
//! (hostnames node-1..3, racks r1..r3): an app with an HTTP health check becomes healthy,
//! scales to five, rolls out a new command without ever dropping below its minimum health
//! capacity (sampled during the rollout), has a task that fails its health check killed and
//! replaced, and is deleted. UNIQUE and MAX_PER constraints hold; an app bigger than any
//! agent waits in the queue with the reason; bad requests get Marathon's errors.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tests::{
    cluster::{Agent, Aggregator, TaskReaper},
    marathon::Marathon,
    privileged, unique,
};

const PATIENCE: Duration = Duration::from_secs(90);

/// Polls `get_app` until `accept` holds; panics with the last answer.
fn wait_app(client: &mut Marathon, id: &str, what: &str, accept: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let app = client.call("get_app", json!({ "id": id }));
        if let Ok(app) = &app
            && accept(app)
        {
            return app.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{id}: {what}: last answer {app:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn count(app: &Value, field: &str) -> u64 {
    app[field].as_u64().unwrap_or(0)
}

/// The sandbox of `task` among the agents' work directories.
fn sandbox(dir: &Path, task: &str) -> PathBuf {
    (1..=3)
        .map(|n| dir.join(format!("work-{n}/sandboxes/strata-apps/{task}")))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no sandbox for {task}"))
}

fn web(cmd: &str) -> Value {
    json!({
        "id": "/shop/web",
        "cmd": cmd,
        "instances": 2,
        "cpus": 0.1,
        "mem": 64,
        "portDefinitions": [{ "port": 0, "protocol": "tcp" }],
        "healthChecks": [{
            "protocol": "MESOS_HTTP", "path": "/ok", "portIndex": 0,
            "gracePeriodSeconds": 20, "intervalSeconds": 1, "timeoutSeconds": 0.5,
            "maxConsecutiveFailures": 2, "delaySeconds": 0,
        }],
        "upgradeStrategy": { "minimumHealthCapacity": 0.6, "maximumOverCapacity": 0.2 },
    })
}

const SERVE: &str = "echo ok > ok && exec python3 -m http.server $PORT0 --bind 127.0.0.1";

#[test]
fn marathon_client_runs_apps_with_health_checks_upgrades_and_constraints() {
    if !privileged("marathon_client_runs_apps_with_health_checks_upgrades_and_constraints") {
        return;
    }
    let dir = std::env::temp_dir().join(unique("strata-apps"));
    let aggregator = Aggregator::start(&dir.join("aggregator"), "127.0.0.1", &[]);
    let token = aggregator.token();
    let _reaper = TaskReaper(dir.clone());
    let _agents: Vec<Agent> = (1..=3)
        .map(|n| Agent::numbered(&aggregator, &token, &dir, n))
        .collect();
    let mut client = Marathon::start(&aggregator.http.to_string());
    assert!(
        client
            .ok("ping", json!({}))
            .as_str()
            .is_some_and(|p| p.contains("pong"))
    );
    assert_eq!(
        client.ok("get_info", json!({}))["frameworkId"],
        "strata-apps"
    );
    client.ok("watch", json!({}));

    // Two healthy instances.
    let created = client.ok(
        "create_app",
        json!({ "id": "/shop/web", "app": web(SERVE) }),
    );
    assert_eq!(created["id"], "/shop/web");
    wait_app(&mut client, "/shop/web", "2 healthy", |a| {
        count(a, "tasks_healthy") == 2 || count(a, "tasksHealthy") == 2
    });

    // Scale to five.
    client.ok("scale_app", json!({ "id": "/shop/web", "instances": 5 }));
    let scaled = wait_app(&mut client, "/shop/web", "5 healthy", |a| {
        count(a, "tasksHealthy") == 5
    });
    assert_eq!(count(&scaled, "tasksRunning"), 5);

    // A rolling upgrade: never fewer than ceil(5 * 0.6) = 3 healthy, never more than 6 in all.
    let mut upgraded = web(&format!("{SERVE} --directory ."));
    upgraded["instances"] = json!(5);
    let change = client.ok("update_app", json!({ "id": "/shop/web", "app": upgraded }));
    let version = change["version"].as_str().expect("a version").to_owned();
    let deadline = Instant::now() + PATIENCE;
    let (mut lowest, mut highest) = (u64::MAX, 0);
    loop {
        let app = client.ok("get_app", json!({ "id": "/shop/web" }));
        lowest = lowest.min(count(&app, "tasksHealthy"));
        let tasks = app["tasks"].as_array().cloned().unwrap_or_default();
        highest = highest.max(tasks.len() as u64);
        let done = tasks.len() == 5
            && count(&app, "tasksHealthy") == 5
            && tasks.iter().all(|t| t["version"] == version.as_str())
            && app["deployments"].as_array().is_none_or(Vec::is_empty);
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rollout did not finish: {app}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        lowest >= 3,
        "healthy instances dropped to {lowest} during the rollout"
    );
    assert!(
        highest <= 6,
        "{highest} instances at once during the rollout"
    );

    // One task fails its health check: it is killed and replaced.
    let tasks = client.ok("list_tasks", json!({ "id": "/shop/web" }));
    let victim = tasks[0]["id"].as_str().expect("a task id").to_owned();
    std::fs::remove_file(sandbox(&dir, &victim).join("ok")).expect("removing the health file");
    let replaced = wait_app(
        &mut client,
        "/shop/web",
        "the unhealthy task replaced",
        |a| {
            let ids: Vec<&str> = a["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["id"].as_str())
                .collect();
            ids.len() == 5 && !ids.contains(&victim.as_str()) && count(a, "tasksHealthy") == 5
        },
    );
    assert_eq!(
        replaced["last_task_failure"]["task_id"]
            .as_str()
            .or(replaced["lastTaskFailure"]["taskId"].as_str()),
        Some(victim.as_str())
    );

    // Constraints across the three agents.
    client.ok("create_app", json!({ "id": "/spread", "app": { "id": "/spread", "cmd": "sleep 600", "instances": 3, "cpus": 0.1, "mem": 16, "constraints": [["hostname", "UNIQUE"]] } }));
    client.ok("create_app", json!({ "id": "/capped", "app": { "id": "/capped", "cmd": "sleep 600", "instances": 6, "cpus": 0.1, "mem": 16, "constraints": [["rack", "MAX_PER", "2"]] } }));
    for (id, n) in [("/spread", 3), ("/capped", 6)] {
        wait_app(&mut client, id, "all running", |a| {
            count(a, "tasksRunning") == n
        });
    }
    let hosts_of = |client: &mut Marathon, id: &str| -> BTreeMap<String, usize> {
        let mut hosts = BTreeMap::new();
        for task in client
            .ok("list_tasks", json!({ "id": id }))
            .as_array()
            .into_iter()
            .flatten()
        {
            *hosts
                .entry(task["host"].as_str().unwrap_or("").to_owned())
                .or_default() += 1;
        }
        hosts
    };
    assert_eq!(
        hosts_of(&mut client, "/spread").len(),
        3,
        "UNIQUE: one per host"
    );
    assert!(
        hosts_of(&mut client, "/capped").values().all(|n| *n == 2),
        "MAX_PER 2 per rack"
    );
    client.ok("scale_app", json!({ "id": "/spread", "instances": 4 }));
    client.ok("create_app", json!({ "id": "/huge", "app": { "id": "/huge", "cmd": "sleep 600", "cpus": 64, "mem": 16 } }));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let queue = client.ok("list_queue", json!({}));
        let reason = |app: &str, reason: &str| {
            queue.as_array().into_iter().flatten().any(|item| {
                item["app"]["id"] == app
                    && item["processed_offers_summary"]["rejectSummaryLastOffers"]
                        .as_array()
                        .or(item["processedOffersSummary"]["rejectSummaryLastOffers"].as_array())
                        .into_iter()
                        .flatten()
                        .any(|r| r["reason"] == reason && r["declined"].as_u64().unwrap_or(0) > 0)
            })
        };
        if reason("/huge", "InsufficientCpus") && reason("/spread", "UnfulfilledConstraint") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the queue does not say why: {queue}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        hosts_of(&mut client, "/spread").len(),
        3,
        "still one per host"
    );

    // Delete everything.
    for id in ["/shop/web", "/spread", "/capped", "/huge"] {
        client.ok("delete_app", json!({ "id": id, "force": true }));
    }
    let deadline = Instant::now() + PATIENCE;
    while !client
        .ok("list_apps", json!({}))
        .as_array()
        .is_some_and(Vec::is_empty)
        || !client
            .ok("list_tasks", json!({}))
            .as_array()
            .is_some_and(Vec::is_empty)
    {
        assert!(Instant::now() < deadline, "apps were not deleted");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Listings drop a deleted app at once; it is gone, with its app_terminated_event, once
    // its last task has ended: the events are waited for.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let kinds: Vec<String> = client
            .events()
            .iter()
            .filter_map(|e| e["type"].as_str().map(str::to_owned))
            .collect();
        let missing: Vec<&str> = [
            "status_update_event",
            "deployment_success",
            "health_status_changed_event",
            "unhealthy_task_kill_event",
            "app_terminated_event",
        ]
        .into_iter()
        .filter(|kind| !kinds.iter().any(|k| k == kind))
        .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no {missing:?} in the event stream: {kinds:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn bad_requests_get_marathons_errors_and_change_nothing() {
    if !privileged("bad_requests_get_marathons_errors_and_change_nothing") {
        return;
    }
    let dir = std::env::temp_dir().join(unique("strata-apps-bad"));
    let aggregator = Aggregator::start(&dir.join("aggregator"), "127.0.0.1", &[]);
    let mut client = Marathon::start(&aggregator.http.to_string());
    let invalid = client
        .call("create_app", json!({ "id": "/bad", "app": { "id": "/bad", "cmd": "x", "cpus": -1, "constraints": [["hostname", "SOMETIMES"]] } }))
        .expect_err("refused");
    assert_eq!(invalid["status"], 422);
    let paths: Vec<&str> = invalid["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"/cpus") && paths.contains(&"/constraints(0)"),
        "{invalid}"
    );
    let missing = client
        .call("get_app", json!({ "id": "/nope" }))
        .expect_err("missing");
    assert_eq!(missing["type"], "NotFoundError");
    client.ok(
        "create_app",
        json!({ "id": "/once", "app": { "id": "/once", "cmd": "sleep 1", "instances": 0 } }),
    );
    let twice = client
        .call(
            "create_app",
            json!({ "id": "/once", "app": { "id": "/once", "cmd": "sleep 1" } }),
        )
        .expect_err("duplicate");
    assert_eq!(twice["type"], "ConflictError");
    // Malformed JSON straight over HTTP: 400 with a message, and the app is untouched.
    let url = format!("http://{}/v2/apps/once", aggregator.http);
    let response = ureq::put(&url)
        .header("Content-Type", "application/json")
        .config()
        .http_status_as_error(false)
        .build()
        .send("{not json")
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 400);
    let app = client.ok("get_app", json!({ "id": "/once" }));
    assert_eq!(app["cmd"], "sleep 1");
    assert_eq!(
        client.ok("list_apps", json!({})).as_array().map(Vec::len),
        Some(1)
    );
}
