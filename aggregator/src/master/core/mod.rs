//! The master's state machine: frameworks, agents, tasks and the allocator, changed only by
//! the calls below, each given `now`. It does no I/O: events for frameworks and messages for
//! agents go onto their channels, and records onto the store's queue.
//!
//! - [`frameworks`](self::frameworks): subscribe, disconnect, failover, teardown.
//! - [`agents`](self::agents): registration, disconnection, removal.
//! - [`tasks`](self::tasks): accept and launch, status updates, kill, reconcile.

mod agents;
mod frameworks;
mod records;
mod tasks;

use std::collections::{BTreeMap, HashMap, VecDeque};

use proto::exec::{AttributeValue, MasterMessage};
use scheduler::{
    allocator::{Allocator, AllocatorConfig, Offer},
    pools::Allotment,
};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;
use tracing::debug;

pub use agents::Registration;
pub use records::{AgentRecord, FrameworkRecord, TaskRecord};
pub use tasks::FileRefusal;

use super::{events, store::Store};

/// Tunables of the master.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    pub heartbeat_seconds: f64,
    /// How long a disconnected agent's tasks wait for it before they are lost.
    pub agent_timeout_ms: u64,
    pub offer_timeout_ms: Option<u64>,
    /// `refuse_seconds` when a call gives none (Mesos: 5 s).
    pub default_refuse_ms: u64,
}

impl Default for MasterConfig {
    fn default() -> Self {
        Self {
            heartbeat_seconds: 15.0,
            agent_timeout_ms: 75_000,
            offer_timeout_ms: Some(60_000),
            default_refuse_ms: 5_000,
        }
    }
}

/// A framework's event stream.
#[derive(Debug)]
pub struct Stream {
    pub id: String,
    pub events: UnboundedSender<Value>,
}

#[derive(Debug)]
pub struct Framework {
    pub record: FrameworkRecord,
    pub stream: Option<Stream>,
    /// When the stream closed (or the master started, for recovered frameworks).
    pub disconnected_ms: Option<u64>,
}

#[derive(Debug)]
pub struct Agent {
    pub record: AgentRecord,
    pub link: Option<UnboundedSender<MasterMessage>>,
    pub generation: u64,
    pub disconnected_ms: Option<u64>,
    /// Whether its tasks are counted in the allocator (since this master started).
    pub in_allocator: bool,
}

#[derive(Debug)]
pub struct Task {
    pub record: TaskRecord,
    pub resources: Allotment,
    /// The uuid of the latest update, until the framework acknowledges it.
    pub pending_uuid: Option<String>,
    /// A kill asked for (with its grace period), sent again when the agent re-registers.
    pub kill_requested: Option<Option<u64>>,
}

/// Why a call was refused outright (an HTTP error, not a task update).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("framework {0} is not subscribed")]
    NotSubscribed(String),
    #[error("the Mesos-Stream-Id does not match framework {0}'s subscription")]
    WrongStream(String),
    #[error("{0}")]
    Invalid(String),
}

/// Counters for metrics.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub offers_made: u64,
    pub offers_declined: u64,
    pub offers_rescinded: u64,
    pub tasks_launched: u64,
    pub tasks_error: u64,
    pub tasks_dropped: u64,
    pub status_updates: u64,
    pub invalid_calls: u64,
}

/// The state machine.
#[derive(Debug)]
pub struct Core {
    pub config: MasterConfig,
    pub master_id: String,
    pub started_ms: u64,
    pub master_info: Value,
    allocator: Allocator,
    frameworks: BTreeMap<String, Framework>,
    agents: BTreeMap<String, Agent>,
    tasks: HashMap<(String, String), Task>,
    completed: VecDeque<TaskRecord>,
    next_framework: u64,
    store: Option<Store>,
    pub counters: Counters,
}

/// Completed tasks kept for the operator API.
const COMPLETED_KEPT: usize = 1000;

fn key(framework: &str, task: &str) -> (String, String) {
    (framework.to_owned(), task.to_owned())
}

