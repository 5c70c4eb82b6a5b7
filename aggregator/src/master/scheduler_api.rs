//! The Mesos v1 scheduler HTTP API: `POST /api/v1/scheduler`. SUBSCRIBE answers with a
//! chunked RecordIO stream of events and a `Mesos-Stream-Id` header; every other call
//! comes on its own connection with that header and is answered 202, or 400 (malformed,
//! with the reason), 403 (not subscribed) or 415 (not JSON).

use std::{convert::Infallible, sync::Arc};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::StreamExt as _;
use serde_json::Value;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tracing::debug;

use super::{Master, core::CallError, events};
use crate::state::now_ms;

/// Most events one chunk of the event stream carries.
const EVENTS_PER_CHUNK: usize = 256;

/// A plain-text error, as Mesos answers.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

/// Closes the framework's subscription when its stream is dropped (the client went away).
#[derive(Debug)]
struct CloseGuard {
    master: Arc<Master>,
    framework: String,
    stream_id: String,
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.master
            .lock()
            .stream_closed(&self.framework, &self.stream_id, now_ms());
    }
}

/// `POST /api/v1/scheduler`.
pub async fn call(State(master): State<Arc<Master>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.contains("protobuf") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "this master speaks the JSON form of the v1 API only: send Content-Type: application/json",
        );
    }
    let call: Value = match serde_json::from_slice(&body) {
        Ok(call) => call,
        Err(err) => {
            master.lock().counters.invalid_calls += 1;
            return error(
                StatusCode::BAD_REQUEST,
                format!("malformed JSON call: {err}"),
            );
        }
    };
    let Some(kind) = call["type"].as_str() else {
        master.lock().counters.invalid_calls += 1;
        return error(StatusCode::BAD_REQUEST, "the call has no type");
    };
    if kind == "SUBSCRIBE" {
        return subscribe(master, &call);
    }
    let Some(framework) = call["framework_id"]["value"].as_str().map(str::to_owned) else {
        master.lock().counters.invalid_calls += 1;
        return error(
            StatusCode::BAD_REQUEST,
            format!("{kind} needs framework_id"),
        );
    };
    let stream_id = headers.get("Mesos-Stream-Id").and_then(|v| v.to_str().ok());
    let now = now_ms();
    let mut core = master.lock();
    if let Err(err) = core.check_stream(&framework, stream_id) {
        core.counters.invalid_calls += 1;
        let status = match err {
            CallError::NotSubscribed(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        return error(status, err.to_string());
    }
    let field = kind.to_ascii_lowercase();
    let args = &call[field.as_str()];
    let mut wake = false;
    let result = match kind {
        "ACCEPT" => {
            wake = true;
            core.accept(&framework, args, now)
        }
        "DECLINE" => {
            core.decline(&framework, args, now);
            Ok(())
        }
        "REVIVE" => {
            wake = true;
            core.revive(&framework);
            Ok(())
        }
        "SUPPRESS" => {
            core.suppress(&framework);
            Ok(())
        }
        "KILL" => core.kill(&framework, args, now),
        "SHUTDOWN" => core.shutdown(&framework, args, now),
        "ACKNOWLEDGE" => core.acknowledge(&framework, args),
        "RECONCILE" => {
            core.reconcile(&framework, args, now);
            Ok(())
        }
        "MESSAGE" => {
            debug!(
                framework,
                "framework message: no custom executors run here; dropped"
            );
            Ok(())
        }
        "TEARDOWN" => {
            wake = true;
            core.teardown(&framework);
            Ok(())
        }
        "REQUEST" | "ACCEPT_INVERSE_OFFERS" | "DECLINE_INVERSE_OFFERS" | "UPDATE_FRAMEWORK" => {
            debug!(framework, kind, "call accepted without effect");
            Ok(())
        }
        other => Err(CallError::Invalid(format!("unknown call type {other}"))),
    };
    if result.is_err() {
        core.counters.invalid_calls += 1;
    }
    drop(core);
    if wake {
        master.wake();
    }
    match result {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(err) => error(StatusCode::BAD_REQUEST, err.to_string()),
    }
}

fn subscribe(master: Arc<Master>, call: &Value) -> Response {
    let info = &call["subscribe"]["framework_info"];
    let stream_id = format!("{:032x}", rand::random::<u128>());
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let subscribed = master
        .lock()
        .subscribe(info, stream_id.clone(), events_tx, now_ms());
    let framework = match subscribed {
        Ok(framework) => framework,
        Err(err) => {
            master.lock().counters.invalid_calls += 1;
            return error(StatusCode::BAD_REQUEST, err.to_string());
        }
    };
    master.wake();
    let guard = CloseGuard {
        master,
        framework,
        stream_id: stream_id.clone(),
    };
    // Events that queued up while the last write went travel in one chunk.
    let body = UnboundedReceiverStream::new(events_rx)
        .ready_chunks(EVENTS_PER_CHUNK)
        .map(move |batch| {
            let _keep = &guard;
            let mut chunk = Vec::new();
            for event in &batch {
                events::append_record(&mut chunk, event);
            }
            Ok::<_, Infallible>(Bytes::from(chunk))
        });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header("Mesos-Stream-Id", stream_id)
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "building the stream"))
}
