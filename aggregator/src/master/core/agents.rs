//! Agents: registration over the QUIC control stream (with the tasks they run, so a master
//! that lost track rebuilds them), disconnection, and removal after the agent timeout, when
//! their unfinished tasks are lost.

use std::collections::{BTreeMap, HashSet};

use proto::exec::{
    AttributeValue, MasterMessage, ResourceSpec, StatusUpdate, TaskReport, TaskState,
};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

use super::{Agent, AgentRecord, Core, Task, TaskRecord, key};
use crate::master::{events, resources, store::Table};

/// What an agent registers with.
#[derive(Debug)]
pub struct Registration {
    pub agent_id: String,
    pub hostname: String,
    pub resources: ResourceSpec,
    pub attributes: BTreeMap<String, AttributeValue>,
    pub tasks: Vec<TaskReport>,
}

impl Core {
    /// An agent (re-)registers on connection `generation`.
    pub fn agent_registered(
        &mut self,
        registration: Registration,
        link: UnboundedSender<MasterMessage>,
        generation: u64,
        now: u64,
    ) {
        let Registration {
            agent_id,
            hostname,
            resources: offered,
            attributes,
            tasks,
        } = registration;
        let record = AgentRecord {
            id: agent_id.clone(),
            hostname,
            resources: offered.clone(),
            attributes,
            registered_ms: self
                .agents
                .get(&agent_id)
                .map_or(now, |a| a.record.registered_ms),
        };
        if let Some(store) = self.store() {
            store.put(Table::Agents, &agent_id, &record);
        }
        let in_allocator = self.agents.get(&agent_id).is_some_and(|a| a.in_allocator);
        self.agents.insert(
            agent_id.clone(),
            Agent {
                record,
                link: Some(link),
                generation,
                disconnected_ms: None,
                in_allocator: true,
            },
        );
        self.allocator
            .add_agent(&agent_id, resources::from_spec(&offered));
        // Tasks the agent runs that the master does not know (its state was lost).
        let mut adopted = HashSet::new();
        for report in tasks {
            let k = key(&report.spec.framework_id, &report.spec.task_id);
            if self.tasks.contains_key(&k) {
                continue;
            }
            let allotment = resources::from_spec(&report.spec.resources);
            let role = self
                .frameworks
                .get(&report.spec.framework_id)
                .map_or_else(|| "*".to_owned(), |f| f.record.role.clone());
            let status = events::status_json(&report.status, &agent_id, "SOURCE_EXECUTOR");
            let record = TaskRecord {
                agent_id: agent_id.clone(),
                state: report.status.state,
                status,
                resources: resources::to_json(&allotment, None),
                role,
                spec: report.spec,
            };
            if let Some(store) = self.store() {
                store.put(Table::Tasks, &record.key(), &record);
            }
            warn!(agent_id, task_id = %record.spec.task_id, "agent runs a task the master did not know; adopted");
            self.tasks.insert(
                k.clone(),
                Task {
                    record,
                    resources: allotment,
                    pending_uuid: None,
                    kill_requested: None,
                },
            );
            adopted.insert(k);
        }
        // One pass over the agent's live tasks: what it must be told it runs, kills it still
        // owes, and what the allocator must count (every task when the agent is new to it
        // since this master started, else only the tasks just adopted).
        let mut restores = Vec::new();
        let mut known_tasks = Vec::new();
        let mut kills = Vec::new();
        for (k, t) in &self.tasks {
            if t.record.agent_id != agent_id || t.record.state.is_terminal() {
                continue;
            }
            if !in_allocator || adopted.contains(k) {
                restores.push((
                    t.record.spec.framework_id.clone(),
                    t.record.role.clone(),
                    t.resources.clone(),
                ));
            }
            known_tasks.push(t.record.spec.task_id.clone());
            if let Some(grace_ms) = t.kill_requested {
                kills.push(MasterMessage::Kill {
                    task_id: t.record.spec.task_id.clone(),
                    grace_ms,
                });
            }
        }
        for (framework, role, allotment) in restores {
            self.allocator
                .restore(&framework, &role, &agent_id, &allotment);
        }
        info!(agent_id, tasks = known_tasks.len(), "agent registered");
        self.tell(&agent_id, MasterMessage::Registered { known_tasks });
        for kill in kills {
            self.tell(&agent_id, kill);
        }
    }

    /// The agent's connection `generation` ended.
    pub fn agent_disconnected(&mut self, agent_id: &str, generation: u64, now: u64) {
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        if agent.generation != generation || agent.link.is_none() {
            return;
        }
        agent.link = None;
        agent.disconnected_ms = Some(now);
        let rescinded = self.allocator.set_agent_active(agent_id, false);
        self.announce_rescinds(rescinded);
        info!(
            agent_id,
            "agent disconnected; its tasks wait for it to come back"
        );
    }

    /// Removes agents disconnected longer than the agent timeout; their tasks are lost.
    pub(super) fn expire_agents(&mut self, now: u64) {
        let due: Vec<String> = self
            .agents
            .values()
            .filter(|a| {
                a.disconnected_ms
                    .is_some_and(|since| now.saturating_sub(since) >= self.config.agent_timeout_ms)
            })
            .map(|a| a.record.id.clone())
            .collect();
        for agent_id in due {
            warn!(
                agent_id,
                "agent did not come back in time: its tasks are lost"
            );
            let lost: Vec<(String, String)> = self
                .tasks
                .iter()
                .filter(|(_, t)| t.record.agent_id == agent_id && !t.record.state.is_terminal())
                .map(|(k, _)| k.clone())
                .collect();
            for (framework, task) in lost {
                let state = if self.partition_aware(&framework) {
                    TaskState::TaskGone
                } else {
                    TaskState::TaskLost
                };
                let update = StatusUpdate {
                    task_id: task.clone(),
                    framework_id: framework.clone(),
                    state,
                    reason: Some("REASON_AGENT_REMOVED".into()),
                    message: Some(format!(
                        "agent {agent_id} did not re-register within {} s",
                        self.config.agent_timeout_ms / 1000
                    )),
                    uuid: String::new(),
                    timestamp: now as f64 / 1000.0,
                    host_ports: Vec::new(),
                    healthy: None,
                };
                self.apply_status(&agent_id, update, "SOURCE_MASTER");
            }
            let frameworks: Vec<String> = self
                .frameworks
                .values()
                .filter(|f| f.stream.is_some())
                .map(|f| f.record.id.clone())
                .collect();
            for framework in frameworks {
                self.emit(&framework, events::failure(&agent_id));
            }
            let rescinded = self.allocator.remove_agent(&agent_id);
            self.announce_rescinds(rescinded);
            self.agents.remove(&agent_id);
            if let Some(store) = self.store() {
                store.delete(Table::Agents, &agent_id);
            }
        }
    }

    /// Agents, for the operator API.
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// What an agent has neither offered nor in use.
    pub fn agent_available(&self, agent: &str) -> Option<&scheduler::pools::Allotment> {
        self.allocator.available(agent)
    }
}
