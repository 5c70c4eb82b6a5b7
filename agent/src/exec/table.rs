//! The task table, pure bookkeeping: each task's spec, runtime handle, latest status and
//! whether that status was acknowledged. It decides which updates are retained (the latest
//! unacknowledged one per task; a newer update replaces an older one, and a terminal update
//! is never replaced), what an acknowledgement does, and what registration reports. No I/O.

use std::collections::BTreeMap;

use proto::exec::{StatusUpdate, TaskReport, TaskSpec};
use serde::{Deserialize, Serialize};

use super::status::{Change, Stamp};

/// What runs a task, enough to find it again after an agent restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Runtime {
    /// Not started yet (or its start was never recorded).
    Pending,
    /// The wrapper shell of a command task: its pid and its start time in clock ticks after
    /// boot (field 22 of `/proc/<pid>/stat`), which tells it from a later process with the
    /// same pid.
    Process { pid: i32, start_time: u64 },
    /// A Docker container, by id.
    Container { id: String },
}

/// Everything the agent keeps about one task; also its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub spec: TaskSpec,
    pub runtime: Runtime,
    /// The latest update.
    pub status: StatusUpdate,
    /// Whether `status` was acknowledged.
    pub acked: bool,
    /// Whether the task is being killed (the framework asked, or it failed its health check).
    pub killing: bool,
    /// When the agent killed the task for failing its health check: how many checks in a
    /// row it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed_unhealthy: Option<u32>,
}

impl TaskRecord {
    pub fn is_terminal(&self) -> bool {
        self.status.state.is_terminal()
    }
}

/// What an acknowledgement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acked {
    /// No such task, or the uuid is not its latest update (an older, collapsed one).
    Ignored,
    /// The latest update is acknowledged; the task goes on.
    Acked,
    /// The terminal update is acknowledged: the task is forgotten (delete its checkpoint).
    Forgotten,
}

/// The agent's tasks by id.
#[derive(Debug, Default)]
pub struct Table {
    tasks: BTreeMap<String, TaskRecord>,
}

impl Table {
    pub fn get(&self, task_id: &str) -> Option<&TaskRecord> {
        self.tasks.get(task_id)
    }

    pub fn get_mut(&mut self, task_id: &str) -> Option<&mut TaskRecord> {
        self.tasks.get_mut(task_id)
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Whether `task_id` is known and not terminal.
    pub fn is_live(&self, task_id: &str) -> bool {
        self.tasks.get(task_id).is_some_and(|r| !r.is_terminal())
    }

    /// Adds (or replaces) a record as it is.
    pub fn insert(&mut self, record: TaskRecord) {
        self.tasks.insert(record.spec.task_id.clone(), record);
    }

    /// A new task in `change`'s state; replaces a terminal record of the same id.
    pub fn launch(&mut self, spec: TaskSpec, change: Change, stamp: Stamp) -> &TaskRecord {
        let status = change.for_task(&spec, stamp);
        let id = spec.task_id.clone();
        self.tasks.insert(
            id.clone(),
            TaskRecord {
                spec,
                runtime: Runtime::Pending,
                status,
                acked: false,
                killing: false,
                killed_unhealthy: None,
            },
        );
        &self.tasks[&id]
    }

    /// Records `change` as the task's latest, unacknowledged update and returns it; `None`
    /// when the task is unknown or already terminal (a terminal update is final).
    pub fn transition(
        &mut self,
        task_id: &str,
        change: Change,
        stamp: Stamp,
    ) -> Option<StatusUpdate> {
        let record = self.tasks.get_mut(task_id)?;
        if record.is_terminal() {
            return None;
        }
        record.status = change.for_task(&record.spec, stamp);
        record.acked = false;
        Some(record.status.clone())
    }

    /// Applies the acknowledgement of update `uuid` of `task_id`.
    pub fn acknowledge(&mut self, task_id: &str, uuid: &str) -> Acked {
        let Some(record) = self.tasks.get_mut(task_id) else {
            return Acked::Ignored;
        };
        if record.status.uuid != uuid {
            return Acked::Ignored;
        }
        record.acked = true;
        if record.is_terminal() {
            self.tasks.remove(task_id);
            return Acked::Forgotten;
        }
        Acked::Acked
    }

    /// Removes a record (a terminal one acknowledged before the agent restarted).
    pub fn remove(&mut self, task_id: &str) -> Option<TaskRecord> {
        self.tasks.remove(task_id)
    }

    /// The updates to send again: each task's latest, when unacknowledged.
    pub fn unacked(&self) -> Vec<StatusUpdate> {
        let pending = self.tasks.values().filter(|r| !r.acked);
        pending.map(|r| r.status.clone()).collect()
    }

    /// What registration reports: every task still known (terminal and acknowledged ones
    /// are forgotten), with its latest status.
    pub fn reports(&self) -> Vec<TaskReport> {
        let report = |r: &TaskRecord| TaskReport {
            spec: r.spec.clone(),
            status: r.status.clone(),
        };
        self.tasks.values().map(report).collect()
    }

    /// Ids of the live tasks of `framework_id`.
    pub fn live_of_framework(&self, framework_id: &str) -> Vec<String> {
        let of = |r: &&TaskRecord| r.spec.framework_id == framework_id && !r.is_terminal();
        self.tasks
            .values()
            .filter(of)
            .map(|r| r.spec.task_id.clone())
            .collect()
    }

    /// Those of `ids` this table does not know at all.
    pub fn unknown<'a>(&self, ids: &'a [String]) -> Vec<&'a str> {
        let unknown = ids
            .iter()
            .filter(|id| !self.tasks.contains_key(id.as_str()));
        unknown.map(String::as_str).collect()
    }

    pub fn records(&self) -> impl Iterator<Item = &TaskRecord> {
        self.tasks.values()
    }
}

