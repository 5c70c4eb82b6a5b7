//! Bad input to the master over HTTP: malformed calls, calls without a subscription, a
//! wrong stream id, unknown offers, a task over its offer, and a task for an agent that
//! died. Each gets a clear error or a task update, and the master carries on serving.

use std::{
    io::{BufRead as _, BufReader, Read as _},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tests::{
    cluster::{Agent, Aggregator},
    privileged, unique,
};

/// Generous: a killed agent is noticed when its QUIC connection idles out (30 s).
const PATIENCE: Duration = Duration::from_secs(60);

fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Posts `body` (text) to the scheduler API; returns the status and the answer's text.
fn post(
    aggregator: &Aggregator,
    body: &str,
    stream: Option<&str>,
    content_type: &str,
) -> (u16, String) {
    let url = format!("http://{}/api/v1/scheduler", aggregator.http);
    let mut request = client().post(&url).header("Content-Type", content_type);
    if let Some(stream) = stream {
        request = request.header("Mesos-Stream-Id", stream);
    }
    let mut response = request.send(body).expect("the master answers");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// A subscription read on a thread: its stream id, framework id and events.
struct Subscription {
    stream_id: String,
    framework_id: String,
    events: mpsc::Receiver<Value>,
}

fn subscribe(aggregator: &Aggregator) -> Subscription {
    let url = format!("http://{}/api/v1/scheduler", aggregator.http);
    let call = json!({ "type": "SUBSCRIBE", "subscribe": { "framework_info": {
        "user": "root", "name": "bad-input", "capabilities": [{ "type": "PARTITION_AWARE" }] } } });
    let response = client()
        .post(&url)
        .header("Content-Type", "application/json")
        .send(call.to_string())
        .expect("SUBSCRIBE");
    assert_eq!(response.status().as_u16(), 200);
    let stream_id = response
        .headers()
        .get("Mesos-Stream-Id")
        .and_then(|v| v.to_str().ok())
        .expect("a Mesos-Stream-Id header")
        .to_owned();
    let (tx, events) = mpsc::channel();
    let mut reader = BufReader::new(response.into_body().into_reader());
    thread::spawn(move || {
        loop {
            let mut length = String::new();
            if reader.read_line(&mut length).unwrap_or(0) == 0 {
                return;
            }
            let Ok(n) = length.trim().parse::<usize>() else {
                return;
            };
            let mut record = vec![0; n];
            if reader.read_exact(&mut record).is_err() {
                return;
            }
            if let Ok(event) = serde_json::from_slice::<Value>(&record)
                && tx.send(event).is_err()
            {
                return;
            }
        }
    });
    let first = events.recv_timeout(PATIENCE).expect("SUBSCRIBED");
    assert_eq!(first["type"], "SUBSCRIBED", "{first}");
    let framework_id = first["subscribed"]["framework_id"]["value"]
        .as_str()
        .expect("an id")
        .to_owned();
    assert!(
        first["subscribed"]["heartbeat_interval_seconds"]
            .as_f64()
            .is_some()
    );
    Subscription {
        stream_id,
        framework_id,
        events,
    }
}

impl Subscription {
    fn next(&self, what: &str, accept: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(event) if accept(&event) => return event,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no {what} event within {PATIENCE:?}");
    }

    fn offer(&self) -> Value {
        self.next("OFFERS", |e| e["type"] == "OFFERS")["offers"]["offers"][0].clone()
    }

    fn call(&self, aggregator: &Aggregator, kind: &str, field: &str, args: Value) -> (u16, String) {
        let mut call = json!({ "type": kind, "framework_id": { "value": self.framework_id } });
        if !field.is_empty() {
            call[field] = args;
        }
        post(
            aggregator,
            &call.to_string(),
            Some(&self.stream_id),
            "application/json",
        )
    }

    fn launch(
        &self,
        aggregator: &Aggregator,
        offer_id: &str,
        agent_id: &str,
        id: &str,
        cpus: f64,
    ) -> (u16, String) {
        let task = json!({
            "task_id": { "value": id }, "agent_id": { "value": agent_id }, "name": id,
            "resources": [{ "name": "cpus", "type": "SCALAR", "scalar": { "value": cpus } },
                          { "name": "mem", "type": "SCALAR", "scalar": { "value": 32 } }],
            "command": { "value": "sleep 30" }
        });
        self.call(
            aggregator,
            "ACCEPT",
            "accept",
            json!({
                "offer_ids": [{ "value": offer_id }],
                "operations": [{ "type": "LAUNCH", "launch": { "task_infos": [task] } }],
                "filters": { "refuse_seconds": 0 }
            }),
        )
    }

    fn update_of(&self, id: &str) -> Value {
        self.next(&format!("UPDATE for {id}"), |e| {
            e["type"] == "UPDATE" && e["update"]["status"]["task_id"]["value"] == id
        })["update"]["status"]
            .clone()
    }
}

#[test]
fn bad_calls_get_clear_errors_and_bad_tasks_get_updates() {
    if !privileged("bad_calls_get_clear_errors_and_bad_tasks_get_updates") {
        return;
    }
    let dir = std::env::temp_dir().join(unique("strata-master-api"));
    let aggregator = Aggregator::start(
        &dir.join("aggregator"),
        "127.0.0.1",
        &["--agent-timeout-secs", "2"],
    );
    let token = aggregator.token();

    // Malformed calls, and calls from nobody.
    let (status, text) = post(&aggregator, "{not json", None, "application/json");
    assert_eq!(status, 400);
    assert!(text.contains("malformed JSON"), "{text}");
    let (status, text) = post(
        &aggregator,
        r#"{"framework_id":{"value":"x"}}"#,
        None,
        "application/json",
    );
    assert_eq!((status, text.contains("no type")), (400, true), "{text}");
    let (status, text) = post(
        &aggregator,
        r#"{"type":"DECLINE","framework_id":{"value":"nobody"}}"#,
        Some("s"),
        "application/json",
    );
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("not subscribed"), "{text}");
    let (status, _) = post(&aggregator, "\u{8}\u{1}", None, "application/x-protobuf");
    assert_eq!(status, 415);
    let (status, text) = post(
        &aggregator,
        r#"{"type":"SUBSCRIBE","subscribe":{}}"#,
        None,
        "application/json",
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("framework_info"), "{text}");

    let agent = Agent::start(
        None,
        None,
        aggregator.quic,
        &token,
        &dir.join("agent"),
        &["--no-ebpf", "--resources", "cpus:2;mem:1024"],
    );
    let sub = subscribe(&aggregator);
    let (status, text) = post(
        &aggregator,
        &json!({ "type": "REVIVE", "framework_id": { "value": sub.framework_id } }).to_string(),
        Some("wrong"),
        "application/json",
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("Mesos-Stream-Id"), "{text}");

    // An unknown offer: the task is dropped (the framework is partition-aware).
    let offer = sub.offer();
    let agent_id = offer["agent_id"]["value"]
        .as_str()
        .expect("agent id")
        .to_owned();
    let offer_id = offer["id"]["value"].as_str().expect("offer id").to_owned();
    assert_eq!(
        sub.launch(&aggregator, "no-such-offer", &agent_id, "ghost", 0.5)
            .0,
        202
    );
    let status = sub.update_of("ghost");
    assert_eq!(status["state"], "TASK_DROPPED", "{status}");
    assert_eq!(status["reason"], "REASON_INVALID_OFFERS", "{status}");

    // More than offered (on the first offer, still outstanding): TASK_ERROR, and the
    // offer's resources are offered again.
    assert_eq!(
        sub.launch(&aggregator, &offer_id, &agent_id, "greedy", 64.0)
            .0,
        202
    );
    let status = sub.update_of("greedy");
    assert_eq!(status["state"], "TASK_ERROR", "{status}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("more resources")),
        "{status}"
    );

    // A malformed acknowledgement is a 400; the subscription survives it.
    let (code, text) = sub.call(
        &aggregator,
        "ACKNOWLEDGE",
        "acknowledge",
        json!({ "task_id": { "value": "x" } }),
    );
    assert_eq!(code, 400, "{text}");

    // The agent dies: its offer is rescinded, and a launch on it is dropped.
    let offer = sub.offer();
    let offer_id = offer["id"]["value"].as_str().expect("offer id").to_owned();
    drop(agent);
    sub.next("RESCIND", |e| e["type"] == "RESCIND");
    assert_eq!(
        sub.launch(&aggregator, &offer_id, &agent_id, "orphan", 0.5)
            .0,
        202
    );
    let status = sub.update_of("orphan");
    assert_eq!(status["state"], "TASK_DROPPED", "{status}");

    // The master still answers.
    let health = aggregator.operator("GET_HEALTH");
    assert_eq!(health["get_health"]["healthy"], true);
    let _ = std::fs::remove_dir_all(&dir);
}
