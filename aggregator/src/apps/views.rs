//! The JSON the Marathon API answers with and its events carry, with only the keys
//! Marathon clients know: apps with their counts and tasks, tasks with their health-check
//! results, deployments and their plans, queue items with the offers' reject summary.

use serde_json::{Value, json};

use super::{
    deployments::Deployment,
    instances::{App, Instance},
    placement::Reject,
};

/// Milliseconds since the epoch as Marathon writes times: `2026-11-22T07:30:00.123Z`.
pub fn timestamp(ms: u64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".into())
}

/// A task (`MarathonTask`).
pub fn task(app: &App, instance: &Instance) -> Value {
    let mut task = json!({
        "id": instance.task_id,
        "appId": app.definition.id,
        "host": instance.host,
        "slaveId": instance.agent_id,
        "ports": instance.ports,
        "servicePorts": instance.ports,
        "ipAddresses": [],
        "stagedAt": timestamp(instance.staged_at_ms),
        "version": instance.version,
        "state": instance.state,
    });
    if let Some(started) = instance.started_at_ms {
        task["startedAt"] = json!(timestamp(started));
    }
    if app.checked() && instance.healthy.is_some() {
        task["healthCheckResults"] = json!([{
            "taskId": instance.task_id,
            "alive": instance.healthy == Some(true),
            "consecutiveFailures": u32::from(instance.healthy == Some(false)),
        }]);
    }
    task
}

/// An app with its counts, deployments, and (when `with_tasks`) its tasks.
pub fn app(app: &App, with_tasks: bool) -> Value {
    let mut json = app.definition.to_json();
    let checked = app.checked();
    let active: Vec<&Instance> = app.active().collect();
    let count = |f: &dyn Fn(&&Instance) -> bool| active.iter().filter(|i| f(i)).count();
    json["tasksRunning"] = json!(count(&|i| i.state == "TASK_RUNNING"));
    json["tasksStaged"] = json!(count(&|i| i.state != "TASK_RUNNING"));
    json["tasksHealthy"] = json!(if checked {
        count(&|i| i.healthy == Some(true))
    } else {
        0
    });
    json["tasksUnhealthy"] = json!(if checked {
        count(&|i| i.healthy == Some(false))
    } else {
        0
    });
    json["deployments"] = json!(
        app.deployment
            .iter()
            .map(|id| json!({ "id": id }))
            .collect::<Vec<_>>()
    );
    json["versionInfo"] = json!({
        "lastScalingAt": app.last_scaling,
        "lastConfigChangeAt": app.config_version,
    });
    if let Some(failure) = &app.last_failure {
        json["lastTaskFailure"] = failure.clone();
    }
    if with_tasks {
        json["tasks"] = json!(active.iter().map(|i| task(app, i)).collect::<Vec<_>>());
    }
    json
}

/// A deployment (`GET /v2/deployments`).
pub fn deployment(deployment: &Deployment) -> Value {
    let steps: Vec<Value> = deployment
        .steps
        .iter()
        .map(|action| json!({ "actions": [{ "action": action, "app": deployment.app_id }] }))
        .collect();
    let current = deployment
        .steps
        .get(deployment.current_step.saturating_sub(1))
        .map(|action| json!([{ "action": action, "app": deployment.app_id, "readinessCheckResults": [] }]))
        .unwrap_or_else(|| json!([]));
    json!({
        "id": deployment.id,
        "version": deployment.version,
        "affectedApps": [deployment.app_id],
        "affectedPods": [],
        "steps": steps,
        "currentActions": current,
        "currentStep": deployment.current_step,
        "totalSteps": deployment.steps.len(),
    })
}

/// A deployment's plan, as events carry it.
pub fn plan(deployment: &Deployment) -> Value {
    let group = |apps: Value| json!({ "id": "/", "version": deployment.version, "apps": apps, "groups": [], "dependencies": [], "pods": [] });
    json!({
        "id": deployment.id,
        "version": deployment.version,
        "original": group(deployment.original.clone().map_or_else(|| json!([]), |a| json!([a]))),
        "target": group(deployment.target.clone().map_or_else(|| json!([]), |a| json!([a]))),
        "steps": deployment
            .steps
            .iter()
            .map(|action| json!({ "actions": [{ "action": action, "app": deployment.app_id }] }))
            .collect::<Vec<_>>(),
    })
}

/// A queue item: instances waiting for offers, and why offers did not fit.
pub fn queue_item(app: &App, count: u32, now: u64) -> Value {
    let stats = &app.offers;
    let reasons: Vec<Value> = Reject::ALL
        .iter()
        .map(|reason| {
            let declined = stats.rejected.get(reason.name()).copied().unwrap_or(0);
            json!({ "reason": reason.name(), "declined": declined, "processed": stats.processed })
        })
        .collect();
    let mut summary = json!({
        "processedOffersCount": stats.processed,
        "unusedOffersCount": stats.unused,
        "rejectSummaryLastOffers": reasons,
        "rejectSummaryLaunchAttempt": reasons,
    });
    if let Some(at) = stats.last_unused_ms {
        summary["lastUnusedOfferAt"] = json!(timestamp(at));
    }
    if let Some(at) = stats.last_used_ms {
        summary["lastUsedOfferAt"] = json!(timestamp(at));
    }
    let left_ms = app.delay_until_ms.saturating_sub(now);
    json!({
        "app": self::app(app, false),
        "count": count,
        "delay": { "timeLeftSeconds": left_ms / 1000, "overdue": left_ms == 0 },
        "since": app.config_version,
        "processedOffersSummary": summary,
        "lastUnusedOffers": [],
    })
}

/// A Marathon event of `kind`, stamped with `now`.
pub fn event(kind: &str, now: u64, mut fields: Value) -> Value {
    fields["eventType"] = json!(kind);
    fields["timestamp"] = json!(timestamp(now));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_have_milliseconds_and_a_z() {
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
