//! Status updates: fresh ones (random uuid, wall-clock timestamp), the Mesos reason names the
//! agent uses, and the pure decision of a task's terminal state from how it ended.

use std::time::{SystemTime, UNIX_EPOCH};

use proto::exec::{StatusUpdate, TaskSpec, TaskState};

pub const REASON_RECONCILIATION: &str = "REASON_RECONCILIATION";
pub const REASON_TASK_INVALID: &str = "REASON_TASK_INVALID";
pub const REASON_CONTAINER_LAUNCH_FAILED: &str = "REASON_CONTAINER_LAUNCH_FAILED";
pub const REASON_CONTAINER_LIMITATION_MEMORY: &str = "REASON_CONTAINER_LIMITATION_MEMORY";
pub const REASON_EXECUTOR_TERMINATED: &str = "REASON_EXECUTOR_TERMINATED";
pub const REASON_COMMAND_EXECUTOR_FAILED: &str = "REASON_COMMAND_EXECUTOR_FAILED";
/// A TASK_RUNNING update sent because the task's health changed.
pub const REASON_TASK_HEALTH_CHECK_STATUS_UPDATED: &str = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED";

/// A state change to report, before it gets its uuid and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub state: TaskState,
    pub reason: Option<&'static str>,
    pub message: Option<String>,
    pub healthy: Option<bool>,
}

impl Change {
    pub fn new(state: TaskState) -> Self {
        Self {
            state,
            reason: None,
            message: None,
            healthy: None,
        }
    }

    pub fn healthy(mut self, healthy: bool) -> Self {
        self.healthy = Some(healthy);
        self
    }

    pub fn reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// The update for `task_id` of `framework_id` with this change.
    pub fn update(
        self,
        task_id: &str,
        framework_id: &str,
        stamp: Stamp,
        host_ports: Vec<u16>,
    ) -> StatusUpdate {
        StatusUpdate {
            task_id: task_id.to_owned(),
            framework_id: framework_id.to_owned(),
            state: self.state,
            reason: self.reason.map(str::to_owned),
            message: self.message,
            uuid: stamp.uuid,
            timestamp: stamp.timestamp,
            host_ports,
            healthy: self.healthy,
        }
    }

    /// The update for the task of `spec`, with its ports.
    pub fn for_task(self, spec: &TaskSpec, stamp: Stamp) -> StatusUpdate {
        let ports = spec
            .resources
            .range_values("ports")
            .into_iter()
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        self.update(&spec.task_id, &spec.framework_id, stamp, ports)
    }
}

/// What makes an update unique: its uuid, and when it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp {
    pub uuid: String,
    pub timestamp: f64,
}

impl Stamp {
    /// A random 128-bit uuid in hex and the current time.
    pub fn now() -> Self {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Self {
            uuid: format!("{:032x}", rand::random::<u128>()),
            timestamp,
        }
    }
}

/// How a task's process or container ended, as far as the agent could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It exited: with `code`, or killed by `signal`; `oom` when the kernel's OOM killer
    /// struck inside its memory limit.
    Exit {
        code: Option<i64>,
        signal: Option<i32>,
        oom: bool,
    },
    /// Nothing is left to say how it ended (it ended while the agent was down).
    Vanished,
    /// It could not be started.
    LaunchFailed(String),
}

