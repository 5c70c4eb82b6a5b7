//! The app service's state machine (pure: time comes in, events and kills go out): app
//! changes from the API become deployments; offers become launches; status updates move
//! instances; each step plans kills and finishes deployments. The async shell
//! ([`super::service`]) carries its decisions to the master.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    definition::{AppDefinition, Invalid},
    deployments::Deployment,
    instances::{App, Instance},
    placement::{self, AgentFacts, OfferView},
    plan::{converged, plan},
    views,
};

/// Why an API call was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    NotFound(String),
    /// The app is being changed by these deployments (override with `force=true`).
    Locked(Vec<String>),
    Conflict(String),
    Invalid(Invalid),
    BadRequest(String),
}

impl ApiError {
    /// HTTP status and Marathon's JSON body.
    pub fn answer(&self) -> (u16, Value) {
        match self {
            Self::NotFound(message) => (404, json!({ "message": message })),
            Self::Locked(ids) => (
                409,
                json!({
                    "message": "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
                    "deployments": ids.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
                }),
            ),
            Self::Conflict(message) => (409, json!({ "message": message })),
            Self::Invalid(invalid) => (422, invalid.to_json()),
            Self::BadRequest(message) => (400, json!({ "message": message })),
        }
    }
}

/// An app's durable record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppRecord {
    pub definition: AppDefinition,
    pub versions: BTreeMap<String, AppDefinition>,
    pub config_version: String,
    pub last_scaling: String,
}

/// A running task found in the master after a restart, for [`AppsCore::restore`].
#[derive(Debug, Clone)]
pub struct KnownTask {
    pub app_id: String,
    pub instance: Instance,
}

/// What to do with one offer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Accept { offer_id: String, tasks: Vec<Value> },
    Decline { offer_id: String },
}

/// A kill to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Kill {
    pub task_id: String,
    pub agent_id: String,
    pub grace_ms: Option<u64>,
}

/// Every app and deployment.
#[derive(Debug, Default)]
pub struct AppsCore {
    pub apps: BTreeMap<String, App>,
    pub deployments: BTreeMap<String, Deployment>,
    pub(super) agents: BTreeMap<String, AgentFacts>,
    pub(super) task_apps: HashMap<String, String>,
    pub(super) events: Vec<Value>,
    pub(super) dirty: BTreeSet<String>,
    pub(super) last_version_ms: u64,
}

/// strata's own event types: sent only to `/v2/events` watchers that ask for them by name
/// (Marathon's clients refuse types they do not know).
pub const STRATA_EVENTS: [&str; 1] = ["deployment_waiting"];

/// How long a deployment waits for offers it can use before an event says why, and how
/// often it says so again.
const WAITING_REPORT_MS: u64 = 10_000;

const TERMINAL: [&str; 8] = [
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_LOST",
    "TASK_ERROR",
    "TASK_DROPPED",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
];

impl AppsCore {
    /// A fresh version string, later than every earlier one.
    pub(super) fn version(&mut self, now: u64) -> String {
        self.last_version_ms = now.max(self.last_version_ms + 1);
        views::timestamp(self.last_version_ms)
    }

    pub(super) fn emit(&mut self, kind: &str, now: u64, fields: Value) {
        self.events.push(views::event(kind, now, fields));
    }

