//! Service files through the `strata` client on two real agents: a bad file is refused
//! with every mistake's line and path, a good one applies (with the difference shown and
//! the deployments waited for), applying it again changes nothing, discovery answers and
//! streams the ready endpoints as the app scales, a task's output is read back from its
//! sandbox, a CPU-bound service is scaled up by its scale policy from the usage the agents
//! report, a changed file updates and deletes what it no longer names, and a deployment that
//! cannot place its instances says why.

use std::{
    io::BufRead as _,
    path::Path,
    process::{Command, Output},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::{
    binary,
    cluster::{Agent, Aggregator, TaskReaper, strata},
    privileged, unique,
};

const PATIENCE: Duration = Duration::from_secs(90);

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

const GOOD: &str = r#"cluster_name: shop
services:
  - service_name: web
    command: echo "hello from $MESOS_TASK_ID" && echo ok > ok && exec python3 -m http.server $PORT0 --bind 127.0.0.1
    replicas: 2
    ports: [0]
    env:
      GREETING: hi
    resources:
      cpu_millicores: 100
      memory_bytes: 67108864
    health_check:
      type: http
      path: /ok
      interval_seconds: 1
      timeout_seconds: 0.5
      grace_period_seconds: 20
  - service_name: burn
    command: while :; do :; done
    replicas: 1
    resources:
      cpu_millicores: 100
      memory_bytes: 16777216
    scale_policy:
      min_replicas: 1
      max_replicas: 3
      target_cpu_percent: 50
      cooldown_seconds: 0
"#;

const BAD: &str = r#"cluster_name: shop
services:
  - service_name: web
    command: sleep 100
    replicas: -2
    ports: [0]
    health_check:
      type: http
      port_index: 4
  - service_name: Db
    image: postgres
    resources:
      memory_bytes: 1000
    extra: true
"#;

fn write(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("writing a service file");
    path.display().to_string()
}

fn app(aggregator: &Aggregator, id: &str) -> Value {
    aggregator.get(&format!("/v2/apps{id}"))["app"].clone()
}

fn wait_app(
    aggregator: &Aggregator,
    id: &str,
    what: &str,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let app = app(aggregator, id);
        if accept(&app) {
            return app;
        }
        assert!(Instant::now() < deadline, "{id}: {what}: last answer {app}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Collects the JSON `data:` lines of a server-sent event stream.
fn watch(url: String) -> Arc<Mutex<Vec<Value>>> {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = seen.clone();
    std::thread::spawn(move || {
        let response = ureq::get(&url).call().expect("opening the watch");
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        for line in reader.lines().map_while(Result::ok) {
            if let Some(data) = line.strip_prefix("data:")
                && let Ok(doc) = serde_json::from_str::<Value>(data.trim())
            {
                sink.lock().expect("watch lock").push(doc);
            }
        }
    });
    seen
}

#[test]
fn service_files_apply_converge_and_scale() {
    if !privileged("service_files_apply_converge_and_scale") {
        return;
    }
    let dir = std::env::temp_dir().join(unique("strata-services"));
    std::fs::create_dir_all(&dir).expect("test dir");
    let aggregator = Aggregator::start(&dir.join("aggregator"), "127.0.0.1", &[]);
    let token = aggregator.token();
    let _reaper = TaskReaper(dir.clone());
    let _agents: Vec<Agent> = (1..=2)
        .map(|n| Agent::numbered(&aggregator, &token, &dir, n))
        .collect();

    // A bad file: every mistake with its line and path, nothing applied.
    let bad = write(&dir, "bad.yaml", BAD);
    for command in ["validate", "apply"] {
        let refused = strata(&aggregator, &[command, "-f", &bad]);
        assert_eq!(refused.status.code(), Some(65), "{}", text(&refused));
        let shown = text(&refused);
        for expected in [
            format!("{bad}:5: services[0].replicas: "),
            format!("{bad}:9: services[0].health_check.port_index: "),
            format!("{bad}:10: services[1].service_name: "),
            format!("{bad}:13: services[1].resources.memory_bytes: "),
            format!("{bad}:14: services[1].extra: unknown field"),
        ] {
            assert!(
                shown.contains(&expected),
                "{expected:?} missing from:\n{shown}"
            );
        }
    }
    assert_eq!(
        aggregator.get("/v2/apps")["apps"].as_array().map(Vec::len),
        Some(0)
    );

    // The good file applies and converges.
    let good = write(&dir, "config.yaml", GOOD);
    let valid = strata(&aggregator, &["validate", "-f", &good]);
    assert!(valid.status.success(), "{}", text(&valid));
    let applied = strata(&aggregator, &["apply", "-f", &good, "--timeout", "90"]);
    assert!(applied.status.success(), "{}", text(&applied));
    let shown = text(&applied);
    for expected in [
        "+ /shop/web: create, 2 instance(s)",
        "+ /shop/burn: create",
        "converged",
    ] {
        assert!(
            shown.contains(expected),
            "{expected:?} missing from:\n{shown}"
        );
    }
    let web = app(&aggregator, "/shop/web");
    assert_eq!(web["tasksHealthy"], 2, "{web}");
    assert_eq!(web["env"]["GREETING"], "hi");

    // Discovery: the two ready endpoints, and a watch that sees the third after a scale.
    let found = aggregator.get("/v2/discovery/shop/web");
    let endpoints = found["endpoints"].as_array().cloned().unwrap_or_default();
    assert_eq!(endpoints.len(), 2, "{found}");
    let address = endpoints[0]["addresses"][0].as_str().expect("an address");
    let (host, port) = address.rsplit_once(':').expect("host:port");
    assert!(host.starts_with("node-"), "{address}");
    // The agents' hostnames live in their own UTS namespaces; they all run here.
    let served = ureq::get(&format!("http://127.0.0.1:{port}/ok"))
        .call()
        .expect("the endpoint serves")
        .into_body()
        .read_to_string()
        .expect("a body");
    assert_eq!(served.trim(), "ok");
    let watched = watch(format!(
        "http://{}/v2/discovery/shop/web?watch=true",
        aggregator.http
    ));
    let scaled = strata(&aggregator, &["scale", "/shop/web", "3", "--timeout", "90"]);
    assert!(scaled.status.success(), "{}", text(&scaled));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let sets: Vec<usize> = watched
            .lock()
            .expect("watch lock")
            .iter()
            .map(|d| d["endpoints"].as_array().map_or(0, Vec::len))
            .collect();
        if sets.first() == Some(&2) && sets.last() == Some(&3) {
            break;
        }
        assert!(Instant::now() < deadline, "the watch saw {sets:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A task's output, read back from its sandbox through its agent.
    let task = endpoints[0]["taskId"]
        .as_str()
        .expect("a task id")
        .to_owned();
    let logs = strata(&aggregator, &["logs", &task]);
    assert!(logs.status.success(), "{}", text(&logs));
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains(&format!("hello from {task}")),
        "{}",
        text(&logs)
    );
    let missing = strata(&aggregator, &["logs", "no-such-task"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    // Bad reads of a task's files get a clear answer and read nothing.
    for (query, status, says) in [
        (
            format!("{task}/files/stdout?offset=abc"),
            400,
            "byte counts",
        ),
        (
            format!("{task}/files/..%2Fexit_status"),
            404,
            "not one of: stdout, stderr",
        ),
    ] {
        let answer = ureq::get(&format!("http://{}/v2/tasks/{query}", aggregator.http))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .expect("an answer");
        assert_eq!(answer.status().as_u16(), status, "{query}");
        let body = answer.into_body().read_to_string().expect("a body");
        assert!(body.contains(says), "{query}: {body}");
    }

    // The CPU-bound service is scaled up to its policy's maximum by what the agents see.
    let burn = wait_app(&aggregator, "/shop/burn", "autoscaled to 3", |a| {
        a["instances"] == 3 && a["tasksRunning"] == 3
    });
    assert_eq!(burn["labels"]["strata.scale.max"], "3");
    let metrics = ureq::get(&format!("http://{}/metrics", aggregator.http))
        .call()
        .expect("metrics")
        .into_body()
        .read_to_string()
        .expect("metrics text");
    assert!(
        metrics.lines().any(
            |l| l.starts_with("strata_aggregator_autoscale_changes_total ") && !l.ends_with(" 0")
        ),
        "{metrics}"
    );

    // The file again: web, scaled by hand and without a policy, goes back to the file's 2;
    // burn keeps what its autoscaler chose. Once applied, applying it changes nothing.
    let again = strata(&aggregator, &["apply", "-f", &good, "--dry-run"]);
    assert!(again.status.success(), "{}", text(&again));
    let shown = text(&again);
    assert!(
        shown.contains("~ /shop/web:\n    instances: 3 -> 2"),
        "{shown}"
    );
    assert!(shown.contains("= /shop/burn: unchanged"), "{shown}");
    let reapplied = strata(&aggregator, &["apply", "-f", &good, "--timeout", "90"]);
    assert!(reapplied.status.success(), "{}", text(&reapplied));
    let versions = app(&aggregator, "/shop/burn")["version"].clone();
    let idle = strata(&aggregator, &["apply", "-f", &good]);
    assert!(idle.status.success(), "{}", text(&idle));
    let shown = text(&idle);
    assert!(shown.contains("cluster shop: up to date"), "{shown}");
    assert_eq!(app(&aggregator, "/shop/burn")["version"], versions);

    // A changed file: web is gone, burn gets a new command.
    let changed = GOOD.replace("while :; do :; done", "sleep 600");
    let cut = changed
        .find("  - service_name: burn")
        .expect("burn in the file");
    let changed = format!("cluster_name: shop\nservices:\n{}", &changed[cut..]);
    let next = write(&dir, "config-2.yaml", &changed);
    let applied = strata(&aggregator, &["apply", "-f", &next, "--timeout", "90"]);
    assert!(applied.status.success(), "{}", text(&applied));
    let shown = text(&applied);
    assert!(shown.contains("- /shop/web: delete"), "{shown}");
    assert!(
        shown.contains("~ /shop/burn:\n    cmd: \"while :; do :; done\" -> \"sleep 600\""),
        "{shown}"
    );
    let table = strata(&aggregator, &["get", "apps"]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("/shop/burn") && !table.contains("/shop/web"),
        "{table}"
    );

    // An app bigger than any agent: its deployment says why it waits (strata's own event
    // type, sent to watchers that ask for it).
    let waiting = watch(format!(
        "http://{}/v2/events?event_type=deployment_waiting",
        aggregator.http
    ));
    ureq::post(&format!("http://{}/v2/apps", aggregator.http))
        .send_json(serde_json::json!({ "id": "/huge", "cmd": "sleep 600", "cpus": 64, "mem": 16 }))
        .expect("created");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = waiting.lock().expect("watch lock").clone();
        if let Some(event) = seen.iter().find(|e| e["appId"] == "/huge") {
            assert!(
                event["rejectedBy"]["InsufficientCpus"]
                    .as_u64()
                    .unwrap_or(0)
                    > 0,
                "{event}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no deployment_waiting event: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // An aggregator that is not there: exit 69.
    let away = Command::new(binary("STRATA_CLI_BIN", "strata"))
        .args(["--aggregator", "http://127.0.0.1:9", "get", "apps"])
        .output()
        .expect("running strata");
    assert_eq!(away.status.code(), Some(69), "{}", text(&away));
}
