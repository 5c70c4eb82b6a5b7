//! The durable records of frameworks, agents and tasks (what the store keeps).

use std::collections::BTreeMap;

use proto::exec::{AttributeValue, ResourceSpec, TaskSpec, TaskState};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A framework as it subscribed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FrameworkRecord {
    pub id: String,
    /// The `FrameworkInfo` it subscribed with, its id filled in.
    pub info: Value,
    pub role: String,
    pub failover_timeout_ms: u64,
    pub registered_ms: u64,
    /// Order of first subscription, for ids.
    pub sequence: u64,
    /// Whether it declared PARTITION_AWARE (then lost tasks are TASK_DROPPED or
    /// TASK_UNREACHABLE rather than TASK_LOST).
    pub partition_aware: bool,
    pub removed: bool,
}

/// An agent as it registered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub hostname: String,
    pub resources: ResourceSpec,
    pub attributes: BTreeMap<String, AttributeValue>,
    pub registered_ms: u64,
}

/// A task and its latest status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    pub spec: TaskSpec,
    pub agent_id: String,
    pub state: TaskState,
    /// The latest `TaskStatus` JSON.
    pub status: Value,
    /// The task's `Resource` array.
    pub resources: Value,
    pub role: String,
}

impl TaskRecord {
    /// The store key: framework and task id.
    pub fn key(&self) -> String {
        format!("{}/{}", self.spec.framework_id, self.spec.task_id)
    }
}
