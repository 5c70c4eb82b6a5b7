//! The Mesos v1 operator API (`POST /api/v1`, also reached as `/api/v1/operator` and any
//! other path under it, as Mesos routes by longest prefix) and the legacy endpoints
//! (`GET /master/state`, `/state`, `/master/state.json`, `/health`, `/version`).

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use super::{
    MESOS_COMPAT_VERSION, Master,
    core::{Core, TaskRecord},
    resources, scheduler_api,
};
use crate::state::now_ms;

/// The master's routes.
pub fn router(master: Arc<Master>) -> Router {
    Router::new()
        .route("/api/v1/scheduler", post(scheduler_api::call))
        .route("/api/v1", post(operator))
        .route("/api/v1/{*rest}", post(operator))
        .route("/version", get(version))
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/master/health", get(|| async { StatusCode::OK }))
        .route("/master/state", get(legacy_state))
        .route("/master/state.json", get(legacy_state))
        .route("/state", get(legacy_state))
        .route("/state.json", get(legacy_state))
        .with_state(master)
}

fn version_info() -> Value {
    json!({
        "version": MESOS_COMPAT_VERSION,
        "strata_version": env!("CARGO_PKG_VERSION"),
        "build_user": "strata",
    })
}

async fn version() -> Json<Value> {
    Json(version_info())
}

fn nanos(ms: u64) -> Value {
    json!({ "nanoseconds": ms.saturating_mul(1_000_000) })
}

fn task_json(task: &TaskRecord) -> Value {
    json!({
        "name": task.spec.name,
        "task_id": { "value": task.spec.task_id },
        "framework_id": { "value": task.spec.framework_id },
        "agent_id": { "value": task.agent_id },
        "state": task.state.as_str(),
        "resources": task.resources,
        "statuses": [task.status],
        "status_update_state": task.state.as_str(),
    })
}

fn get_tasks(core: &Core) -> Value {
    let (live, completed) = core.tasks();
    json!({
        "tasks": live.iter().map(|t| task_json(t)).collect::<Vec<_>>(),
        "completed_tasks": completed.iter().map(|t| task_json(t)).collect::<Vec<_>>(),
    })
}

fn get_frameworks(core: &Core) -> Value {
    let (active, removed): (Vec<_>, Vec<_>) = core.frameworks().partition(|f| !f.record.removed);
    let one = |f: &&super::core::Framework| {
        json!({
            "framework_info": f.record.info,
            "active": f.stream.is_some(),
            "connected": f.stream.is_some(),
            "recovered": false,
            "registered_time": nanos(f.record.registered_ms),
        })
    };
    json!({
        "frameworks": active.iter().map(one).collect::<Vec<_>>(),
        "completed_frameworks": removed.iter().map(one).collect::<Vec<_>>(),
    })
}

fn get_agents(core: &Core) -> Value {
    let agents: Vec<Value> = core
        .agents()
        .map(|a| {
            let total = resources::from_spec(&a.record.resources);
            let available = core
                .agent_available(&a.record.id)
                .cloned()
                .unwrap_or_default();
            json!({
                "agent_info": {
                    "id": { "value": a.record.id },
                    "hostname": a.record.hostname,
                    "resources": resources::to_json(&total, None),
                    "attributes": Core::attributes_json(&a.record.attributes),
                },
                "active": a.link.is_some(),
                "registered_time": nanos(a.record.registered_ms),
                "total_resources": resources::to_json(&total, None),
                "allocated_resources": resources::to_json(&total.minus(&available), None),
            })
        })
        .collect();
    json!({ "agents": agents, "recovered_agents": [] })
}

fn get_roles(core: &Core) -> Value {
    let roles: Vec<Value> = core
        .roles()
        .into_iter()
        .map(|r| {
            json!({
                "name": r.name,
                "weight": r.weight,
                "frameworks": r.frameworks.iter().map(|f| json!({ "value": f })).collect::<Vec<_>>(),
                "resources": resources::to_json(&scheduler::pools::Allotment::unreserved(r.allocated), None),
            })
        })
        .collect();
    json!({ "roles": roles })
}

fn metrics(core: &Core) -> Vec<(String, f64)> {
    let (live, completed) = core.tasks();
    let count = |state: &str| {
        live.iter()
            .chain(completed.iter())
            .filter(|t| t.state.as_str() == state)
            .count() as f64
    };
    let c = &core.counters;
    let mut out = vec![
        ("master/elected".to_owned(), 1.0),
        (
            "master/uptime_secs".to_owned(),
            (now_ms() - core.started_ms) as f64 / 1000.0,
        ),
        (
            "master/frameworks_active".to_owned(),
            core.frameworks().filter(|f| f.stream.is_some()).count() as f64,
        ),
        (
            "master/frameworks_connected".to_owned(),
            core.frameworks().filter(|f| f.stream.is_some()).count() as f64,
        ),
        (
            "master/slaves_active".to_owned(),
            core.agents().filter(|a| a.link.is_some()).count() as f64,
        ),
        (
            "master/slaves_connected".to_owned(),
            core.agents().filter(|a| a.link.is_some()).count() as f64,
        ),
        (
            "master/slaves_disconnected".to_owned(),
            core.agents().filter(|a| a.link.is_none()).count() as f64,
        ),
        (
            "master/outstanding_offers".to_owned(),
            core.outstanding_offers() as f64,
        ),
        ("master/offers_made".to_owned(), c.offers_made as f64),
        (
            "master/offers_declined".to_owned(),
            c.offers_declined as f64,
        ),
        (
            "master/offers_rescinded".to_owned(),
            c.offers_rescinded as f64,
        ),
        ("master/tasks_launched".to_owned(), c.tasks_launched as f64),
        ("master/tasks_error".to_owned(), c.tasks_error as f64),
        ("master/tasks_dropped".to_owned(), c.tasks_dropped as f64),
        (
            "master/messages_status_update".to_owned(),
            c.status_updates as f64,
        ),
        ("master/invalid_calls".to_owned(), c.invalid_calls as f64),
    ];
    for state in [
        "TASK_STAGING",
        "TASK_STARTING",
        "TASK_RUNNING",
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_LOST",
        "TASK_ERROR",
    ] {
        out.push((
            format!("master/{}", state.to_ascii_lowercase()),
            count(state),
        ));
    }
    out
}

