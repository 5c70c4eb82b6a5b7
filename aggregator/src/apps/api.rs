//! Marathon's REST API on the aggregator's HTTP port: `/v2/apps` (and `/restart`, `/tasks`,
//! `/versions` under an app), `/v2/tasks`, `/v2/deployments`, `/v2/queue`, `/v2/info`,
//! `/v2/leader`, `/ping`, and `/v2/events` (server-sent events, filterable by
//! `event_type`). Errors are JSON objects with a `message` (and `details` for invalid
//! definitions), as Marathon's clients expect. App ids may come with a leading slash
//! (`/v2/apps//web`), and booleans as `true` or `True`.

use std::{convert::Infallible, sync::Arc};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{Method, StatusCode},
    response::{IntoResponse, Response, Sse, sse::Event as SseEvent},
    routing::{delete, get, post},
};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio_stream::wrappers::BroadcastStream;

use super::{
    core::{ApiError, STRATA_EVENTS},
    definition::absolute_id,
    service::{AppService, FRAMEWORK_ID},
    views,
};
use crate::state::now_ms;

/// The routes, for merging into the aggregator's router.
pub fn router(service: Arc<AppService>) -> Router {
    Router::new()
        .route("/ping", get(|| async { "pong\n" }))
        .route("/v2/info", get(info))
        .route("/v2/leader", get(leader))
        .route("/v2/apps", get(list_apps).post(create_app))
        .route(
            "/v2/apps/{*rest}",
            get(app_path)
                .put(app_path)
                .patch(app_path)
                .delete(app_path)
                .post(app_path),
        )
        .route("/v2/tasks", get(list_tasks))
        .route("/v2/tasks/delete", post(delete_tasks))
        .route("/v2/tasks/{task}/files/{file}", get(task_file))
        .route("/v2/deployments", get(list_deployments))
        .route("/v2/deployments/{id}", delete(cancel_deployment))
        .route("/v2/queue", get(queue))
        .route("/v2/queue/{*rest}", delete(reset_delay))
        .route("/v2/events", get(events))
        .with_state(service.clone())
        .merge(super::discovery::router(service))
}

type Params = Query<Vec<(String, String)>>;

fn flag(params: &Params, name: &str, default: bool) -> bool {
    params
        .0
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map_or(default, |(_, v)| v.eq_ignore_ascii_case("true") || v == "1")
}

fn values<'a>(params: &'a Params, name: &'a str) -> impl Iterator<Item = &'a str> {
    params
        .0
        .iter()
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn answer(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        Json(body),
    )
        .into_response()
}

fn refuse(err: &ApiError) -> Response {
    let (status, body) = err.answer();
    answer(status, body)
}

fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|err| ApiError::BadRequest(format!("Invalid JSON: {err}")))
}

async fn info(State(service): State<Arc<AppService>>) -> Json<Value> {
    let leader = leader_address(&service);
    Json(json!({
        "name": "strata",
        "version": env!("CARGO_PKG_VERSION"),
        "buildref": "strata",
        "elected": true,
        "leader": leader,
        "frameworkId": FRAMEWORK_ID,
        "http_config": { "http_port": leader.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()) },
        "marathon_config": {
            "framework_name": "strata-apps",
            "hostname": leader.rsplit_once(':').map_or(leader.as_str(), |(h, _)| h),
            "master": "local",
            "mesos_role": "*",
            "mesos_user": "root",
            "ha": false,
            "checkpoint": true,
            "failover_timeout": 604_800,
        },
        "zookeeper_config": {},
    }))
}

fn leader_address(service: &AppService) -> String {
    let master = service.master.lock();
    let address = &master.master_info["address"];
    format!(
        "{}:{}",
        address["hostname"].as_str().unwrap_or("localhost"),
        address["port"]
    )
}

async fn leader(State(service): State<Arc<AppService>>) -> Json<Value> {
    Json(json!({ "leader": leader_address(&service) }))
}

async fn list_apps(State(service): State<Arc<AppService>>, params: Params) -> Json<Value> {
    let with_tasks = values(&params, "embed").any(|e| e == "apps.tasks" || e == "app.tasks");
    let id_filter = values(&params, "id").next().map(str::to_owned);
    let cmd_filter = values(&params, "cmd").next().map(str::to_owned);
    let core = service.lock();
    let apps: Vec<Value> = core
        .apps
        .values()
        .filter(|a| !a.deleting)
        .filter(|a| {
            id_filter
                .as_deref()
                .is_none_or(|f| a.definition.id.contains(f))
        })
        .filter(|a| {
            cmd_filter
                .as_deref()
                .is_none_or(|f| a.definition.cmd.as_deref().is_some_and(|c| c.contains(f)))
        })
        .map(|a| views::app(a, with_tasks))
        .collect();
    Json(json!({ "apps": apps }))
}

async fn create_app(State(service): State<Arc<AppService>>, body: Bytes) -> Response {
    let body = match body_json(&body) {
        Ok(body) => body,
        Err(err) => return refuse(&err),
    };
    let created = service.lock().create(&body, now_ms());
    match created {
        Ok(app) => {
            service.changed();
            answer(201, app)
        }
        Err(err) => refuse(&err),
    }
}

