//! Changes stop cleanly while the state cannot be made durable: when the store holds writes
//! it cannot commit (ZooKeeper without quorum), the leader answers calls that change state
//! with `503` and a reason, and keeps answering reads. Status updates from agents are still
//! taken (they are kept and re-sent until acknowledged), and held writes land once the store
//! commits again.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::master::Master;

/// Whether a call changes state: every call but GET to the master's and the apps' APIs.
/// The operator API (`POST /api/v1`) is left out: strata's operator calls only read.
fn changes_state(method: &Method, path: &str) -> bool {
    let read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let operator = path == "/api/v1" || path.starts_with("/api/v1/operator");
    !read && !operator
}

/// Middleware: `503` for state changes while the master's store cannot commit.
pub async fn refuse_changes_while_store_fails(
    State(master): State<Arc<Master>>,
    request: Request,
    next: Next,
) -> Response {
    let store = master.store();
    if store.healthy() || !changes_state(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let body = json!({
        "message": format!(
            "the cluster state cannot be stored now ({} changes held: ZooKeeper has no quorum or is unreachable); retry",
            store.pending()
        )
    });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pass_and_changes_are_held_back() {
        assert!(!changes_state(&Method::GET, "/v2/apps"));
        assert!(changes_state(&Method::POST, "/v2/apps"));
        assert!(changes_state(&Method::DELETE, "/v2/apps/web"));
        assert!(changes_state(&Method::POST, "/api/v1/scheduler"));
        assert!(!changes_state(&Method::POST, "/api/v1"));
    }
}
