//! Tasks: ACCEPT (validated against the offers; invalid tasks get TASK_ERROR, tasks on bad
//! offers or gone agents TASK_DROPPED or TASK_LOST), status updates from agents and their
//! acknowledgements, KILL, RECONCILE, and DECLINE.

use proto::exec::{MasterMessage, StatusUpdate, TaskState};
use scheduler::allocator::OfferError;
use serde_json::Value;
use tracing::{debug, info};

use super::{CallError, Core, Task, TaskRecord, key};
use crate::master::{events, store::Table, taskinfo};

/// Offer ids named in a call, as the allocator's numbers (unknown ones as `None`).
fn offer_ids(master_id: &str, list: &Value) -> Vec<(String, Option<u64>)> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["value"].as_str())
        .map(|text| (text.to_owned(), events::parse_offer_id(master_id, text)))
        .collect()
}

fn refuse_ms(filters: &Value, default: u64) -> u64 {
    filters["refuse_seconds"]
        .as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(default, |s| (s * 1000.0) as u64)
}

impl Core {
    /// A task update made by the master itself (no uuid, no acknowledgement).
    /// `(framework, task, agent)` name the task; `(state, reason, message)` say what became
    /// of it.
    fn master_update(
        &self,
        (framework, task_id, agent_id): (&str, &str, &str),
        (state, reason, message): (TaskState, &str, String),
        now: u64,
    ) {
        let update = StatusUpdate {
            task_id: task_id.to_owned(),
            framework_id: framework.to_owned(),
            state,
            reason: Some(reason.to_owned()),
            message: Some(message),
            uuid: String::new(),
            timestamp: now as f64 / 1000.0,
            host_ports: Vec::new(),
            healthy: None,
        };
        self.emit(
            framework,
            events::update(events::status_json(&update, agent_id, "SOURCE_MASTER")),
        );
    }

    fn lost_state(&self, framework: &str) -> TaskState {
        if self.partition_aware(framework) {
            TaskState::TaskDropped
        } else {
            TaskState::TaskLost
        }
    }

