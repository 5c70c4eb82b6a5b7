//! The state machine with channels standing in for streams and agent links: bad calls get
//! clear errors or task updates and change nothing else.

use proto::exec::{MasterMessage, ResourceSpec};
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::*;

struct World {
    core: Core,
    events: UnboundedReceiver<Value>,
    agent: UnboundedReceiver<MasterMessage>,
    framework: String,
}

fn world() -> World {
    let mut core = Core::new(
        MasterConfig::default(),
        "m1".into(),
        json!({}),
        None,
        (vec![], vec![], vec![]),
        0,
    );
    let (link, agent) = unbounded_channel();
    let resources = ResourceSpec {
        scalars: [("cpus".to_owned(), 2.0), ("mem".to_owned(), 1024.0)].into(),
        ..ResourceSpec::default()
    };
    core.agent_registered(
        Registration {
            agent_id: "a1".into(),
            hostname: "node-1".into(),
            resources,
            attributes: Default::default(),
            tasks: vec![],
        },
        link,
        1,
        0,
    );
    let (tx, events) = unbounded_channel();
    let framework = core
        .subscribe(
            &json!({ "name": "test", "user": "root" }),
            "s1".into(),
            tx,
            0,
        )
        .expect("subscribes");
    World {
        core,
        events,
        agent,
        framework,
    }
}

fn drain(rx: &mut UnboundedReceiver<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(event) = rx.try_recv() {
        out.push(event);
    }
    out
}

fn task(id: &str, cpus: f64) -> Value {
    json!({
        "task_id": { "value": id }, "agent_id": { "value": "a1" }, "name": id,
        "resources": [{ "name": "cpus", "type": "SCALAR", "scalar": { "value": cpus } }],
        "command": { "value": "true" }
    })
}

fn offer_id(events: &[Value]) -> String {
    events
        .iter()
        .find(|e| e["type"] == "OFFERS")
        .and_then(|e| e["offers"]["offers"][0]["id"]["value"].as_str())
        .expect("an offer")
        .to_owned()
}

fn updates(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["type"] == "UPDATE")
        .map(|e| {
            let s = &e["update"]["status"];
            (
                s["task_id"]["value"].as_str().unwrap_or("").to_owned(),
                s["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn an_accepted_task_is_launched_and_a_second_one_over_the_offer_is_an_error() {
    let mut w = world();
    assert_eq!(w.core.allocate(1), 1);
    let events = drain(&mut w.events);
    assert_eq!(events[0]["type"], "SUBSCRIBED");
    let offer = offer_id(&events);
    let accept = json!({ "offer_ids": [{ "value": offer }], "operations": [
        { "type": "LAUNCH", "launch": { "task_infos": [task("t1", 1.5), task("t2", 1.0)] } }
    ]});
    w.core.accept(&w.framework, &accept, 2).expect("accepted");
    assert!(matches!(
        w.agent.try_recv(),
        Ok(MasterMessage::Registered { .. })
    ));
    let Ok(MasterMessage::Launch(spec)) = w.agent.try_recv() else {
        panic!("t1 is launched")
    };
    assert_eq!(spec.task_id, "t1");
    assert!(w.agent.try_recv().is_err(), "t2 is not launched");
    let events = drain(&mut w.events);
    assert_eq!(
        updates(&events),
        [("t2".to_owned(), "TASK_ERROR".to_owned())]
    );
}

#[test]
fn unknown_offers_drop_the_tasks_and_unsubscribed_calls_are_refused() {
    let mut w = world();
    w.core.allocate(1);
    let _ = drain(&mut w.events);
    let accept = json!({ "offer_ids": [{ "value": "m1-O999" }], "operations": [
        { "type": "LAUNCH", "launch": { "task_infos": [task("t1", 1.0)] } }
    ]});
    w.core
        .accept(&w.framework, &accept, 2)
        .expect("answered with updates");
    let events = drain(&mut w.events);
    assert_eq!(
        updates(&events),
        [("t1".to_owned(), "TASK_LOST".to_owned())]
    );
    assert!(matches!(
        w.core.check_stream("nobody", Some("s1")),
        Err(CallError::NotSubscribed(_))
    ));
    assert!(matches!(
        w.core.check_stream(&w.framework, Some("other")),
        Err(CallError::WrongStream(_))
    ));
    assert!(w.core.check_stream(&w.framework, Some("s1")).is_ok());
}

#[test]
fn tasks_on_a_disconnected_agent_are_lost_only_after_the_agent_timeout() {
    let mut w = world();
    w.core.allocate(1);
    let offer = offer_id(&drain(&mut w.events));
    let accept = json!({ "offer_ids": [{ "value": offer }], "operations": [
        { "type": "LAUNCH", "launch": { "task_infos": [task("t1", 1.0)] } }
    ]});
    w.core.accept(&w.framework, &accept, 2).expect("accepted");
    w.core.agent_disconnected("a1", 1, 10);
    w.core.tick(10 + w.core.config.agent_timeout_ms - 1, false);
    assert!(
        updates(&drain(&mut w.events)).is_empty(),
        "still waiting for the agent"
    );
    w.core.tick(10 + w.core.config.agent_timeout_ms, false);
    let events = drain(&mut w.events);
    assert_eq!(
        updates(&events),
        [("t1".to_owned(), "TASK_LOST".to_owned())]
    );
    assert!(events.iter().any(|e| e["type"] == "FAILURE"));
}
