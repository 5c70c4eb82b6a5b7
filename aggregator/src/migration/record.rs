//! The migration's record (pure): the six phases, where each stands, where the masters and
//! agents look, and the rules for starting, validating and rolling back a phase. It is kept
//! as JSON at `PATH/migration` on both clusters, so that every aggregator and agent, started
//! with either address, finds out where the set is now.

use serde::{Deserialize, Serialize};

use crate::zk::tree::AclEntry;

/// What each phase does, in order (ids 1 to 6).
pub const PHASES: [(&str, &str); 6] = [
    (
        "verify-target",
        "Check the target cluster: reachable, ZooKeeper 3.6+ (persistent recursive watches), \
         writable, a different cluster from the source, and its path empty.",
    ),
    (
        "start-sync",
        "Copy the set's subtree to the target and keep both in step, both ways (last writer \
         wins); ephemeral nodes stay where they are. Validated when both trees are alike.",
    ),
    (
        "move-masters",
        "Hand the leadership over: the leader stores what it has, waits for the target to be \
         in step, and every aggregator moves to the target and elects there. The leader keeps \
         its MasterInfo on the source too, for clients that still look there.",
    ),
    (
        "move-agents",
        "Agents that find their leader through ZooKeeper look on the target from now on; \
         connected ones are asked to look again. Validated when all of them found it there.",
    ),
    (
        "drain-source",
        "Wait for what still depends on the source (frameworks' detectors and other clients) \
         to leave. Validated when no session but the migration's own is open on the source.",
    ),
    (
        "cut-over",
        "Stop the sync and fence the source: its state's epoch is advanced and the set's \
         znodes are made read-only, and the leader's MasterInfo leaves the source.",
    ),
];

/// Where one phase stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseState {
    Pending,
    Started,
    Validated,
    RolledBack,
}

/// One phase's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseStatus {
    pub id: u8,
    pub name: String,
    pub state: PhaseState,
    pub started_ms: Option<u64>,
    pub validated_ms: Option<u64>,
    /// What the last start, validation or rollback found.
    pub message: Option<String>,
}

/// A saved ACL, restored when the cut-over is rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedAcl {
    pub path: String,
    pub acl: Vec<AclEntry>,
}

/// The migration of one set from `source` to `target` (both `zk://` addresses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub source: String,
    pub target: String,
    /// Where the aggregators elect and keep the state now.
    pub masters_at: String,
    /// Where agents that find their leader through ZooKeeper look now (unset: where they
    /// were told to).
    pub agents_at: Option<String>,
    /// Whether the sync between the two runs.
    pub sync: bool,
    /// The source's ACLs as they were before the cut-over fenced it.
    pub fenced: Option<Vec<SavedAcl>>,
    pub phases: Vec<PhaseStatus>,
    /// Advanced at every change: of two copies, the higher one is current.
    pub revision: u64,
}

/// Why a phase cannot do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("there is no phase {0}: phases are 1 to 6")]
    NoSuchPhase(u8),
    #[error("phase {0} starts once phase {1} is validated")]
    PreviousNotValidated(u8, u8),
    #[error("phase {0} is already {1}")]
    AlreadyUnderWay(u8, &'static str),
    #[error("phase {0} has not been started")]
    NotStarted(u8),
    #[error("phase {0} is rolled back after phase {1}, which is under way")]
    LaterUnderWay(u8, u8),
    #[error("no migration is under way: start phase 1 with a target")]
    NoMigration,
}

fn state_name(state: PhaseState) -> &'static str {
    match state {
        PhaseState::Pending => "pending",
        PhaseState::Started => "started",
        PhaseState::Validated => "validated",
        PhaseState::RolledBack => "rolled back",
    }
}

fn under_way(state: PhaseState) -> bool {
    matches!(state, PhaseState::Started | PhaseState::Validated)
}

impl Record {
    /// A new migration from `source` to `target`, nothing started.
    pub fn new(source: &str, target: &str) -> Self {
        Self {
            source: source.to_owned(),
            target: target.to_owned(),
            masters_at: source.to_owned(),
            agents_at: None,
            sync: false,
            fenced: None,
            phases: PHASES
                .iter()
                .zip(1u8..)
                .map(|((name, _), id)| PhaseStatus {
                    id,
                    name: (*name).to_owned(),
                    state: PhaseState::Pending,
                    started_ms: None,
                    validated_ms: None,
                    message: None,
                })
                .collect(),
            revision: 0,
        }
    }

    fn phase(&self, id: u8) -> Result<&PhaseStatus, RuleError> {
        self.phases
            .get(usize::from(id).wrapping_sub(1))
            .ok_or(RuleError::NoSuchPhase(id))
    }

    fn phase_mut(&mut self, id: u8) -> &mut PhaseStatus {
        &mut self.phases[usize::from(id) - 1]
    }

