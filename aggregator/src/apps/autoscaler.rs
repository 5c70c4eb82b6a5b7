//! The autoscaler's async shell: every few seconds it takes, from the topology the agents
//! report, what each running instance of an app with a scale policy uses, decides with
//! [`autoscale::decide`], and changes the instance count as `PUT /v2/apps/{id}` would (a
//! scaling deployment, with its events). Apps in a deployment are left until it ends, so
//! the autoscaler never fights a rollout. The watching half of strata steers the running
//! half.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde_json::json;
use tracing::{info, warn};

use super::{
    autoscale::{self, Policy, Sample, Usage},
    service::AppService,
};
use crate::state::{Shared, now_ms};

/// How often usage is looked at (reports arrive every second).
const EVERY: Duration = Duration::from_secs(5);

/// One app with a policy, as seen at one look.
struct Candidate {
    id: String,
    policy: Policy,
    instances: u32,
    cpus: f64,
    mem_mb: f64,
    /// Running instances: task and agent.
    running: Vec<(String, String)>,
}

fn candidates(service: &AppService) -> Vec<Candidate> {
    let core = service.lock();
    core.apps
        .values()
        .filter(|a| !a.deleting && a.deployment.is_none())
        .filter_map(|a| {
            let policy = match Policy::from_labels(&a.definition.labels)? {
                Ok(policy) => policy,
                Err(err) => {
                    warn!(app = %a.definition.id, error = %err, "scale policy ignored");
                    return None;
                }
            };
            Some(Candidate {
                id: a.definition.id.clone(),
                policy,
                instances: a.definition.instances,
                cpus: a.definition.cpus,
                mem_mb: a.definition.mem,
                running: a
                    .active()
                    .filter(|i| i.state == "TASK_RUNNING")
                    .map(|i| (i.task_id.clone(), i.agent_id.clone()))
                    .collect(),
            })
        })
        .collect()
}

/// One look: scales the apps whose policy asks for it; returns how many changed.
fn look(service: &AppService, shared: &Shared, last: &mut HashMap<String, u64>) -> usize {
    let apps = candidates(service);
    if apps.is_empty() {
        return 0;
    }
    let mut usage: HashMap<String, Usage> = HashMap::new();
    {
        let topology = shared.topology();
        let mut agents: Vec<&str> = apps
            .iter()
            .flat_map(|a| a.running.iter().map(|(_, agent)| agent.as_str()))
            .collect();
        agents.sort_unstable();
        agents.dedup();
        for agent in agents {
            if let Some(state) = topology.agent(agent).filter(|s| s.connected) {
                usage.extend(autoscale::usage_by_task(
                    state.processes.values(),
                    &state.containers,
                ));
            }
        }
    }
    let now = now_ms();
    let mut changed = 0;
    for app in apps {
        let measured: Vec<Usage> = app
            .running
            .iter()
            .filter_map(|(task, _)| usage.get(task).copied())
            .collect();
        let sample = Sample {
            instances: app.instances,
            cpus: app.cpus,
            mem_mb: app.mem_mb,
            usage: &measured,
            last_scaled_ms: last.get(&app.id).copied(),
        };
        let Some(wanted) = autoscale::decide(&app.policy, &sample, now) else {
            continue;
        };
        let cpu: f64 = measured.iter().map(|u| u.cpus).sum();
        let result =
            service
                .lock()
                .update(&app.id, &json!({ "instances": wanted }), true, false, now);
        match result {
            Ok(_) => {
                info!(app = %app.id, from = app.instances, to = wanted, measured = measured.len(), cpus_used = cpu, "autoscaled");
                last.insert(app.id, now);
                shared.metrics.autoscale_changes.inc();
                changed += 1;
            }
            Err(err) => warn!(app = %app.id, error = ?err, "autoscaling refused"),
        }
    }
    changed
}

/// Runs the autoscaler forever.
pub async fn run(service: Arc<AppService>, shared: Arc<Shared>) {
    let mut last = HashMap::new();
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        if look(&service, &shared, &mut last) > 0 {
            service.changed();
        }
    }
}
