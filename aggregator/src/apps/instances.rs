//! What the app service knows of each app: its definition and past versions, its instances
//! (one Mesos task each) with their state and health, its launch backoff, and its offer
//! statistics for the queue.

use std::collections::BTreeMap;

use super::definition::AppDefinition;

/// The label that makes successfully finished instances stay ended (`on-failure`); without
/// it every ended instance is replaced, as in Marathon.
pub const LABEL_RESTART: &str = "strata.restart";

/// One running (or starting) copy of an app.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub task_id: String,
    pub agent_id: String,
    pub host: String,
    pub ports: Vec<u16>,
    /// The configuration version it runs.
    pub version: String,
    /// The Mesos state name (`TASK_RUNNING`).
    pub state: String,
    /// The agent's latest health-check verdict; None before the first.
    pub healthy: Option<bool>,
    pub staged_at_ms: u64,
    pub started_at_ms: Option<u64>,
    /// A kill was sent; it no longer counts toward the app's instances.
    pub killing: bool,
}

impl Instance {
    /// Running, and healthy when the app has health checks.
    pub fn ready(&self, checked: bool) -> bool {
        self.state == "TASK_RUNNING" && !self.killing && (!checked || self.healthy == Some(true))
    }
}

/// Why offers were not used for an app, counted as Marathon's queue shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OfferStats {
    pub processed: u64,
    pub unused: u64,
    pub last_unused_ms: Option<u64>,
    pub last_used_ms: Option<u64>,
    /// Rejections by Marathon's reason name (`InsufficientCpus`), over the last offers.
    pub rejected: BTreeMap<&'static str, u64>,
}

/// An app and its instances.
#[derive(Debug, Clone)]
pub struct App {
    pub definition: AppDefinition,
    /// Every version kept, oldest first (at most [`VERSIONS_KEPT`]).
    pub versions: BTreeMap<String, AppDefinition>,
    /// The version of the last change that needed new tasks; instances of other versions
    /// are replaced.
    pub config_version: String,
    pub last_scaling: String,
    pub instances: BTreeMap<String, Instance>,
    /// No launch before this (backoff after failures).
    pub delay_until_ms: u64,
    pub failures: u32,
    pub last_failure: Option<serde_json::Value>,
    /// The deployment changing this app, if one runs.
    pub deployment: Option<String>,
    pub offers: OfferStats,
    /// Deleted: every instance is killed, then the app goes.
    pub deleting: bool,
    /// Instances that finished successfully under `on-failure` restarts: not replaced
    /// until the configuration changes.
    pub completed: u32,
    /// When a `deployment_waiting` event last said why this app's instances wait.
    pub waiting_reported_ms: u64,
}

/// Versions kept per app.
pub const VERSIONS_KEPT: usize = 50;

impl App {
    pub fn new(definition: AppDefinition, version: &str) -> Self {
        let mut versions = BTreeMap::new();
        versions.insert(version.to_owned(), definition.clone());
        Self {
            definition,
            versions,
            config_version: version.to_owned(),
            last_scaling: version.to_owned(),
            instances: BTreeMap::new(),
            delay_until_ms: 0,
            failures: 0,
            last_failure: None,
            deployment: None,
            offers: OfferStats::default(),
            deleting: false,
            completed: 0,
            waiting_reported_ms: 0,
        }
    }

    /// Instances that count: launched or running, not being killed.
    pub fn active(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values().filter(|i| !i.killing)
    }

    /// How many instances should run: the definition's count, less those that completed
    /// under an `on-failure` restart condition.
    pub fn target(&self) -> u32 {
        self.definition.instances.saturating_sub(self.completed)
    }

    /// Whether an instance that exits successfully stays ended (label `strata.restart`).
    pub fn restarts_on_failure_only(&self) -> bool {
        self.definition
            .labels
            .get(LABEL_RESTART)
            .map(String::as_str)
            == Some("on-failure")
    }

    pub fn checked(&self) -> bool {
        !self.definition.health_checks.is_empty()
    }

    /// Records a new definition under `version`; a change that needs new tasks makes it the
    /// configuration version.
    pub fn change(&mut self, definition: AppDefinition, version: &str) {
        if self.definition.needs_restart(&definition) {
            self.config_version = version.to_owned();
            self.delay_until_ms = 0;
            self.failures = 0;
            self.completed = 0;
        } else {
            self.last_scaling = version.to_owned();
        }
        self.definition = definition;
        self.versions
            .insert(version.to_owned(), self.definition.clone());
        while self.versions.len() > VERSIONS_KEPT {
            self.versions.pop_first();
        }
    }

    /// After a failed task: the next launch waits `backoffSeconds * backoffFactor^(n-1)`,
    /// at most `maxLaunchDelaySeconds`.
    pub fn back_off(&mut self, now: u64) {
        self.failures += 1;
        let d = &self.definition;
        let seconds = (d.backoff_seconds * d.backoff_factor.powi(self.failures as i32 - 1))
            .min(d.max_launch_delay_seconds);
        self.delay_until_ms = now + (seconds * 1000.0) as u64;
    }
}
