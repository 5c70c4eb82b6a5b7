//! The HTTP API (axum): topology views, node details, search, WebSocket diffs, agents,
//! Prometheus metrics and health. Errors are JSON `{"error": "..."}` with the right status.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Json, Router,
    extract::{
        Path, Query, State,
        ws::{Message, WebSocket, WebSocketUpgrade},
    },
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    state::Shared,
    topology::{
        Node, View,
        diff::{Diff, diff},
        views::VIEWS,
    },
};

type AppState = State<Arc<Shared>>;

/// An API error: a status and a message, sent as JSON.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// The API's routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/metrics", get(metrics))
        .route("/api/agents", get(agents))
        .route("/api/topology", get(topology))
        .route("/api/topology/{view}", get(view))
        .route("/api/topology/{view}/ws", get(watch))
        .route("/api/topology/{view}/{id}", get(node))
        .route("/api/search", get(search))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(shared)
}

async fn metrics(State(shared): AppState) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
}

async fn agents(State(shared): AppState) -> Json<Value> {
    let topology = shared.topology();
    let mut agents: Vec<Value> = topology
        .agents()
        .map(|a| {
            json!({
                "agent_id": a.agent_id,
                "hostname": a.hostname(),
                "connected": a.connected,
                "sequence": a.sequence,
                "last_report_ms": a.last_report_ms,
                "collection_mode": a.collection_mode,
                "events_lost": a.events_lost,
                "processes": a.processes.len(),
                "containers": a.containers.len(),
                "connections": a.connections.len(),
            })
        })
        .collect();
    agents.sort_by(|a, b| a["agent_id"].as_str().cmp(&b["agent_id"].as_str()));
    Json(json!({ "agents": agents }))
}

async fn topology(State(shared): AppState) -> Json<Value> {
    let views = shared.views();
    let summary: Vec<Value> = VIEWS
        .iter()
        .map(|name| {
            // Views nobody looked at lately are not built: their counts are null.
            let view = views.get(name).filter(|v| v.built);
            json!({
                "view": name,
                "nodes": view.map(|v| v.nodes.len()),
                "edges": view.map(|v| v.edges().count()),
            })
        })
        .collect();
    Json(json!({ "views": summary }))
}

/// Filters of `GET /api/topology/{view}`.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    /// Only nodes on this host.
    host: Option<String>,
    /// Only nodes of (or in) this container, by id or name.
    container: Option<String>,
    /// Only nodes with this label, `key=value` (containers).
    label: Option<String>,
    /// Only nodes whose label contains this text.
    name: Option<String>,
}

impl Filters {
    fn matches(&self, node: &Node) -> bool {
        let host = self.host.as_ref().is_none_or(|h| node.hosts.contains(h));
        let container = self.container.as_ref().is_none_or(|c| {
            node.id == *c
                || node.metadata.get("name") == Some(c)
                || node
                    .parents
                    .iter()
                    .any(|p| p.view == "containers" && (p.id == *c || p.label == *c))
        });
        let label = self.label.as_ref().is_none_or(|l| {
            let (key, value) = l.split_once('=').unwrap_or((l, ""));
            node.metadata
                .get(&format!("label.{key}"))
                .is_some_and(|v| value.is_empty() || v == value)
        });
        let name = self
            .name
            .as_ref()
            .is_none_or(|n| node.label.contains(n.as_str()));
        host && container && label && name
    }
}

#[derive(Debug, Serialize)]
struct Edge<'a> {
    source: &'a str,
    target: &'a str,
}

/// Builds view `name` first if the last build skipped it (off the async workers).
async fn ensure_built(shared: &Arc<Shared>, name: &str) {
    let (shared, name) = (shared.clone(), name.to_owned());
    let _ = tokio::task::spawn_blocking(move || shared.ensure_built(&name)).await;
}

fn find_view<'a>(views: &'a crate::topology::Views, name: &str) -> Result<&'a View, ApiError> {
    views.get(name).ok_or_else(|| {
        ApiError::not_found(format!("no view {name}; views are {}", VIEWS.join(", ")))
    })
}

/// A view's answer, serialised straight from the view (no intermediate JSON tree).
#[derive(Debug, Serialize)]
struct ViewAnswer<'a> {
    view: &'a str,
    nodes: Vec<&'a Node>,
    edges: Vec<Edge<'a>>,
}