    /// The phase under way with the highest id, if any.
    pub fn current(&self) -> Option<&PhaseStatus> {
        self.phases.iter().rev().find(|p| under_way(p.state))
    }

    /// Whether phase `id` may be started now.
    pub fn check_start(&self, id: u8) -> Result<(), RuleError> {
        let phase = self.phase(id)?;
        if under_way(phase.state) {
            return Err(RuleError::AlreadyUnderWay(id, state_name(phase.state)));
        }
        if id > 1 && self.phase(id - 1)?.state != PhaseState::Validated {
            return Err(RuleError::PreviousNotValidated(id, id - 1));
        }
        Ok(())
    }

    /// Whether the last phase is validated: the set runs on the target alone.
    pub fn complete(&self) -> bool {
        self.phases
            .last()
            .is_some_and(|p| p.state == PhaseState::Validated)
    }

    /// Whether phase `id` may be validated now: it is under way and no later one is (a
    /// later phase changes what an earlier one checks).
    pub fn check_validate(&self, id: u8) -> Result<(), RuleError> {
        self.check_rollback(id)
    }

    /// Whether phase `id` may be rolled back now: it is under way and no later one is.
    pub fn check_rollback(&self, id: u8) -> Result<(), RuleError> {
        if !under_way(self.phase(id)?.state) {
            return Err(RuleError::NotStarted(id));
        }
        match self.phases[usize::from(id)..]
            .iter()
            .find(|p| under_way(p.state))
        {
            Some(later) => Err(RuleError::LaterUnderWay(id, later.id)),
            None => Ok(()),
        }
    }

    /// Marks phase `id` started.
    pub fn started(&mut self, id: u8, now_ms: u64, message: String) {
        let phase = self.phase_mut(id);
        phase.state = PhaseState::Started;
        phase.started_ms = Some(now_ms);
        phase.validated_ms = None;
        phase.message = Some(message);
    }

    /// Marks phase `id` validated.
    pub fn validated(&mut self, id: u8, now_ms: u64, message: String) {
        let phase = self.phase_mut(id);
        phase.state = PhaseState::Validated;
        phase.validated_ms = Some(now_ms);
        phase.message = Some(message);
    }

    /// Notes why a validation did not pass (the phase stays started).
    pub fn not_validated(&mut self, id: u8, message: String) {
        let phase = self.phase_mut(id);
        phase.state = PhaseState::Started;
        phase.validated_ms = None;
        phase.message = Some(message);
    }

    /// Marks phase `id` rolled back.
    pub fn rolled_back(&mut self, id: u8, message: String) {
        let phase = self.phase_mut(id);
        phase.state = PhaseState::RolledBack;
        phase.validated_ms = None;
        phase.message = Some(message);
    }

    /// The record as stored.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("records always serialize")
    }

    /// A stored record.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_go_in_order_and_roll_back_from_the_last() {
        let mut record = Record::new("zk://a:1/s", "zk://b:1/s");
        assert_eq!(
            record.check_start(2),
            Err(RuleError::PreviousNotValidated(2, 1))
        );
        assert_eq!(record.check_start(7), Err(RuleError::NoSuchPhase(7)));
        assert_eq!(record.check_start(0), Err(RuleError::NoSuchPhase(0)));
        assert_eq!(record.check_validate(1), Err(RuleError::NotStarted(1)));
        record.check_start(1).expect("phase 1 starts first");
        record.started(1, 10, "checked".into());
        assert_eq!(
            record.check_start(1),
            Err(RuleError::AlreadyUnderWay(1, "started"))
        );
        assert_eq!(
            record.check_start(2),
            Err(RuleError::PreviousNotValidated(2, 1))
        );
        record.validated(1, 11, "ok".into());
        record.started(2, 12, "syncing".into());
        assert_eq!(
            record.check_rollback(1),
            Err(RuleError::LaterUnderWay(1, 2))
        );
        assert_eq!(
            record.check_validate(1),
            Err(RuleError::LaterUnderWay(1, 2))
        );
        assert!(!record.complete());
        record
            .check_rollback(2)
            .expect("the last phase under way rolls back");
        record.rolled_back(2, "stopped".into());
        assert_eq!(record.current().map(|p| p.id), Some(1));
        record
            .check_start(2)
            .expect("a rolled-back phase starts again");
        record.check_rollback(1).expect("then the one before it");
    }

    #[test]
    fn a_record_round_trips_and_names_where_agents_look() {
        let mut record = Record::new("zk://a:1/s", "zk://b:1/s");
        record.agents_at = Some(record.target.clone());
        record.revision = 3;
        let stored = record.to_json();
        assert_eq!(Record::from_json(&stored).expect("reads back"), record);
        // What an agent reads of it (agent/src/transport/discover.rs reads the same field).
        let value: serde_json::Value = serde_json::from_slice(&stored).expect("json");
        assert_eq!(value["agents_at"], "zk://b:1/s");
        assert!(Record::from_json(b"{\"source\": 1}").is_err());
    }
}
