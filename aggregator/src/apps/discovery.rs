//! Service discovery for apps: the endpoints (`host:port`) of an app's ready instances,
//! running and, with health checks, healthy, so clients need no registry of their own.
//! `GET /v2/discovery/{app}` answers them once; with `?watch=true` it is a stream of
//! server-sent `endpoints` events: the current set at once, then the new set whenever it
//! changes.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{Path, Query, State},
    response::{IntoResponse, Json, Response, Sse, sse::Event as SseEvent},
    routing::get,
};
use serde_json::{Value, json};
use tokio::sync::broadcast::{Receiver, error::RecvError};

use super::{
    core::AppsCore, definition::absolute_id, instances::App, service::AppService,
    service::Published,
};

/// How often a watcher's set is recomputed even without events (after missed events).
const RECHECK: Duration = Duration::from_secs(5);

pub fn router(service: Arc<AppService>) -> Router {
    Router::new()
        .route("/v2/discovery/{*app}", get(discover))
        .with_state(service)
}

/// The ready endpoints of `app`: each instance's host with its ports, in task order.
fn endpoints_of(app: &App) -> Vec<Value> {
    let checked = app.checked();
    app.active()
        .filter(|i| i.ready(checked))
        .map(|i| {
            json!({
                "taskId": i.task_id,
                "host": i.host,
                "ports": i.ports,
                "addresses": i.ports.iter().map(|p| format!("{}:{p}", i.host)).collect::<Vec<_>>(),
                "version": i.version,
            })
        })
        .collect()
}

/// The discovery document of `id`; None when there is no such app.
fn document(core: &AppsCore, id: &str) -> Option<Value> {
    let app = core.apps.get(id).filter(|a| !a.deleting)?;
    Some(json!({ "app": id, "endpoints": endpoints_of(app) }))
}

async fn discover(
    State(service): State<Arc<AppService>>,
    Path(app): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let id = absolute_id(&app);
    let watch = params
        .iter()
        .any(|(k, v)| k == "watch" && (v.eq_ignore_ascii_case("true") || v == "1"));
    let now = document(&service.lock(), &id);
    let Some(first) = now else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            Json(json!({ "message": format!("App '{id}' does not exist") })),
        )
            .into_response();
    };
    if !watch {
        return Json(first).into_response();
    }
    let events = service.watch();
    let state = (service, id, events, None::<Value>, Some(first));
    let stream = futures_util::stream::unfold(
        state,
        |(service, id, mut events, last, pending)| async move {
            if let Some(doc) = pending {
                let event = SseEvent::default().event("endpoints").data(doc.to_string());
                return Some((
                    Ok::<_, Infallible>(event),
                    (service, id, events, Some(doc), None),
                ));
            }
            loop {
                wait_for_app_event(&mut events, &id).await;
                let doc = document(&service.lock(), &id)
                    .unwrap_or_else(|| json!({ "app": id, "endpoints": [] }));
                if last.as_ref() != Some(&doc) {
                    let event = SseEvent::default().event("endpoints").data(doc.to_string());
                    return Some((Ok(event), (service, id, events, Some(doc), None)));
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response()
}

/// Returns after an event about `id`, after missed events, or after [`RECHECK`].
async fn wait_for_app_event(events: &mut Receiver<Published>, id: &str) {
    let _ = tokio::time::timeout(RECHECK, async {
        loop {
            match events.recv().await {
                Ok(event) if event.app_id.as_deref() == Some(id) => return,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    })
    .await;
}
