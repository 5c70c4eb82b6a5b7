//! What a standby aggregator serves while another leads. HTTP: `307` with a `Location` on
//! the leader (the same path and query) for every API call, `503` while no leader is known
//! (or while this aggregator, elected, is still taking over),
//! `/health` and Marathon's `/v2/leader` answered here. QUIC: agents join here as anywhere
//! (the CA is the set's), and a report connection is answered with a refusal naming the
//! leader's QUIC address, which the agent follows.

use std::{path::PathBuf, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, Uri, header::LOCATION},
    response::{IntoResponse, Response},
    routing::get,
};
use proto::{
    control::Control,
    frame::{MAX_CONTROL_FRAME, read_frame, write_frame},
};
use quinn::{Connection, Endpoint, VarInt};
use serde_json::json;
use tokio::sync::watch;
use tracing::{debug, info};

use super::election::Leader;
use crate::{
    ingest::{self, ALPN_JOIN, ALPN_REPORTS, Gate},
    metrics::Metrics,
    pki::Pki,
};

/// Who leads, as the election last said.
pub type LeaderWatch = watch::Receiver<Option<Leader>>;

/// What the standby's HTTP handlers read: who leads, and this aggregator's own address.
#[derive(Debug, Clone)]
struct Standby {
    leader: LeaderWatch,
    own: String,
}

/// The standby's HTTP API on `own`.
pub fn router(leader: LeaderWatch, own: std::net::SocketAddr) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v2/leader", get(marathon_leader))
        .fallback(redirect)
        .with_state(Standby {
            leader,
            own: own.to_string(),
        })
}

fn unavailable(message: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "message": message })),
    )
        .into_response()
}

async fn redirect(State(standby): State<Standby>, uri: Uri) -> Response {
    let Some(http) = standby.leader.borrow().as_ref().and_then(Leader::http) else {
        return unavailable("no aggregator leads yet (an election is under way); retry");
    };
    // Elected, still reading the state: a redirect would point back here.
    if http == standby.own {
        return unavailable("this aggregator is taking over as the leader; retry");
    }
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let location = format!("http://{http}{path}");
    debug!(location, "redirected to the leader");
    (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, location)]).into_response()
}

async fn health(State(standby): State<Standby>) -> Response {
    let leader = standby.leader.borrow().as_ref().and_then(Leader::http);
    Json(json!({"healthy": true, "leading": false, "leader": leader})).into_response()
}

async fn marathon_leader(State(standby): State<Standby>) -> Response {
    match standby.leader.borrow().as_ref().and_then(Leader::named) {
        Some(http) => Json(json!({"leader": http})).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "There is no leader"})),
        )
            .into_response(),
    }
}

/// What the standby's QUIC side needs.
#[derive(Debug)]
pub struct QuicStandby {
    pub pki: Arc<Pki>,
    pub data_dir: PathBuf,
    pub limits: proto::Limits,
    pub metrics: Metrics,
    pub leader: LeaderWatch,
}

impl QuicStandby {
    fn gate(&self) -> Gate<'_> {
        Gate {
            pki: &self.pki,
            data_dir: &self.data_dir,
            limits: &self.limits,
            metrics: &self.metrics,
        }
    }
}

/// Serves joins and refers report connections to the leader until the endpoint closes.
pub async fn serve_quic(endpoint: Endpoint, standby: Arc<QuicStandby>) {
    while let Some(incoming) = endpoint.accept().await {
        let standby = standby.clone();
        tokio::spawn(async move {
            if let Ok(connection) = incoming.await {
                handle(connection, &standby).await;
            }
        });
    }
}

async fn handle(connection: Connection, standby: &QuicStandby) {
    match ingest::alpn(&connection).as_deref() {
        Some(ALPN_JOIN) => ingest::enroll(connection, &standby.gate()).await,
        Some(ALPN_REPORTS) => {
            let Some(agent_id) = ingest::identify(&connection, &standby.pki, &standby.metrics)
            else {
                return;
            };
            refer(&connection, standby).await;
            info!(agent_id, "agent referred to the leader");
        }
        _ => ingest::refuse(
            &connection,
            &standby.metrics,
            "unknown protocol",
            "no ALPN agreed",
        ),
    }
}

/// Answers the agent's hello with the leader's QUIC address and waits (briefly) for the
/// agent to close: closing first could drop the answer before the agent has read it.
async fn refer(connection: &Connection, standby: &QuicStandby) {
    let Ok((mut send, mut recv)) = connection.accept_bi().await else {
        return;
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        read_frame(&mut recv, MAX_CONTROL_FRAME),
    )
    .await;
    let leader = standby.leader.borrow().as_ref().and_then(Leader::quic);
    let refusal = Control::Refused {
        reason: "this aggregator is a standby".into(),
        leader,
    };
    let _ = write_frame(&mut send, &refusal.encode()).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(5), connection.closed()).await;
    connection.close(VarInt::from_u32(0), b"standby");
}
