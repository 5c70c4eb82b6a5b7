//! Tests of the app service's state machine: deployments from API changes to convergence,
//! offers to launches without overshoot, failures, kills, deletion, and refusals.

use scheduler::{
    pools::Allotment,
    resources::{Ranges, Resources},
};
use serde_json::{Value, json};

use super::*;

fn offer(n: u32, cpus: f64) -> OfferView {
    let mut r = Resources::from_scalars([("cpus", cpus), ("mem", 4096.0), ("disk", 1000.0)]);
    r.add_ranges("ports", &Ranges::new([(31000, 31100)]));
    OfferView {
        id: format!("o{n}"),
        agent_id: format!("agent-{n}"),
        facts: AgentFacts {
            hostname: format!("node-{n}"),
            attributes: Default::default(),
        },
        left: Allotment::unreserved(r),
    }
}

fn launched(decisions: &[Decision]) -> Vec<String> {
    decisions
        .iter()
        .flat_map(|d| match d {
            Decision::Accept { tasks, .. } => tasks
                .iter()
                .filter_map(|t| t["task_id"]["value"].as_str().map(str::to_owned))
                .collect(),
            Decision::Decline { .. } => Vec::new(),
        })
        .collect()
}

fn report(core: &mut AppsCore, tasks: &[String], state: &str, healthy: Option<bool>, now: u64) {
    for task in tasks {
        let mut status = json!({ "task_id": { "value": task }, "state": state });
        if let Some(h) = healthy {
            status["healthy"] = json!(h);
        }
        core.status(&status, now);
    }
}

