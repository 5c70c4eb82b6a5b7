//! Changes stop cleanly while the state cannot be made durable: when the store holds writes
//! it cannot commit (ZooKeeper without quorum), the leader answers calls that change apps
//! (`/v2`, as Marathon refuses them when its storage fails) with `503` and a reason, and
//! keeps answering reads. Scheduler API calls go on, as in Mesos, whose tasks and offers
//! never wait on the registry: what they change is held and lands once the store commits
//! again, and agents and frameworks re-send what a leader could lose. An app change is
//! answered once it is stored.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::master::Master;

/// How long a change waits for the store to be reachable again before it is refused.
const RECONNECT_GRACE: Duration = Duration::from_secs(3);

/// Whether a call changes apps: every call but GET to the app API.
fn changes_state(method: &Method, path: &str) -> bool {
    let read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    !read && path.starts_with("/v2/")
}

/// Middleware for app changes: `503` while the master's store cannot commit, and an answer
/// only once the change is stored (as Marathon answers after its storage write), so a
/// leader that dies right after answering loses nothing it confirmed.
pub async fn refuse_changes_while_store_fails(
    State(master): State<Arc<Master>>,
    request: Request,
    next: Next,
) -> Response {
    if !changes_state(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let store = master.store().clone();
    // A moved ZooKeeper connection (one server of the ensemble gone) takes a second or
    // two: a change waits that long rather than failing.
    let deadline = tokio::time::Instant::now() + RECONNECT_GRACE;
    while !store.healthy() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !store.healthy() {
        return unavailable(&format!(
            "the cluster state cannot be stored now ({} changes held: ZooKeeper has no quorum or is unreachable); retry",
            store.pending()
        ));
    }
    let response = next.run(request).await;
    let stored = tokio::task::spawn_blocking(move || store.flush())
        .await
        .unwrap_or(false);
    if stored {
        response
    } else {
        unavailable(
            "the change is made but not yet stored (the state store stopped answering); it is stored once the store is back: check before retrying",
        )
    }
}

fn unavailable(message: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "message": message })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pass_and_changes_are_held_back() {
        assert!(!changes_state(&Method::GET, "/v2/apps"));
        assert!(changes_state(&Method::POST, "/v2/apps"));
        assert!(changes_state(&Method::DELETE, "/v2/apps/web"));
        assert!(!changes_state(&Method::POST, "/api/v1/scheduler"));
        assert!(!changes_state(&Method::POST, "/api/v1"));
    }
}