    /// ACCEPT: launches the tasks of LAUNCH and LAUNCH_GROUP operations on the offers.
    pub fn accept(&mut self, framework: &str, accept: &Value, now: u64) -> Result<(), CallError> {
        let ids = offer_ids(&self.master_id, &accept["offer_ids"]);
        let mut infos: Vec<&Value> = Vec::new();
        for op in accept["operations"].as_array().into_iter().flatten() {
            match op["type"].as_str() {
                Some("LAUNCH") => {
                    infos.extend(op["launch"]["task_infos"].as_array().into_iter().flatten())
                }
                Some("LAUNCH_GROUP") => infos.extend(
                    op["launch_group"]["task_group"]["tasks"]
                        .as_array()
                        .into_iter()
                        .flatten(),
                ),
                other => debug!(framework, operation = ?other, "operation not supported; ignored"),
            }
        }
        let refuse = refuse_ms(&accept["filters"], self.config.default_refuse_ms);
        // Ids that are not this master's become 0, a number no offer has, so the allocator's
        // own check refuses them (and gives back the valid offers named beside them).
        let numbers: Vec<u64> = ids.iter().map(|(_, n)| n.unwrap_or(0)).collect();
        let taken = self
            .allocator
            .take_offers(framework, &numbers)
            .map_err(|err| match err {
                OfferError::Unknown(0) => {
                    let text = ids.iter().find(|(_, n)| n.is_none()).map_or("", |(t, _)| t);
                    format!("offer {text} is unknown")
                }
                err => err.to_string(),
            });
        let (agent_id, offered) = match taken {
            Ok(taken) => taken,
            Err(reason) => {
                let state = self.lost_state(framework);
                for info in &infos {
                    let task_id = taskinfo::value_of(&info["task_id"]).unwrap_or("");
                    let agent = taskinfo::value_of(&info["agent_id"]).unwrap_or("");
                    self.counters.tasks_dropped += 1;
                    self.master_update(
                        (framework, task_id, agent),
                        (
                            state,
                            "REASON_INVALID_OFFERS",
                            format!("invalid offers: {reason}"),
                        ),
                        now,
                    );
                }
                return Ok(());
            }
        };
        let mut left = offered.clone();
        let connected = self.agents.get(&agent_id).is_some_and(|a| a.link.is_some());
        for info in &infos {
            let task_id = taskinfo::value_of(&info["task_id"])
                .unwrap_or("")
                .to_owned();
            let parsed = match taskinfo::parse(info, framework) {
                Ok(parsed) => parsed,
                Err(reason) => {
                    self.counters.tasks_error += 1;
                    self.master_update(
                        (framework, &task_id, &agent_id),
                        (
                            TaskState::TaskError,
                            "REASON_TASK_INVALID",
                            format!("invalid task: {reason}"),
                        ),
                        now,
                    );
                    continue;
                }
            };
            let error = if parsed.agent_id != agent_id {
                Some(format!(
                    "task is for agent {} but the offers are for agent {agent_id}",
                    parsed.agent_id
                ))
            } else if self.tasks.contains_key(&key(framework, &task_id)) {
                Some(format!(
                    "task id {task_id} is already in use by this framework"
                ))
            } else if !left.contains(&parsed.resources) {
                Some("the task uses more resources than the offers have left".to_owned())
            } else {
                None
            };
            if let Some(reason) = error {
                self.counters.tasks_error += 1;
                self.master_update(
                    (framework, &task_id, &agent_id),
                    (TaskState::TaskError, "REASON_TASK_INVALID", reason),
                    now,
                );
                continue;
            }
            if !connected {
                self.counters.tasks_dropped += 1;
                let state = self.lost_state(framework);
                self.master_update(
                    (framework, &task_id, &agent_id),
                    (
                        state,
                        "REASON_AGENT_DISCONNECTED",
                        format!("agent {agent_id} is not connected"),
                    ),
                    now,
                );
                continue;
            }
            left = left.minus(&parsed.resources);
            let update = StatusUpdate {
                task_id: task_id.clone(),
                framework_id: framework.to_owned(),
                state: TaskState::TaskStaging,
                reason: None,
                message: None,
                uuid: String::new(),
                timestamp: now as f64 / 1000.0,
                host_ports: Vec::new(),
                healthy: None,
            };
            let role = self
                .frameworks
                .get(framework)
                .map_or_else(|| "*".to_owned(), |f| f.record.role.clone());
            let record = TaskRecord {
                agent_id: agent_id.clone(),
                state: TaskState::TaskStaging,
                status: events::status_json(&update, &agent_id, "SOURCE_MASTER"),
                resources: parsed.resources_json,
                role,
                spec: parsed.spec,
            };
            if let Some(store) = self.store() {
                store.put(Table::Tasks, &record.key(), &record);
            }
            self.tell(
                &agent_id,
                MasterMessage::Launch(Box::new(record.spec.clone())),
            );
            self.counters.tasks_launched += 1;
            self.tasks.insert(
                key(framework, &task_id),
                Task {
                    record,
                    resources: parsed.resources,
                    pending_uuid: None,
                    kill_requested: None,
                },
            );
        }
        let used = offered.minus(&left);
        self.allocator
            .settle(framework, &agent_id, &offered, &used, refuse, now);
        Ok(())
    }

    /// DECLINE. Unknown offers are ignored, as in Mesos.
    pub fn decline(&mut self, framework: &str, decline: &Value, now: u64) {
        let refuse = refuse_ms(&decline["filters"], self.config.default_refuse_ms);
        for (text, number) in offer_ids(&self.master_id, &decline["offer_ids"]) {
            let declined = number.map(|n| self.allocator.decline(framework, &[n], refuse, now));
            if !matches!(declined, Some(Ok(()))) {
                debug!(
                    framework,
                    offer = text,
                    "declined offer is unknown; ignored"
                );
            } else {
                self.counters.offers_declined += 1;
            }
        }
    }