/// What a path under `/v2/apps/` names.
enum AppPath {
    App(String),
    Restart(String),
    Tasks(String),
    Task(String, String),
    Versions(String),
    Version(String, String),
}

fn app_path_of(rest: &str) -> AppPath {
    let rest = rest.trim_matches('/');
    if let Some(id) = rest.strip_suffix("/restart") {
        return AppPath::Restart(absolute_id(id));
    }
    if let Some(id) = rest.strip_suffix("/tasks") {
        return AppPath::Tasks(absolute_id(id));
    }
    if let Some(id) = rest.strip_suffix("/versions") {
        return AppPath::Versions(absolute_id(id));
    }
    if let Some((id, task)) = rest.rsplit_once("/tasks/") {
        return AppPath::Task(absolute_id(id), task.to_owned());
    }
    if let Some((id, version)) = rest.rsplit_once("/versions/") {
        return AppPath::Version(absolute_id(id), version.to_owned());
    }
    AppPath::App(absolute_id(rest))
}

fn not_found(id: &str) -> Response {
    refuse(&ApiError::NotFound(format!("App '{id}' does not exist")))
}

async fn app_path(
    State(service): State<Arc<AppService>>,
    method: Method,
    Path(rest): Path<String>,
    params: Params,
    body: Bytes,
) -> Response {
    let now = now_ms();
    let force = flag(&params, "force", false);
    let result = match (app_path_of(&rest), method) {
        (AppPath::App(id), Method::GET) => {
            let core = service.lock();
            return core.apps.get(&id).filter(|a| !a.deleting).map_or_else(
                || not_found(&id),
                |a| answer(200, json!({ "app": views::app(a, true) })),
            );
        }
        (AppPath::App(id), method) if method == Method::PUT || method == Method::PATCH => {
            let body = match body_json(&body) {
                Ok(body) => body,
                Err(err) => return refuse(&err),
            };
            let partial = method == Method::PATCH || flag(&params, "partialUpdate", true);
            service
                .lock()
                .update(&id, &body, partial, force, now)
                .map(|v| (200, v))
        }
        (AppPath::App(id), Method::DELETE) => {
            service.lock().delete(&id, force, now).map(|v| (200, v))
        }
        (AppPath::Restart(id), Method::POST) => {
            service.lock().restart(&id, force, now).map(|v| (200, v))
        }
        (AppPath::Tasks(id), Method::GET) => {
            let core = service.lock();
            return core.apps.get(&id).map_or_else(
                || not_found(&id),
                |a| answer(200, json!({ "tasks": a.active().map(|i| views::task(a, i)).collect::<Vec<_>>() })),
            );
        }
        (AppPath::Tasks(id), Method::DELETE) => {
            let scale = flag(&params, "scale", false);
            let host = values(&params, "host").next().map(str::to_owned);
            let mut core = service.lock();
            let only: Option<Vec<String>> = host.map(|h| {
                core.apps
                    .get(&id)
                    .map(|a| {
                        a.active()
                            .filter(|i| i.host == h)
                            .map(|i| i.task_id.clone())
                            .collect()
                    })
                    .unwrap_or_default()
            });
            core.kill(&id, only.as_deref(), scale, now)
                .map(|(tasks, change)| (200, change.unwrap_or_else(|| json!({ "tasks": tasks }))))
        }
        (AppPath::Task(id, task), Method::DELETE) => {
            let scale = flag(&params, "scale", false);
            service
                .lock()
                .kill(&id, Some(&[task]), scale, now)
                .map(|(tasks, change)| {
                    (
                        200,
                        change.unwrap_or_else(|| json!({ "task": tasks.first() })),
                    )
                })
        }
        (AppPath::Versions(id), Method::GET) => {
            let core = service.lock();
            return core.apps.get(&id).map_or_else(
                || not_found(&id),
                |a| {
                    answer(
                        200,
                        json!({ "versions": a.versions.keys().rev().collect::<Vec<_>>() }),
                    )
                },
            );
        }
        (AppPath::Version(id, version), Method::GET) => {
            let core = service.lock();
            return match core.apps.get(&id).and_then(|a| a.versions.get(&version)) {
                Some(definition) => answer(200, definition.to_json()),
                None => refuse(&ApiError::NotFound(format!(
                    "App '{id}' has no version {version}"
                ))),
            };
        }
        (_, method) => {
            return answer(
                405,
                json!({ "message": format!("{method} is not supported on /v2/apps/{rest}") }),
            );
        }
    };
    match result {
        Ok((status, body)) => {
            service.changed();
            answer(status, body)
        }
        Err(err) => refuse(&err),
    }
}

async fn list_tasks(State(service): State<Arc<AppService>>) -> Json<Value> {
    let core = service.lock();
    let tasks: Vec<Value> = core
        .apps
        .values()
        .flat_map(|a| a.active().map(move |i| views::task(a, i)))
        .collect();
    Json(json!({ "tasks": tasks }))
}