/// The terminal change for a task that ended (`what` is `command` or `container`). A task
/// the framework asked to kill is KILLED however it ended.
pub fn terminal(ended: &Ended, killing: bool, what: &str) -> Change {
    use TaskState::{TaskFailed, TaskFinished, TaskKilled};
    if killing {
        return Change::new(TaskKilled).message("killed by the framework");
    }
    match ended {
        Ended::Exit { oom: true, .. } => Change::new(TaskFailed)
            .reason(REASON_CONTAINER_LIMITATION_MEMORY)
            .message(format!(
                "the {what} was killed by the OOM killer (memory limit reached)"
            )),
        Ended::Exit { code: Some(0), .. } => {
            Change::new(TaskFinished).message(format!("{what} exited with status 0"))
        }
        Ended::Exit {
            code: Some(code), ..
        } => Change::new(TaskFailed)
            .reason(REASON_COMMAND_EXECUTOR_FAILED)
            .message(format!("{what} exited with status {code}")),
        Ended::Exit {
            signal: Some(signal),
            ..
        } => Change::new(TaskFailed)
            .reason(REASON_COMMAND_EXECUTOR_FAILED)
            .message(format!("{what} was terminated by signal {signal}")),
        Ended::Exit { .. } => Change::new(TaskFailed)
            .reason(REASON_COMMAND_EXECUTOR_FAILED)
            .message(format!("{what} ended without an exit status")),
        Ended::Vanished => Change::new(TaskFailed)
            .reason(REASON_EXECUTOR_TERMINATED)
            .message(format!(
                "the {what} ended while the agent was down and left no exit status"
            )),
        Ended::LaunchFailed(why) => Change::new(TaskFailed)
            .reason(REASON_CONTAINER_LAUNCH_FAILED)
            .message(why.clone()),
    }
}

/// The health of a running task changed (Mesos's executors send these as TASK_RUNNING).
pub fn health_changed(healthy: bool) -> Change {
    Change::new(TaskState::TaskRunning)
        .reason(REASON_TASK_HEALTH_CHECK_STATUS_UPDATED)
        .healthy(healthy)
}

/// The terminal change of a task the agent killed after `failures` failed health checks in
/// a row. Like Mesos's command and Docker executors, it is TASK_KILLED with `healthy` false
/// and no reason (Mesos has none for this case).
pub fn killed_unhealthy(failures: u32) -> Change {
    let times = if failures == 1 { "time" } else { "times" };
    Change::new(TaskState::TaskKilled)
        .healthy(false)
        .message(format!(
            "killed by the agent: the health check failed {failures} {times} in a row"
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i64) -> Ended {
        Ended::Exit {
            code: Some(code),
            signal: None,
            oom: false,
        }
    }

    #[test]
    fn terminal_states_follow_the_exit() {
        assert_eq!(
            terminal(&exit(0), false, "command").state,
            TaskState::TaskFinished
        );
        let failed = terminal(&exit(3), false, "command");
        assert_eq!(failed.state, TaskState::TaskFailed);
        assert_eq!(
            failed.message.as_deref(),
            Some("command exited with status 3")
        );
        let oom = Ended::Exit {
            code: Some(137),
            signal: None,
            oom: true,
        };
        assert_eq!(
            terminal(&oom, false, "container").reason,
            Some(REASON_CONTAINER_LIMITATION_MEMORY)
        );
        assert_eq!(
            terminal(&exit(143), true, "command").state,
            TaskState::TaskKilled
        );
        let vanished = terminal(&Ended::Vanished, false, "command");
        assert_eq!(vanished.reason, Some(REASON_EXECUTOR_TERMINATED));
        assert!(
            vanished
                .message
                .expect("message")
                .contains("agent was down")
        );
    }

    #[test]
    fn health_changes_carry_the_health() {
        let update = health_changed(false).update("t", "f", Stamp::now(), vec![]);
        assert_eq!(update.state, TaskState::TaskRunning);
        assert_eq!(update.healthy, Some(false));
        assert_eq!(
            update.reason.as_deref(),
            Some(REASON_TASK_HEALTH_CHECK_STATUS_UPDATED)
        );
        let killed = killed_unhealthy(3);
        assert_eq!(
            (killed.state, killed.healthy, killed.reason),
            (TaskState::TaskKilled, Some(false), None)
        );
        assert!(
            killed
                .message
                .expect("message")
                .contains("failed 3 times in a row")
        );
        assert_eq!(Change::new(TaskState::TaskRunning).healthy, None);
    }

    #[test]
    fn stamps_are_unique_hex() {
        let (a, b) = (Stamp::now(), Stamp::now());
        assert_ne!(a.uuid, b.uuid);
        assert_eq!(a.uuid.len(), 32);
        assert!(a.uuid.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(a.timestamp > 1.6e9);
    }
}