    /// Records an update (from an agent, or the master's own) and forwards it.
    pub(super) fn apply_status(&mut self, agent_id: &str, update: StatusUpdate, source: &str) {
        self.counters.status_updates += 1;
        let framework = update.framework_id.clone();
        let status = events::status_json(&update, agent_id, source);
        if let Some(task) = self.tasks.get_mut(&key(&framework, &update.task_id)) {
            let was_terminal = task.record.state.is_terminal();
            if !was_terminal {
                task.record.state = update.state;
                task.record.status = status.clone();
            }
            task.pending_uuid = (!update.uuid.is_empty()).then(|| update.uuid.clone());
            if let Some(store) = &self.store {
                store.put(Table::Tasks, &task.record.key(), &task.record);
            }
            let ended = task.record.state.is_terminal();
            if update.state.is_terminal() && !was_terminal {
                info!(framework_id = %framework, task_id = %update.task_id, state = update.state.as_str(), "task ended");
                let resources = task.resources.clone();
                self.allocator.recover(&framework, agent_id, &resources);
            }
            if update.uuid.is_empty() && ended {
                // Nobody acknowledges master-made updates: the task is done with.
                self.complete(&framework, &update.task_id);
            }
        }
        self.emit(&framework, events::update(status));
    }

    /// A status update from an agent.
    pub fn agent_status(&mut self, agent_id: &str, update: StatusUpdate) {
        self.apply_status(agent_id, update, "SOURCE_EXECUTOR");
    }

    fn complete(&mut self, framework: &str, task_id: &str) {
        if let Some(task) = self.tasks.remove(&key(framework, task_id)) {
            if let Some(store) = self.store() {
                store.delete(Table::Tasks, &task.record.key());
            }
            self.completed.push_back(task.record);
            while self.completed.len() > super::COMPLETED_KEPT {
                self.completed.pop_front();
            }
        }
    }

    /// ACKNOWLEDGE: forwarded to the agent, which stops resending; a terminal task is done.
    pub fn acknowledge(&mut self, framework: &str, ack: &Value) -> Result<(), CallError> {
        let task_id = taskinfo::value_of(&ack["task_id"])
            .ok_or_else(|| CallError::Invalid("acknowledge.task_id is missing".into()))?;
        let agent_id = taskinfo::value_of(&ack["agent_id"])
            .ok_or_else(|| CallError::Invalid("acknowledge.agent_id is missing".into()))?;
        let uuid = ack["uuid"]
            .as_str()
            .and_then(events::decode_uuid)
            .ok_or_else(|| {
                CallError::Invalid("acknowledge.uuid is missing or not base64".into())
            })?;
        self.tell(
            agent_id,
            MasterMessage::Acknowledge {
                task_id: task_id.to_owned(),
                uuid: uuid.clone(),
            },
        );
        let k = key(framework, task_id);
        if let Some(task) = self.tasks.get_mut(&k)
            && task.pending_uuid.as_deref() == Some(uuid.as_str())
        {
            task.pending_uuid = None;
            if task.record.state.is_terminal() {
                self.complete(framework, task_id);
            }
        }
        Ok(())
    }

    /// KILL: the agent stops the task (with the call's grace period, else the task's).
    pub fn kill(&mut self, framework: &str, kill: &Value, now: u64) -> Result<(), CallError> {
        let task_id = taskinfo::value_of(&kill["task_id"])
            .ok_or_else(|| CallError::Invalid("kill.task_id is missing".into()))?;
        let grace_ms = kill["kill_policy"]["grace_period"]["nanoseconds"]
            .as_u64()
            .map(|ns| ns / 1_000_000);
        match self.tasks.get_mut(&key(framework, task_id)) {
            Some(task) if !task.record.state.is_terminal() => {
                task.kill_requested = Some(grace_ms);
                let agent = task.record.agent_id.clone();
                if !self.tell(
                    &agent,
                    MasterMessage::Kill {
                        task_id: task_id.to_owned(),
                        grace_ms,
                    },
                ) {
                    debug!(
                        framework,
                        task_id, agent, "kill waits for the agent to come back"
                    );
                }
            }
            Some(_) => {}
            None => {
                let agent = taskinfo::value_of(&kill["agent_id"]).unwrap_or("");
                let state = self.lost_state(framework);
                self.master_update(
                    (framework, task_id, agent),
                    (state, "REASON_RECONCILIATION", "cannot find task".into()),
                    now,
                );
            }
        }
        Ok(())
    }