async fn delete_tasks(
    State(service): State<Arc<AppService>>,
    params: Params,
    body: Bytes,
) -> Response {
    let body = match body_json(&body) {
        Ok(body) => body,
        Err(err) => return refuse(&err),
    };
    let scale = flag(&params, "scale", false);
    let ids: Vec<String> = body["ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let mut by_app: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    let mut core = service.lock();
    for id in ids {
        if let Some(app) = core.app_of(&id) {
            by_app.entry(app.to_owned()).or_default().push(id);
        }
    }
    let mut killed = Vec::new();
    for (app, ids) in by_app {
        match core.kill(&app, Some(&ids), scale, now_ms()) {
            Ok((tasks, _)) => killed.extend(tasks),
            Err(err) => return refuse(&err),
        }
    }
    drop(core);
    service.changed();
    answer(200, json!({ "tasks": killed }))
}

/// `GET /v2/tasks/{task}/files/{stdout|stderr}?offset=&length=`: a piece of a task's output,
/// read from its sandbox on its agent (`{"data", "offset", "next_offset", "size"}`); without
/// `offset`, the last `length` bytes (64 KiB by default, 1 MiB at most).
async fn task_file(
    State(service): State<Arc<AppService>>,
    Path((task, file)): Path<(String, String)>,
    params: Params,
) -> Response {
    use crate::master::files::FileError;
    let number = |name: &str| values(&params, name).next().map(str::parse::<u64>);
    let (offset, length) = match (number("offset").transpose(), number("length").transpose()) {
        (Ok(offset), Ok(length)) => (offset, length.unwrap_or(64 * 1024)),
        _ => {
            return refuse(&ApiError::BadRequest(
                "offset and length are byte counts".into(),
            ));
        }
    };
    match service.master.read_file(&task, &file, offset, length).await {
        Ok(chunk) => answer(
            200,
            json!({ "data": chunk.data, "offset": chunk.offset, "next_offset": chunk.next_offset, "size": chunk.size }),
        ),
        Err(err) => {
            let status = match err {
                FileError::UnknownTask(_) | FileError::Agent(_) => 404,
                FileError::AgentAway(_) => 503,
                FileError::NoAnswer => 504,
            };
            answer(status, json!({ "message": err.to_string() }))
        }
    }
}

async fn list_deployments(State(service): State<Arc<AppService>>) -> Json<Value> {
    let core = service.lock();
    Json(Value::Array(
        core.deployments.values().map(views::deployment).collect(),
    ))
}

async fn cancel_deployment(
    State(service): State<Arc<AppService>>,
    Path(id): Path<String>,
    params: Params,
) -> Response {
    let force = flag(&params, "force", false);
    let cancelled = service.lock().cancel_deployment(&id, force, now_ms());
    match cancelled {
        Ok(change) => {
            service.changed();
            match change {
                Some(change) => answer(200, change),
                None => answer(202, json!({})),
            }
        }
        Err(err) => refuse(&err),
    }
}

async fn queue(State(service): State<Arc<AppService>>) -> Json<Value> {
    Json(service.lock().queue(now_ms()))
}

async fn reset_delay(State(service): State<Arc<AppService>>, Path(rest): Path<String>) -> Response {
    let Some(id) = rest
        .trim_matches('/')
        .strip_suffix("/delay")
        .map(absolute_id)
    else {
        return answer(
            404,
            json!({ "message": "expected /v2/queue/{appId}/delay" }),
        );
    };
    let reset = service.lock().apps.get_mut(&id).map(|app| {
        app.delay_until_ms = 0;
        app.failures = 0;
    });
    match reset {
        Some(()) => {
            service.changed();
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found(&id),
    }
}

/// `GET /v2/events`: Marathon events as server-sent events, one JSON line each. strata's own
/// types ([`STRATA_EVENTS`]: `deployment_waiting`, why a deployment cannot place its
/// instances) come only when asked for with `event_type`.
async fn events(State(service): State<Arc<AppService>>, params: Params) -> Response {
    let wanted: Vec<String> = values(&params, "event_type").map(str::to_owned).collect();
    let attached = views::event(
        "event_stream_attached",
        now_ms(),
        json!({ "remoteAddress": "" }),
    );
    let first = futures_util::stream::once(async move {
        Ok::<_, Infallible>(
            SseEvent::default()
                .event("event_stream_attached")
                .data(attached.to_string()),
        )
    });
    let rest = BroadcastStream::new(service.watch()).filter_map(move |event| {
        let keep = match &event {
            Ok(e) if wanted.is_empty() => !STRATA_EVENTS.contains(&e.kind.as_str()),
            Ok(e) => wanted.contains(&e.kind),
            Err(_) => false,
        };
        async move {
            match event {
                Ok(e) if keep => Some(Ok::<_, Infallible>(
                    SseEvent::default()
                        .event(e.kind.clone())
                        .data(e.json.clone()),
                )),
                _ => None,
            }
        }
    });
    let show_attached = params
        .0
        .iter()
        .all(|(k, v)| k != "event_type" || v == "event_stream_attached");
    let stream = if show_attached {
        first.chain(rest).boxed()
    } else {
        rest.boxed()
    };
    Sse::new(stream)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response()
}