#[cfg(test)]
mod tests {
    use proto::exec::{CommandSpec, ResourceSpec, TaskKind, TaskState};

    use super::*;

    fn spec(id: &str, framework: &str) -> TaskSpec {
        TaskSpec {
            task_id: id.into(),
            framework_id: framework.into(),
            name: id.into(),
            kind: TaskKind::Command(CommandSpec {
                shell: true,
                value: Some("true".into()),
                ..CommandSpec::default()
            }),
            resources: ResourceSpec {
                ranges: [("ports".to_owned(), vec![(31000, 31001)])].into(),
                ..ResourceSpec::default()
            },
            kill_grace_ms: 1000,
            labels: BTreeMap::new(),
            health_check: None,
        }
    }

    fn stamp(uuid: &str) -> Stamp {
        Stamp {
            uuid: uuid.into(),
            timestamp: 1.0,
        }
    }

    #[test]
    fn only_the_latest_update_is_retained_until_acknowledged() {
        let mut table = Table::default();
        let starting = Change::new(TaskState::TaskStarting);
        let launched = table.launch(spec("t1", "f1"), starting, stamp("u1"));
        assert_eq!(launched.status.host_ports, vec![31000, 31001]);
        let running = Change::new(TaskState::TaskRunning);
        let update = table.transition("t1", running, stamp("u2")).expect("live");
        assert_eq!(update.state, TaskState::TaskRunning);
        let unacked = table.unacked();
        assert_eq!(unacked.len(), 1);
        assert_eq!(unacked[0].uuid, "u2");
        // The ack of the collapsed STARTING update changes nothing.
        assert_eq!(table.acknowledge("t1", "u1"), Acked::Ignored);
        assert_eq!(table.unacked().len(), 1);
        assert_eq!(table.acknowledge("t1", "u2"), Acked::Acked);
        assert!(table.unacked().is_empty());
        assert_eq!(table.reports().len(), 1);
        assert_eq!(table.acknowledge("nope", "u2"), Acked::Ignored);
    }

    #[test]
    fn terminal_updates_are_final_and_forgotten_once_acknowledged() {
        let mut table = Table::default();
        table.launch(
            spec("t1", "f1"),
            Change::new(TaskState::TaskRunning),
            stamp("u1"),
        );
        let finished = Change::new(TaskState::TaskFinished);
        table.transition("t1", finished, stamp("u2")).expect("live");
        assert!(!table.is_live("t1"));
        let late = table.transition("t1", Change::new(TaskState::TaskFailed), stamp("u3"));
        assert_eq!(late, None, "a terminal update is never replaced");
        assert_eq!(table.unacked()[0].state, TaskState::TaskFinished);
        assert_eq!(table.acknowledge("t1", "u2"), Acked::Forgotten);
        assert!(table.is_empty());
        assert!(table.reports().is_empty());
    }

    #[test]
    fn frameworks_and_unknown_tasks() {
        let mut table = Table::default();
        table.launch(
            spec("a", "f1"),
            Change::new(TaskState::TaskRunning),
            stamp("1"),
        );
        table.launch(
            spec("b", "f2"),
            Change::new(TaskState::TaskRunning),
            stamp("2"),
        );
        table.launch(
            spec("c", "f1"),
            Change::new(TaskState::TaskFinished),
            stamp("3"),
        );
        assert_eq!(table.live_of_framework("f1"), vec!["a".to_owned()]);
        let known = vec!["a".to_owned(), "x".to_owned(), "c".to_owned()];
        assert_eq!(table.unknown(&known), vec!["x"]);
        assert_eq!(table.len(), 3);
    }
}