fn get_master(core: &Core) -> Value {
    json!({
        "master_info": core.master_info,
        "start_time": core.started_ms as f64 / 1000.0,
        "elected_time": core.started_ms as f64 / 1000.0,
    })
}

/// `POST /api/v1`: one operator call, answered with its JSON result.
async fn operator(State(master): State<Arc<Master>>, body: Bytes) -> Response {
    let call: Value = match serde_json::from_slice(&body) {
        Ok(call) => call,
        Err(err) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("malformed JSON call: {err}"),
            )
                .into_response();
        }
    };
    let Some(kind) = call["type"].as_str() else {
        return (StatusCode::BAD_REQUEST, "the call has no type").into_response();
    };
    let core = master.lock();
    let (field, value) = match kind {
        "GET_HEALTH" => ("get_health", json!({ "healthy": true })),
        "GET_VERSION" => ("get_version", json!({ "version_info": version_info() })),
        "GET_FLAGS" => (
            "get_flags",
            json!({ "flags": master.flags.iter().map(|(n, v)| json!({ "name": n, "value": v })).collect::<Vec<_>>() }),
        ),
        "GET_STATE" => (
            "get_state",
            json!({
                "get_tasks": get_tasks(&core),
                "get_executors": { "executors": [] },
                "get_frameworks": get_frameworks(&core),
                "get_agents": get_agents(&core),
            }),
        ),
        "GET_AGENTS" => ("get_agents", get_agents(&core)),
        "GET_FRAMEWORKS" => ("get_frameworks", get_frameworks(&core)),
        "GET_TASKS" => ("get_tasks", get_tasks(&core)),
        "GET_ROLES" => ("get_roles", get_roles(&core)),
        "GET_MASTER" => ("get_master", get_master(&core)),
        "GET_METRICS" => (
            "get_metrics",
            json!({ "metrics": metrics(&core).into_iter().map(|(n, v)| json!({ "name": n, "value": v })).collect::<Vec<_>>() }),
        ),
        other => {
            return (
                StatusCode::BAD_REQUEST,
                format!("operator call {other} is not supported"),
            )
                .into_response();
        }
    };
    drop(core);
    // Moved in, not through `json!`, which would copy the whole answer.
    let mut answer = json!({ "type": kind });
    answer[field] = value;
    Json(answer).into_response()
}

/// The v0 state document many tools read.
async fn legacy_state(State(master): State<Arc<Master>>) -> Json<Value> {
    let core = master.lock();
    let (live, completed) = core.tasks();
    let frameworks: Vec<Value> = core
        .frameworks()
        .filter(|f| !f.record.removed)
        .map(|f| {
            let id = &f.record.id;
            let tasks: Vec<Value> = live
                .iter()
                .filter(|t| &t.spec.framework_id == id)
                .map(|t| legacy_task(t))
                .collect();
            let done: Vec<Value> = completed
                .iter()
                .filter(|t| &t.spec.framework_id == id)
                .map(|t| legacy_task(t))
                .collect();
            json!({
                "id": id,
                "name": f.record.info["name"],
                "role": f.record.role,
                "active": f.stream.is_some(),
                "tasks": tasks,
                "completed_tasks": done,
            })
        })
        .collect();
    let slaves: Vec<Value> = core
        .agents()
        .map(|a| {
            json!({
                "id": a.record.id,
                "hostname": a.record.hostname,
                "active": a.link.is_some(),
                "resources": resources::to_legacy(&resources::from_spec(&a.record.resources)),
            })
        })
        .collect();
    Json(json!({
        "version": MESOS_COMPAT_VERSION,
        "id": core.master_id,
        "hostname": core.master_info["hostname"],
        "start_time": core.started_ms as f64 / 1000.0,
        "activated_slaves": core.agents().filter(|a| a.link.is_some()).count(),
        "frameworks": frameworks,
        "slaves": slaves,
    }))
}

fn legacy_task(task: &TaskRecord) -> Value {
    json!({
        "id": task.spec.task_id,
        "name": task.spec.name,
        "framework_id": task.spec.framework_id,
        "slave_id": task.agent_id,
        "state": task.state.as_str(),
        "resources": resources::to_legacy(&resources::parse(&task.resources).unwrap_or_default()),
    })
}