impl Core {
    /// A master with the state read back from the store.
    pub fn new(
        config: MasterConfig,
        master_id: String,
        master_info: Value,
        store: Option<Store>,
        recovered: (Vec<FrameworkRecord>, Vec<AgentRecord>, Vec<TaskRecord>),
        now: u64,
    ) -> Self {
        let allocator = Allocator::new(AllocatorConfig {
            offer_timeout_ms: config.offer_timeout_ms,
            ..AllocatorConfig::default()
        });
        let mut core = Self {
            config,
            master_id,
            started_ms: now,
            master_info,
            allocator,
            frameworks: BTreeMap::new(),
            agents: BTreeMap::new(),
            tasks: HashMap::new(),
            completed: VecDeque::new(),
            next_framework: 0,
            store,
            counters: Counters::default(),
        };
        let (frameworks, agents, tasks) = recovered;
        for record in frameworks.into_iter().filter(|f| !f.removed) {
            core.next_framework = core.next_framework.max(record.sequence + 1);
            core.allocator
                .add_framework(&record.id, &record.role, false);
            core.frameworks.insert(
                record.id.clone(),
                Framework {
                    record,
                    stream: None,
                    disconnected_ms: Some(now),
                },
            );
        }
        for record in agents {
            core.agents.insert(
                record.id.clone(),
                Agent {
                    record,
                    link: None,
                    generation: 0,
                    disconnected_ms: Some(now),
                    in_allocator: false,
                },
            );
        }
        for record in tasks {
            let resources = super::resources::parse(&record.resources).unwrap_or_default();
            core.tasks.insert(
                key(&record.spec.framework_id, &record.spec.task_id),
                Task {
                    record,
                    resources,
                    pending_uuid: None,
                    kill_requested: None,
                },
            );
        }
        core
    }

    fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Whether the framework declared PARTITION_AWARE (lost tasks are then reported with the
    /// finer states: TASK_DROPPED, TASK_GONE, TASK_UNKNOWN).
    fn partition_aware(&self, framework: &str) -> bool {
        self.frameworks
            .get(framework)
            .is_some_and(|f| f.record.partition_aware)
    }

    /// Sends an event to a framework's stream, if it is connected.
    fn emit(&self, framework: &str, event: Value) {
        if let Some(stream) = self
            .frameworks
            .get(framework)
            .and_then(|f| f.stream.as_ref())
        {
            let _ = stream.events.send(event);
        }
    }

    /// Sends a message to an agent, if it is connected; false when it is not.
    fn tell(&self, agent: &str, message: MasterMessage) -> bool {
        match self.agents.get(agent).and_then(|a| a.link.as_ref()) {
            Some(link) => link.send(message).is_ok(),
            None => false,
        }
    }

    pub fn attributes_json(attributes: &BTreeMap<String, AttributeValue>) -> Value {
        Value::Array(
            attributes
                .iter()
                .map(|(name, value)| match value {
                    AttributeValue::Number(n) => {
                        json!({ "name": name, "type": "SCALAR", "scalar": { "value": n } })
                    }
                    AttributeValue::Text(t) => {
                        json!({ "name": name, "type": "TEXT", "text": { "value": t } })
                    }
                })
                .collect(),
        )
    }

    /// Runs an allocation cycle and sends the offers; returns how many were made.
    pub fn allocate(&mut self, now: u64) -> usize {
        let made = self.allocator.allocate(now);
        self.counters.offers_made += made.len() as u64;
        let mut by_framework: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for offer in &made {
            let Some(agent) = self.agents.get(&offer.agent) else {
                continue;
            };
            let role = self
                .frameworks
                .get(&offer.framework)
                .map_or("*", |f| f.record.role.as_str());
            let json = events::offer_json(
                &self.master_id,
                offer,
                &agent.record.hostname,
                role,
                Self::attributes_json(&agent.record.attributes),
            );
            by_framework
                .entry(offer.framework.clone())
                .or_default()
                .push(json);
        }
        for (framework, offers) in by_framework {
            self.emit(&framework, events::offers(offers));
        }
        made.len()
    }

    fn announce_rescinds(&mut self, rescinded: Vec<Offer>) {
        self.counters.offers_rescinded += rescinded.len() as u64;
        for offer in rescinded {
            let id = events::offer_id(&self.master_id, offer.id);
            self.emit(&offer.framework, events::rescind(&id));
        }
    }

    /// Periodic work: offer timeouts, failover and agent timeouts, heartbeats.
    pub fn tick(&mut self, now: u64, heartbeat: bool) {
        let expired = self.allocator.expire(now);
        self.announce_rescinds(expired);
        self.expire_frameworks(now);
        self.expire_agents(now);
        if heartbeat {
            for framework in self.frameworks.values() {
                if let Some(stream) = &framework.stream {
                    let _ = stream.events.send(events::heartbeat());
                }
            }
        }
        debug!(offers = self.allocator.offers().count(), "master tick");
    }

    /// Outstanding offers.
    pub fn outstanding_offers(&self) -> usize {
        self.allocator.offers().count()
    }

    /// Roles and their standing.
    pub fn roles(&self) -> Vec<scheduler::allocator::RoleStanding> {
        self.allocator.roles()
    }
}

#[cfg(test)]
mod tests;