    /// SHUTDOWN of an executor: tasks run by the command executor have its id.
    pub fn shutdown(
        &mut self,
        framework: &str,
        shutdown: &Value,
        now: u64,
    ) -> Result<(), CallError> {
        let executor = taskinfo::value_of(&shutdown["executor_id"])
            .ok_or_else(|| CallError::Invalid("shutdown.executor_id is missing".into()))?;
        self.kill(
            framework,
            &serde_json::json!({ "task_id": { "value": executor } }),
            now,
        )
    }

    /// RECONCILE: the latest state of the named tasks, or of all the framework's tasks.
    pub fn reconcile(&mut self, framework: &str, reconcile: &Value, now: u64) {
        let named: Vec<String> = reconcile["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| taskinfo::value_of(&t["task_id"]).map(str::to_owned))
            .collect();
        let statuses: Vec<Value> = if named.is_empty() {
            self.tasks
                .values()
                .filter(|t| t.record.spec.framework_id == framework)
                .map(|t| t.record.status.clone())
                .collect()
        } else {
            let mut out = Vec::new();
            for task_id in &named {
                match self.tasks.get(&key(framework, task_id)) {
                    Some(task) => out.push(task.record.status.clone()),
                    None => {
                        let state = if self.partition_aware(framework) {
                            TaskState::TaskUnknown
                        } else {
                            TaskState::TaskLost
                        };
                        self.master_update(
                            (framework, task_id, ""),
                            (
                                state,
                                "REASON_RECONCILIATION",
                                "task is unknown to the master".into(),
                            ),
                            now,
                        );
                    }
                }
            }
            out
        };
        for mut status in statuses {
            if let Some(obj) = status.as_object_mut() {
                obj.remove("uuid");
                obj.insert("reason".into(), "REASON_RECONCILIATION".into());
                obj.insert("source".into(), "SOURCE_MASTER".into());
            }
            self.emit(framework, events::update(status));
        }
    }

    /// Asks the agent of `task_id` (live or recently completed, of any framework) for a
    /// piece of a sandbox file, answered later with `request`.
    pub fn request_file(
        &self,
        task_id: &str,
        request: u64,
        file: &str,
        offset: Option<u64>,
        length: u64,
    ) -> Result<(), FileRefusal> {
        let record = self
            .tasks
            .values()
            .map(|t| &t.record)
            .chain(self.completed.iter())
            .find(|r| r.spec.task_id == task_id)
            .ok_or(FileRefusal::UnknownTask)?;
        let message = MasterMessage::ReadFile {
            request,
            framework_id: record.spec.framework_id.clone(),
            task_id: task_id.to_owned(),
            file: file.to_owned(),
            offset,
            length,
        };
        if self.tell(&record.agent_id, message) {
            Ok(())
        } else {
            Err(FileRefusal::AgentAway(record.agent_id.clone()))
        }
    }

    /// Live and recently completed tasks, for the operator API.
    pub fn tasks(&self) -> (Vec<&TaskRecord>, Vec<&TaskRecord>) {
        (
            self.tasks.values().map(|t| &t.record).collect(),
            self.completed.iter().collect(),
        )
    }
}

/// Why a sandbox file cannot be asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRefusal {
    UnknownTask,
    /// The task's agent is not connected.
    AgentAway(String),
}