    /// Marathon events made since the last call.
    pub fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.events)
    }

    /// Apps whose durable record changed since the last call: their record, or None when
    /// the app is gone.
    pub fn take_dirty(&mut self) -> Vec<(String, Option<AppRecord>)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|id| {
                let record = self
                    .apps
                    .get(&id)
                    .filter(|a| !a.deleting)
                    .map(|a| AppRecord {
                        definition: a.definition.clone(),
                        versions: a.versions.clone(),
                        config_version: a.config_version.clone(),
                        last_scaling: a.last_scaling.clone(),
                    });
                (id, record)
            })
            .collect()
    }

    /// Rebuilds the apps from their records and the tasks the master still has.
    pub fn restore(&mut self, records: Vec<AppRecord>, tasks: Vec<KnownTask>) {
        for record in records {
            let mut app = App::new(record.definition, &record.config_version);
            app.versions = record.versions;
            app.last_scaling = record.last_scaling;
            self.apps.insert(app.definition.id.clone(), app);
        }
        for known in tasks {
            if let Some(app) = self.apps.get_mut(&known.app_id) {
                self.task_apps
                    .insert(known.instance.task_id.clone(), known.app_id.clone());
                app.instances
                    .insert(known.instance.task_id.clone(), known.instance);
            }
        }
        if let Some(latest) = self.apps.values().flat_map(|a| a.versions.keys()).max() {
            self.last_version_ms =
                time::OffsetDateTime::parse(latest, &time::format_description::well_known::Rfc3339)
                    .map_or(0, |t| (t.unix_timestamp_nanos() / 1_000_000) as u64);
        }
    }

    /// Fits waiting instances into `offers`; each offer is accepted with its launches or
    /// declined.
    pub fn offers(&mut self, offers: Vec<OfferView>, now: u64) -> Vec<Decision> {
        let mut needs: BTreeMap<String, u32> = self
            .apps
            .iter()
            .filter(|(_, a)| !a.deleting && now >= a.delay_until_ms)
            .map(|(id, a)| (id.clone(), plan(a).launch))
            .filter(|(_, n)| *n > 0)
            .collect();
        let mut placed: BTreeMap<String, Vec<AgentFacts>> = BTreeMap::new();
        for id in needs.keys() {
            if let Some(app) = self
                .apps
                .get(id)
                .filter(|a| !a.definition.constraints.is_empty())
            {
                let facts = app
                    .active()
                    .map(|i| {
                        self.agents
                            .get(&i.agent_id)
                            .cloned()
                            .unwrap_or_else(|| AgentFacts {
                                hostname: i.host.clone(),
                                ..AgentFacts::default()
                            })
                    })
                    .collect();
                placed.insert(id.clone(), facts);
            }
        }
        let mut decisions = Vec::with_capacity(offers.len());
        for mut offer in offers {
            self.agents
                .insert(offer.agent_id.clone(), offer.facts.clone());
            let mut tasks = Vec::new();
            for (id, need) in needs.iter_mut() {
                let Some(app) = self.apps.get_mut(id) else {
                    continue;
                };
                app.offers.processed += 1;
                let mut used = false;
                while *need > 0 {
                    let on: Vec<&AgentFacts> = placed
                        .get(id)
                        .map(|p| p.iter().collect())
                        .unwrap_or_default();
                    match placement::fit(&app.definition, &offer, &on) {
                        Ok(fit) => {
                            let task_id = format!(
                                "{}.{:032x}",
                                id.trim_start_matches('/').replace('/', "_"),
                                rand::random::<u128>()
                            );
                            tasks.push(placement::task_info(
                                &app.definition,
                                &app.config_version,
                                &task_id,
                                &offer.agent_id,
                                &fit,
                            ));
                            offer.left = offer.left.minus(&fit.taken);
                            app.instances.insert(
                                task_id.clone(),
                                Instance {
                                    task_id: task_id.clone(),
                                    agent_id: offer.agent_id.clone(),
                                    host: offer.facts.hostname.clone(),
                                    ports: fit.ports,
                                    version: app.config_version.clone(),
                                    state: "TASK_STAGING".into(),
                                    healthy: None,
                                    staged_at_ms: now,
                                    started_at_ms: None,
                                    killing: false,
                                },
                            );
                            self.task_apps.insert(task_id, id.clone());
                            if let Some(p) = placed.get_mut(id) {
                                p.push(offer.facts.clone());
                            }
                            *need -= 1;
                            used = true;
                        }
                        Err(reason) => {
                            *app.offers.rejected.entry(reason.name()).or_default() += 1;
                            break;
                        }
                    }
                }
                if used {
                    app.offers.last_used_ms = Some(now);
                } else {
                    app.offers.unused += 1;
                    app.offers.last_unused_ms = Some(now);
                }
            }
            needs.retain(|_, n| *n > 0);
            decisions.push(if tasks.is_empty() {
                Decision::Decline { offer_id: offer.id }
            } else {
                Decision::Accept {
                    offer_id: offer.id,
                    tasks,
                }
            });
        }
        decisions
    }

    /// A task status from the master (`TaskStatus` JSON).
    pub fn status(&mut self, status: &Value, now: u64) {
        let Some(task_id) = status["task_id"]["value"].as_str() else {
            return;
        };
        let Some(app_id) = self.task_apps.get(task_id).cloned() else {
            return;
        };
        let Some(app) = self.apps.get_mut(&app_id) else {
            return;
        };
        let Some(instance) = app.instances.get_mut(task_id) else {
            return;
        };
        let state = status["state"].as_str().unwrap_or("TASK_LOST").to_owned();
        let healthy = status["healthy"].as_bool();
        let was_healthy = instance.healthy;
        if state == "TASK_RUNNING" && instance.started_at_ms.is_none() {
            instance.started_at_ms = Some(now);
        }
        instance.state = state.clone();
        if healthy.is_some() {
            instance.healthy = healthy;
        }
        let (host, ports, version, agent, killing) = (
            instance.host.clone(),
            instance.ports.clone(),
            instance.version.clone(),
            instance.agent_id.clone(),
            instance.killing,
        );
        let message = status["message"].as_str().unwrap_or("").to_owned();
        self.emit("status_update_event", now, json!({
            "slaveId": agent, "taskId": task_id, "taskStatus": state, "message": message,
            "appId": app_id, "host": host, "ports": ports, "version": version, "ipAddresses": [],
        }));
        if healthy.is_some() && healthy != was_healthy {
            self.emit("health_status_changed_event", now, json!({ "appId": app_id, "taskId": task_id, "instanceId": task_id, "version": version, "alive": healthy == Some(true) }));
        }
        if !TERMINAL.contains(&state.as_str()) {
            return;
        }
        self.task_apps.remove(task_id);
        let Some(app) = self.apps.get_mut(&app_id) else {
            return;
        };
        app.instances.remove(task_id);
        if state == "TASK_FINISHED" && !killing && app.restarts_on_failure_only() {
            app.completed += 1;
        }
        let failed = state != "TASK_FINISHED" && !(state == "TASK_KILLED" && killing);
        if failed {
            app.back_off(now);
            app.last_failure = Some(json!({
                "appId": app_id, "host": host, "message": message, "state": state, "taskId": task_id,
                "timestamp": views::timestamp(now), "version": version, "slaveId": agent,
            }));
            if healthy == Some(false) {
                self.emit("unhealthy_task_kill_event", now, json!({ "appId": app_id, "taskId": task_id, "instanceId": task_id, "version": version, "reason": message, "host": host, "slaveId": agent }));
            }
        }
    }

    /// Plans kills, finishes converged deployments and removes deleted apps.
    pub fn step(&mut self, now: u64) -> Vec<Kill> {
        let mut kills = Vec::new();
        let mut finished = Vec::new();
        let mut gone = Vec::new();
        for (id, app) in &mut self.apps {
            let grace_ms = app
                .definition
                .task_kill_grace_period_seconds
                .map(|s| (s * 1000.0) as u64);
            for task_id in plan(app).kill {
                if let Some(instance) = app.instances.get_mut(&task_id) {
                    instance.killing = true;
                    kills.push(Kill {
                        task_id,
                        agent_id: instance.agent_id.clone(),
                        grace_ms,
                    });
                }
            }
            let settled = app.instances.values().all(|i| !i.killing);
            if app.deleting && app.instances.is_empty() {
                gone.push(id.clone());
            }
            if let Some(deployment) = &app.deployment
                && settled
                && (converged(app) || app.deleting && app.instances.is_empty())
            {
                finished.push(deployment.clone());
            }
        }
        self.report_waiting(now);
        for deployment_id in finished {
            if let Some(deployment) = self.deployments.remove(&deployment_id) {
                if let Some(app) = self.apps.get_mut(&deployment.app_id) {
                    app.deployment = None;
                }
                let plan = views::plan(&deployment);
                let step = json!({ "actions": [{ "action": deployment.steps.last().copied().unwrap_or("ScaleApplication"), "app": deployment.app_id }] });
                self.emit(
                    "deployment_step_success",
                    now,
                    json!({ "plan": plan, "currentStep": step }),
                );
                self.emit(
                    "deployment_success",
                    now,
                    json!({ "id": deployment_id, "plan": views::plan(&deployment) }),
                );
            }
        }
        for id in gone {
            self.apps.remove(&id);
            self.dirty.insert(id.clone());
            self.emit("app_terminated_event", now, json!({ "appId": id }));
        }
        kills
    }

    /// For each deployment that has waited [`WAITING_REPORT_MS`] without placing an instance:
    /// a `deployment_waiting` event with the reasons offers were refused.
    fn report_waiting(&mut self, now: u64) {
        let mut waiting = Vec::new();
        for (id, app) in &mut self.apps {
            let Some(deployment) = app
                .deployment
                .as_ref()
                .and_then(|d| self.deployments.get(d))
            else {
                continue;
            };
            let count = plan(app).launch;
            let idle_since = app
                .offers
                .last_used_ms
                .unwrap_or(0)
                .max(deployment.started_ms);
            if count == 0
                || app.deleting
                || now < app.delay_until_ms
                || now < idle_since + WAITING_REPORT_MS
                || now < app.waiting_reported_ms + WAITING_REPORT_MS
            {
                continue;
            }
            app.waiting_reported_ms = now;
            let reasons: serde_json::Map<String, Value> = app
                .offers
                .rejected
                .iter()
                .map(|(reason, n)| ((*reason).to_owned(), json!(n)))
                .collect();
            waiting.push(json!({
                "appId": id, "deploymentId": deployment.id, "waiting": count,
                "processedOffers": app.offers.processed, "rejectedBy": reasons,
            }));
        }
        for fields in waiting {
            self.emit("deployment_waiting", now, fields);
        }
    }

    /// Whether some app waits for offers (now or after its backoff).
    pub fn wants_offers(&self) -> bool {
        self.apps
            .values()
            .any(|a| !a.deleting && plan(a).launch > 0)
    }

    /// `GET /v2/queue`.
    pub fn queue(&self, now: u64) -> Value {
        let items: Vec<Value> = self
            .apps
            .values()
            .filter(|a| !a.deleting)
            .filter_map(|a| {
                let count = plan(a).launch;
                (count > 0).then(|| views::queue_item(a, count, now))
            })
            .collect();
        json!({ "queue": items })
    }

    /// The app that runs `task_id`, if any.
    pub fn app_of(&self, task_id: &str) -> Option<&str> {
        self.task_apps.get(task_id).map(String::as_str)
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
