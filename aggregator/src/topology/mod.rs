//! The live topology: every agent's reported state, and views built from all of them. Pure:
//! reports and the time come in as arguments; nothing here does I/O.
//!
//! Views are rebuilt from the agents' states at most once per refresh (the server refreshes
//! once a second), so queries read a finished snapshot and never wait on merging.

pub mod agents;
pub mod diff;
pub mod views;

use std::{collections::HashMap, sync::Arc};

use proto::model::Report;

pub use self::{
    agents::{AgentState, ApplyError, Millis},
    views::{Node, View, Views},
};

/// How long a disconnected agent's data stays (marked stale) before it is removed.
pub const DEFAULT_STALE_WINDOW_MS: Millis = 120_000;

/// Every agent's state and the views built from them.
#[derive(Debug)]
pub struct Topology {
    /// Shared with view builds in progress; changed copy-on-write.
    agents: HashMap<String, Arc<AgentState>>,
    views: Arc<Views>,
    dirty: bool,
    stale_window_ms: Millis,
}

impl Default for Topology {
    fn default() -> Self {
        Self::new(DEFAULT_STALE_WINDOW_MS)
    }
}

impl Topology {
    pub fn new(stale_window_ms: Millis) -> Self {
        Self {
            agents: HashMap::new(),
            views: Arc::default(),
            dirty: false,
            stale_window_ms,
        }
    }

    /// An agent connected (or reconnected); returns the connection's generation, which
    /// [`Topology::disconnected`] takes so that the end of an older connection does not mark a
    /// reconnected agent stale.
    pub fn connected(&mut self, agent_id: &str) -> u64 {
        self.dirty = true;
        let agent = Arc::make_mut(
            self.agents
                .entry(agent_id.to_owned())
                .or_insert_with(|| Arc::new(AgentState::new(agent_id))),
        );
        agent.connected();
        agent.generation
    }

    /// An agent's connection of `generation` ended; its data is kept, marked stale, for the
    /// stale window.
    pub fn disconnected(&mut self, agent_id: &str, generation: u64, now: Millis) {
        if let Some(agent) = self.agents.get_mut(agent_id)
            && agent.generation == generation
        {
            Arc::make_mut(agent).disconnected(now);
            self.dirty = true;
        }
    }

    /// Applies a report from an agent whose identity was already checked.
    pub fn apply(&mut self, report: Report, now: Millis) -> Result<(), ApplyError> {
        let agent = self
            .agents
            .entry(report.agent_id.clone())
            .or_insert_with(|| Arc::new(AgentState::new(&report.agent_id)));
        Arc::make_mut(agent).apply(report, now)?;
        self.dirty = true;
        Ok(())
    }

    /// Removes agents disconnected for longer than the stale window.
    pub fn expire(&mut self, now: Millis) {
        let window = self.stale_window_ms;
        let before = self.agents.len();
        self.agents.retain(|_, a| {
            a.disconnected_at_ms
                .is_none_or(|at| now.saturating_sub(at) <= window)
        });
        self.dirty |= self.agents.len() != before;
    }

    /// When anything changed since the last call: every agent's state, to build views from
    /// without holding the topology (agents keep reporting meanwhile, copy-on-write).
    pub fn changed(&mut self) -> Option<Vec<Arc<AgentState>>> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty.then(|| self.agents.values().cloned().collect())
    }

    /// Every agent's state, whether or not anything changed.
    pub fn all(&mut self) -> Vec<Arc<AgentState>> {
        self.dirty = false;
        self.agents.values().cloned().collect()
    }

    /// Rebuilds every view if anything changed; returns the current ones.
    pub fn refresh(&mut self) -> Arc<Views> {
        if let Some(agents) = self.changed() {
            self.views = Arc::new(build(&agents, true));
        }
        self.views.clone()
    }

    pub fn agents(&self) -> impl Iterator<Item = &AgentState> {
        self.agents.values().map(AsRef::as_ref)
    }

    pub fn agent(&self, agent_id: &str) -> Option<&AgentState> {
        self.agents.get(agent_id).map(AsRef::as_ref)
    }
}

/// Builds the views from agents' states (the process views only with `process_views`).
pub fn build(agents: &[Arc<AgentState>], process_views: bool) -> Views {
    views::build(agents.iter().map(AsRef::as_ref), process_views)
}

#[cfg(test)]
mod tests;