fn kinds(core: &mut AppsCore) -> Vec<String> {
    core.take_events()
        .iter()
        .filter_map(|e| e["eventType"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn an_app_is_deployed_scaled_and_deleted_without_overshoot() {
    let mut core = AppsCore::default();
    let created = core
        .create(
            &json!({ "id": "web", "cmd": "sleep 1000", "instances": 2, "cpus": 1 }),
            1_000,
        )
        .expect("created");
    assert_eq!(created["id"], "/web");
    assert_eq!(core.deployments.len(), 1);
    assert!(core.wants_offers());
    let tasks = launched(&core.offers(vec![offer(1, 1.5), offer(2, 8.0)], 1_100));
    assert_eq!(
        tasks.len(),
        2,
        "one on the small agent, one on the big one: no more than asked"
    );
    assert!(
        launched(&core.offers(vec![offer(3, 8.0)], 1_150)).is_empty(),
        "nothing more is launched"
    );
    report(&mut core, &tasks, "TASK_RUNNING", None, 1_200);
    assert!(core.step(1_300).is_empty());
    assert!(core.deployments.is_empty(), "the deployment finished");
    let events = kinds(&mut core);
    assert!(
        events.contains(&"deployment_success".to_owned()),
        "{events:?}"
    );
    assert!(events.contains(&"status_update_event".to_owned()));

    let change = core
        .update("/web", &json!({ "instances": 5 }), true, false, 2_000)
        .expect("scaled");
    assert!(change["deploymentId"].is_string());
    let more = launched(&core.offers(vec![offer(3, 8.0)], 2_100));
    assert_eq!(more.len(), 3);
    assert!(matches!(
        core.update("/web", &json!({ "instances": 1 }), true, false, 2_200),
        Err(ApiError::Locked(_))
    ));
    report(&mut core, &more, "TASK_RUNNING", None, 2_300);
    core.step(2_400);
    assert!(core.deployments.is_empty());

    core.delete("/web", false, 3_000).expect("deleted");
    let kills = core.step(3_100);
    assert_eq!(kills.len(), 5);
    let killed: Vec<String> = kills.into_iter().map(|k| k.task_id).collect();
    report(&mut core, &killed, "TASK_KILLED", None, 3_200);
    core.step(3_300);
    assert!(core.apps.is_empty());
    assert!(kinds(&mut core).contains(&"app_terminated_event".to_owned()));
    assert_eq!(
        core.take_dirty().last().map(|(_, r)| r.is_none()),
        Some(true)
    );
}

#[test]
fn a_failed_task_is_replaced_after_its_backoff_and_shown_as_the_last_failure() {
    let mut core = AppsCore::default();
    core.create(
        &json!({ "id": "/job", "cmd": "false", "instances": 1, "cpus": 0.5, "backoffSeconds": 2 }),
        0,
    )
    .expect("created");
    let first = launched(&core.offers(vec![offer(1, 4.0)], 10));
    report(&mut core, &first, "TASK_FAILED", None, 20);
    assert!(
        launched(&core.offers(vec![offer(1, 4.0)], 1_000)).is_empty(),
        "backing off"
    );
    assert_eq!(launched(&core.offers(vec![offer(1, 4.0)], 2_100)).len(), 1);
    let app = views::app(&core.apps["/job"], false);
    assert_eq!(app["lastTaskFailure"]["state"], "TASK_FAILED");
}

#[test]
fn an_app_too_big_for_any_agent_waits_in_the_queue_with_the_reason() {
    let mut core = AppsCore::default();
    core.create(&json!({ "id": "/huge", "cmd": "x", "cpus": 64 }), 0)
        .expect("created");
    assert!(launched(&core.offers(vec![offer(1, 8.0), offer(2, 8.0)], 10)).is_empty());
    let queue = core.queue(20);
    let item = &queue["queue"][0];
    assert_eq!(item["count"], 1);
    let reasons = item["processedOffersSummary"]["rejectSummaryLastOffers"]
        .as_array()
        .expect("reasons");
    let cpus = reasons
        .iter()
        .find(|r| r["reason"] == "InsufficientCpus")
        .expect("cpus");
    assert_eq!(cpus["declined"], 2);
}

#[test]
fn health_gates_an_upgrade_and_a_cancel_rolls_back() {
    let mut core = AppsCore::default();
    let body = json!({ "id": "/api", "cmd": "v1", "instances": 2, "cpus": 0.1,
        "healthChecks": [{ "protocol": "COMMAND", "command": { "value": "true" } }] });
    core.create(&body, 0).expect("created");
    let v1 = launched(&core.offers(vec![offer(1, 4.0)], 10));
    report(&mut core, &v1, "TASK_RUNNING", Some(true), 20);
    core.step(30);
    assert!(core.deployments.is_empty());
    let change = core
        .update("/api", &json!({ "cmd": "v2" }), true, false, 100)
        .expect("upgrade");
    let v2 = launched(&core.offers(vec![offer(1, 4.0)], 110));
    assert_eq!(
        v2.len(),
        2,
        "maximumOverCapacity 1 lets both new ones start beside the old"
    );
    assert!(
        core.step(120).is_empty(),
        "old ones stay until new ones are healthy"
    );
    report(&mut core, &v2[..1], "TASK_RUNNING", Some(true), 130);
    assert_eq!(
        core.step(140).len(),
        1,
        "one healthy new instance lets one old one go"
    );
    let deployment_id = change["deploymentId"].as_str().expect("id").to_owned();
    core.cancel_deployment(&deployment_id, false, 150)
        .expect("cancelled");
    assert_eq!(
        core.apps["/api"].definition.cmd.as_deref(),
        Some("v1"),
        "rolled back"
    );
    assert_eq!(core.deployments.len(), 1, "the rollback is a deployment");
}

#[test]
fn bad_requests_are_refused_with_their_reason() {
    let mut core = AppsCore::default();
    let invalid = core
        .create(&json!({ "id": "/x", "instances": -1, "cmd": "y" }), 0)
        .expect_err("invalid");
    let (status, body) = invalid.answer();
    assert_eq!(
        (status, body["details"][0]["path"].clone()),
        (422, Value::from("/instances"))
    );
    core.create(&json!({ "id": "/x", "cmd": "y" }), 0)
        .expect("created");
    assert_eq!(
        core.create(&json!({ "id": "/x", "cmd": "y" }), 0)
            .expect_err("twice")
            .answer()
            .0,
        409
    );
    assert_eq!(
        core.delete("/nope", false, 0)
            .expect_err("missing")
            .answer()
            .0,
        404
    );
    assert_eq!(
        core.update("/x", &json!({ "cpus": "lots" }), true, true, 0)
            .expect_err("type")
            .answer()
            .0,
        422
    );
}

#[test]
fn on_failure_restarts_leave_finished_instances_ended() {
    let mut core = AppsCore::default();
    core.create(
        &json!({ "id": "/job", "cmd": "x", "instances": 2, "cpus": 0.1, "mem": 16,
                 "labels": { "strata.restart": "on-failure" } }),
        0,
    )
    .expect("created");
    let tasks = launched(&core.offers(vec![offer(1, 4.0)], 1));
    assert_eq!(tasks.len(), 2);
    report(&mut core, &tasks, "TASK_RUNNING", None, 2);
    // One exits 0: it stays ended. The other fails: it is replaced.
    report(&mut core, &tasks[..1], "TASK_FINISHED", None, 3);
    report(&mut core, &tasks[1..], "TASK_FAILED", None, 3);
    assert_eq!(core.apps["/job"].target(), 1);
    let again = launched(&core.offers(vec![offer(2, 4.0)], 10_000));
    assert_eq!(again.len(), 1, "only the failed instance is replaced");
}

#[test]
fn a_deployment_that_cannot_place_says_why() {
    let mut core = AppsCore::default();
    core.create(
        &json!({ "id": "/huge", "cmd": "x", "cpus": 64, "mem": 16 }),
        0,
    )
    .expect("created");
    core.take_events();
    assert!(launched(&core.offers(vec![offer(1, 4.0)], 1_000)).is_empty());
    core.step(5_000);
    assert!(!kinds(&mut core).contains(&"deployment_waiting".to_owned()));
    core.step(11_000);
    let events = core.take_events();
    let waiting = events
        .iter()
        .find(|e| e["eventType"] == "deployment_waiting")
        .expect("a waiting event");
    assert_eq!(waiting["appId"], "/huge");
    assert_eq!(waiting["rejectedBy"]["InsufficientCpus"], 1);
    // Not again until another interval has passed.
    core.step(12_000);
    assert!(!kinds(&mut core).contains(&"deployment_waiting".to_owned()));
}