impl Filters {
    fn is_empty(&self) -> bool {
        self.host.is_none()
            && self.container.is_none()
            && self.label.is_none()
            && self.name.is_none()
    }
}

/// Serialises a whole view.
pub fn render_view(name: &str, view: &View) -> Result<Vec<u8>, ApiError> {
    render_filtered(name, view, &Filters::default())
}

/// Serialises `view` with `filters` applied.
fn render_filtered(name: &str, view: &View, filters: &Filters) -> Result<Vec<u8>, ApiError> {
    let nodes: BTreeMap<&str, &Node> = view
        .nodes
        .iter()
        .filter(|(_, n)| filters.matches(n))
        .map(|(id, n)| (id.as_str(), n))
        .collect();
    let edges: Vec<Edge<'_>> = view
        .edges()
        .filter(|(s, t)| nodes.contains_key(s) && nodes.contains_key(t))
        .map(|(source, target)| Edge { source, target })
        .collect();
    let answer = ViewAnswer {
        view: name,
        nodes: nodes.into_values().collect(),
        edges,
    };
    serde_json::to_vec(&answer).map_err(|err| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("encoding the view: {err}"),
    })
}

async fn view(
    State(shared): AppState,
    Path(name): Path<String>,
    Query(filters): Query<Filters>,
) -> Result<Response, ApiError> {
    ensure_built(&shared, &name).await;
    let views = shared.views();
    let view = find_view(&views, &name)?;
    let body = if filters.is_empty() {
        // The unfiltered view is encoded once per refresh and shared by every request.
        shared.rendered(&views, &name, || render_view(&name, view))?
    } else {
        axum::body::Bytes::from(render_filtered(&name, view, &filters)?)
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn node(
    State(shared): AppState,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    ensure_built(&shared, &name).await;
    let views = shared.views();
    let view = find_view(&views, &name)?;
    let node = view
        .nodes
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no node {id} in view {name}")))?;
    let inbound: Vec<&str> = view
        .edges()
        .filter(|(_, target)| *target == id)
        .map(|(source, _)| source)
        .collect();
    Ok(Json(json!({
        "view": name,
        "node": node,
        "connections": { "outbound": node.adjacency, "inbound": inbound },
    })))
}

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
}

async fn search(
    State(shared): AppState,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let needle = query
        .q
        .filter(|q| !q.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing query parameter q"))?;
    for name in crate::topology::views::PROCESS_VIEWS {
        ensure_built(&shared, name).await;
    }
    let views = shared.views();
    let mut matches = Vec::new();
    for (view_name, view) in &views.views {
        for node in view.nodes.values() {
            let hit = node.label.contains(&needle)
                || node.id.contains(&needle)
                || node.metadata.values().any(|v| v.contains(&needle));
            if hit {
                matches.push(json!({ "view": view_name, "id": node.id, "label": node.label }));
            }
        }
    }
    Ok(Json(json!({ "query": needle, "matches": matches })))
}

async fn watch(
    State(shared): AppState,
    Path(name): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    find_view(&shared.views(), &name)?;
    shared.watching(&name, 1);
    ensure_built(&shared, &name).await;
    Ok(upgrade.on_upgrade(move |socket| async move {
        send_diffs(socket, shared.clone(), name.clone()).await;
        shared.watching(&name, -1);
    }))
}

/// Diffs go to a client at most this often; changes in between are coalesced into one diff.
const DIFF_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Sends the whole view as additions, then the changes since the last message, at most once
/// per [`DIFF_INTERVAL`].
async fn send_diffs(mut socket: WebSocket, shared: Arc<Shared>, name: String) {
    let mut updates = shared.subscribe_views();
    let mut current = View::default();
    loop {
        let latest = updates.borrow_and_update().clone();
        let next = latest.get(&name).cloned().unwrap_or_default();
        let changes: Diff = diff(&current, &next);
        current = next;
        if !changes.is_empty() {
            let Ok(text) = serde_json::to_string(&changes) else {
                return;
            };
            if socket.send(Message::Text(text.into())).await.is_err() {
                return;
            }
            tokio::time::sleep(DIFF_INTERVAL).await;
        }
        if updates.changed().await.is_err() {
            return;
        }
    }
}
