//! `/api/v1/migration`: the migration's status and phases, and starting, validating and
//! rolling back a phase. Only the leader answers (standbys redirect there); a phase that
//! hands the leadership over answers first, then this aggregator starts over.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use super::{
    MigrationError,
    controller::Migration,
    record::{PHASES, PhaseState, Record},
};

type Shared = Option<Arc<Migration>>;

/// The routes; `None` when this aggregator is not on ZooKeeper.
pub fn router(migration: Option<Arc<Migration>>) -> Router {
    Router::new()
        .route("/api/v1/migration/status", get(status))
        .route("/api/v1/migration/phases", get(phases))
        .route("/api/v1/migration/phases/{id}/{action}", post(act))
        .with_state(migration)
}

impl IntoResponse for MigrationError {
    fn into_response(self) -> Response {
        let status = match &self {
            MigrationError::Rule(super::record::RuleError::NoSuchPhase(_)) => StatusCode::NOT_FOUND,
            MigrationError::Rule(_) | MigrationError::NotOnZooKeeper => StatusCode::CONFLICT,
            MigrationError::BadRequest(_) => StatusCode::BAD_REQUEST,
            MigrationError::Check(_) => StatusCode::UNPROCESSABLE_ENTITY,
            MigrationError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(json!({ "message": self.to_string() }))).into_response()
    }
}

fn phases_json(record: Option<&Record>) -> Value {
    let list: Vec<Value> = PHASES
        .iter()
        .zip(1u8..)
        .map(|((name, description), id)| {
            let status = record.and_then(|r| r.phases.get(usize::from(id) - 1));
            json!({
                "id": id,
                "name": name,
                "description": description,
                "state": status.map_or(PhaseState::Pending, |p| p.state),
                "started_ms": status.and_then(|p| p.started_ms),
                "validated_ms": status.and_then(|p| p.validated_ms),
                "message": status.and_then(|p| p.message.clone()),
            })
        })
        .collect();
    Value::Array(list)
}

fn controller(migration: &Shared) -> Result<&Arc<Migration>, MigrationError> {
    migration.as_ref().ok_or(MigrationError::NotOnZooKeeper)
}

async fn status(State(migration): State<Shared>) -> Result<Json<Value>, MigrationError> {
    let migration = controller(&migration)?;
    let record = migration.record();
    let sync = migration.engine().map(|engine| {
        let m = &engine.metrics;
        json!({
            "writes": m.writes.get(),
            "conflicts": m.conflicts.get(),
            "errors": m.errors.get(),
            "resyncs": m.resyncs.get(),
        })
    });
    Ok(Json(json!({
        "active": record.is_some(),
        "home": migration.home().to_string(),
        "source": record.as_ref().map(|r| r.source.clone()),
        "target": record.as_ref().map(|r| r.target.clone()),
        "masters_at": record.as_ref().map(|r| r.masters_at.clone()),
        "agents_at": record.as_ref().and_then(|r| r.agents_at.clone()),
        "fenced": record.as_ref().is_some_and(|r| {
            r.phases.last().is_some_and(|p| matches!(p.state, PhaseState::Started | PhaseState::Validated))
        }),
        "complete": record.as_ref().is_some_and(Record::complete),
        "current_phase": record.as_ref().and_then(|r| r.current().map(|p| p.id)),
        "sync": sync,
        "agents": migration.agents(),
        "phases": phases_json(record.as_ref()),
        "revision": record.as_ref().map(|r| r.revision),
    })))
}

async fn phases(State(migration): State<Shared>) -> Result<Json<Value>, MigrationError> {
    let migration = controller(&migration)?;
    Ok(Json(phases_json(migration.record().as_ref())))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    target: Option<String>,
}

async fn act(
    State(migration): State<Shared>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, MigrationError> {
    let migration = controller(&migration)?;
    let id: u8 = id.parse().map_err(|_| {
        MigrationError::BadRequest(format!("`{id}` is not a phase: phases are 1 to 6"))
    })?;
    if !(1..=PHASES.len()).contains(&usize::from(id)) {
        return Err(super::record::RuleError::NoSuchPhase(id).into());
    }
    let (record, restart) = match action.as_str() {
        "start" => {
            let body: StartBody = if body.iter().all(u8::is_ascii_whitespace) {
                StartBody { target: None }
            } else {
                serde_json::from_slice(&body).map_err(|e| {
                    MigrationError::BadRequest(format!(
                        "the body is not {{\"target\": \"zk://...\"}}: {e}"
                    ))
                })?
            };
            let (record, restart) = migration.start(id, body.target.as_deref()).await?;
            (Some(record), restart)
        }
        "validate" => (Some(migration.validate(id).await?), None),
        "rollback" => migration.rollback(id).await?,
        other => {
            return Ok((
                StatusCode::NOT_FOUND,
                Json(json!({ "message": format!("no action `{other}`: start, validate or rollback") })),
            )
                .into_response());
        }
    };
    if let Some(why) = &restart {
        // The answer leaves first.
        Migration::start_over_soon(why.clone());
    }
    Ok(Json(json!({
        "phase": phases_json(record.as_ref()).get(usize::from(id) - 1).cloned(),
        "migration": record,
        "restarting": restart,
    }))
    .into_response())
}
