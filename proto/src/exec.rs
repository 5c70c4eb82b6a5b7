//! Executor messages between the master and an agent, carried as JSON inside
//! [`Control::Executor`](crate::control::Control::Executor) frames on the agent's control
//! stream: registration with resources, attributes and the tasks the agent runs; task
//! launches and kills; status updates and their acknowledgements.
//!
//! Status updates are at-least-once: the agent keeps each task's latest unacknowledged
//! update and sends it again until the framework's acknowledgement comes back through the
//! master (matched by `uuid`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an agent offers: scalars (`cpus`, `mem` in MB, `disk` in MB, `gpus`), ranges
/// (`ports`) and sets, by resource name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceSpec {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scalars: BTreeMap<String, f64>,
    /// Inclusive ranges.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ranges: BTreeMap<String, Vec<(u64, u64)>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sets: BTreeMap<String, Vec<String>>,
}

impl ResourceSpec {
    /// The amount of scalar `name`, zero when absent.
    pub fn scalar(&self, name: &str) -> f64 {
        self.scalars.get(name).copied().unwrap_or(0.0)
    }

    /// Every value of the ranges of `name`, in order (ports of a task, for example).
    pub fn range_values(&self, name: &str) -> Vec<u64> {
        self.ranges
            .get(name)
            .into_iter()
            .flatten()
            .flat_map(|&(begin, end)| begin..=end)
            .collect()
    }
}

/// An agent attribute (`rack:a`, `zone:eu-1`): text or number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttributeValue {
    Number(f64),
    Text(String),
}

/// A command run by `/bin/sh -c` (when `shell`) or executed directly with `arguments`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandSpec {
    pub shell: bool,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub arguments: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// A host port bound to a container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// A host path mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub host_path: String,
    pub container_path: String,
    pub read_only: bool,
}

/// Docker networking of a container task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DockerNetwork {
    Host,
    Bridge,
    None,
}

/// A container task run through the Docker engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DockerSpec {
    pub image: String,
    pub network: DockerNetwork,
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// Overrides the image's command when present (`shell` wraps it in `/bin/sh -c`).
    #[serde(default)]
    pub command: Option<CommandSpec>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub force_pull: bool,
}

/// What runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Command(CommandSpec),
    Docker(DockerSpec),
}

/// What a health check tries (Mesos `HealthCheck.type`). HTTP and TCP checks go to
/// `127.0.0.1:port` in the agent's network namespace: for a Docker task on a bridge, `port`
/// is the host port it was given; a Docker task without a network cannot pass them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// `GET scheme://127.0.0.1:port/path`; a 2xx or 3xx status is healthy.
    Http {
        port: u16,
        path: String,
        scheme: String,
    },
    /// A TCP connection to `127.0.0.1:port` opens.
    Tcp { port: u16 },
    /// The command exits with 0: in the sandbox with the task's environment for a command
    /// task, inside the container for a Docker task.
    Command(CommandSpec),
}

/// How the agent checks a running task's health, with Mesos's semantics: the first check
/// comes `delay_seconds` after the task starts, the next ones `interval_seconds` after the
/// previous one ended; a check taking longer than `timeout_seconds` (0: no limit) failed;
/// failures within `grace_period_seconds` of the start, before any success, are ignored;
/// `consecutive_failures` failures in a row kill the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheckSpec {
    pub kind: HealthCheckKind,
    pub delay_seconds: f64,
    pub interval_seconds: f64,
    pub timeout_seconds: f64,
    pub consecutive_failures: u32,
    pub grace_period_seconds: f64,
}

impl HealthCheckSpec {
    pub const DEFAULT_DELAY_SECONDS: f64 = 15.0;
    pub const DEFAULT_INTERVAL_SECONDS: f64 = 10.0;
    pub const DEFAULT_TIMEOUT_SECONDS: f64 = 20.0;
    pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 3;
    pub const DEFAULT_GRACE_PERIOD_SECONDS: f64 = 10.0;

    /// A check of `kind` with Mesos's default timings.
    pub fn new(kind: HealthCheckKind) -> Self {
        Self {
            kind,
            delay_seconds: Self::DEFAULT_DELAY_SECONDS,
            interval_seconds: Self::DEFAULT_INTERVAL_SECONDS,
            timeout_seconds: Self::DEFAULT_TIMEOUT_SECONDS,
            consecutive_failures: Self::DEFAULT_CONSECUTIVE_FAILURES,
            grace_period_seconds: Self::DEFAULT_GRACE_PERIOD_SECONDS,
        }
    }
}

/// One task to launch on an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub task_id: String,
    pub framework_id: String,
    pub name: String,
    pub kind: TaskKind,
    /// Resources the task was given; `cpus` and `mem` become its limits.
    pub resources: ResourceSpec,
    /// How long a kill waits between SIGTERM and SIGKILL, in milliseconds.
    pub kill_grace_ms: u64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Checked by the agent while the task runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSpec>,
}

/// Task states, as Mesos names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    TaskStaging,
    TaskStarting,
    TaskRunning,
    TaskKilling,
    TaskFinished,
    TaskFailed,
    TaskKilled,
    TaskError,
    TaskLost,
    TaskDropped,
    TaskUnreachable,
    TaskGone,
    TaskUnknown,
}

impl TaskState {
    /// Whether the task will never run again in this state.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::TaskFinished
                | Self::TaskFailed
                | Self::TaskKilled
                | Self::TaskError
                | Self::TaskLost
                | Self::TaskDropped
                | Self::TaskGone
        )
    }

    /// The Mesos name (`TASK_RUNNING`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaskStaging => "TASK_STAGING",
            Self::TaskStarting => "TASK_STARTING",
            Self::TaskRunning => "TASK_RUNNING",
            Self::TaskKilling => "TASK_KILLING",
            Self::TaskFinished => "TASK_FINISHED",
            Self::TaskFailed => "TASK_FAILED",
            Self::TaskKilled => "TASK_KILLED",
            Self::TaskError => "TASK_ERROR",
            Self::TaskLost => "TASK_LOST",
            Self::TaskDropped => "TASK_DROPPED",
            Self::TaskUnreachable => "TASK_UNREACHABLE",
            Self::TaskGone => "TASK_GONE",
            Self::TaskUnknown => "TASK_UNKNOWN",
        }
    }
}

/// A change of a task's state, with Mesos's reason name (`REASON_COMMAND_EXECUTOR_FAILED`)
/// and a message for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub task_id: String,
    pub framework_id: String,
    pub state: TaskState,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// Unique per update; acknowledgements name it.
    pub uuid: String,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
    /// The task's container or host address, when known.
    #[serde(default)]
    pub host_ports: Vec<u16>,
    /// The task's health, in updates sent because of its health check (and in the terminal
    /// update of a task killed for failing it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
}

/// A task the agent runs (or ran and has not had acknowledged), sent on registration so a
/// master that lost track can rebuild it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub spec: TaskSpec,
    pub status: StatusUpdate,
}

/// From an agent to the master.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// Sent after hello: what the agent offers and what it runs.
    Register {
        hostname: String,
        resources: ResourceSpec,
        #[serde(default)]
        attributes: BTreeMap<String, AttributeValue>,
        #[serde(default)]
        tasks: Vec<TaskReport>,
    },
    Status(StatusUpdate),
    /// The answer to [`MasterMessage::ReadFile`].
    FileData {
        request: u64,
        chunk: FileChunk,
    },
}

/// The directory of task cgroups: a task's processes are in
/// `/strata-tasks/<agent scope>/<task id>` (under each cgroup v1 controller, or in v2), and
/// report that path, so the aggregator can tell each task's use.
pub const TASK_CGROUP_ROOT: &str = "strata-tasks";

/// Most bytes one [`MasterMessage::ReadFile`] returns.
pub const MAX_FILE_CHUNK: u64 = 1 << 20;

/// A piece of a file in a task's sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FileChunk {
    /// Where `data` starts.
    pub offset: u64,
    /// The bytes read, as UTF-8 (invalid sequences replaced).
    pub data: String,
    /// Where the next read continues: `offset` plus the bytes read.
    pub next_offset: u64,
    /// The file's size when read.
    pub size: u64,
    /// Why nothing could be read (no such task or file), if so.
    #[serde(default)]
    pub error: Option<String>,
}

/// From the master to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MasterMessage {
    /// Registration accepted. `known_tasks` are the tasks the master has for this agent that
    /// are not terminal; the agent answers for any it does not run with TASK_LOST/GONE.
    Registered {
        known_tasks: Vec<String>,
    },
    Launch(Box<TaskSpec>),
    Kill {
        task_id: String,
        #[serde(default)]
        grace_ms: Option<u64>,
    },
    /// The framework acknowledged this update; stop resending it.
    Acknowledge {
        task_id: String,
        uuid: String,
    },
    /// The framework is gone: kill all its tasks.
    ShutdownFramework {
        framework_id: String,
    },
    /// Read a file of a task's sandbox (`stdout`, `stderr`): `length` bytes (at most
    /// [`MAX_FILE_CHUNK`]) from `offset`, or the last `length` bytes when `offset` is None.
    ReadFile {
        request: u64,
        framework_id: String,
        task_id: String,
        file: String,
        #[serde(default)]
        offset: Option<u64>,
        length: u64,
    },
}

/// Why an executor message could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed executor message")]
pub struct ExecDecodeError(#[from] serde_json::Error);

macro_rules! json_codec {
    ($t:ty) => {
        impl $t {
            /// The JSON form carried in a control frame.
            pub fn to_json(&self) -> String {
                serde_json::to_string(self).expect("executor messages always serialize")
            }

            /// Parses the JSON form.
            pub fn from_json(json: &str) -> Result<Self, ExecDecodeError> {
                Ok(serde_json::from_str(json)?)
            }
        }
    };
}
json_codec!(AgentMessage);
json_codec!(MasterMessage);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_json() {
        let spec = TaskSpec {
            task_id: "t1".into(),
            framework_id: "f1".into(),
            name: "web".into(),
            kind: TaskKind::Docker(DockerSpec {
                image: "busybox".into(),
                network: DockerNetwork::Bridge,
                port_mappings: vec![PortMapping {
                    host_port: 31000,
                    container_port: 80,
                    protocol: "tcp".into(),
                }],
                volumes: vec![],
                command: Some(CommandSpec {
                    shell: true,
                    value: Some("httpd -f".into()),
                    ..CommandSpec::default()
                }),
                env: BTreeMap::new(),
                force_pull: false,
            }),
            resources: ResourceSpec {
                scalars: [("cpus".to_owned(), 0.5)].into(),
                ranges: [("ports".to_owned(), vec![(31000, 31000)])].into(),
                sets: BTreeMap::new(),
            },
            kill_grace_ms: 3000,
            labels: BTreeMap::new(),
            health_check: None,
        };
        let launch = MasterMessage::Launch(Box::new(spec));
        assert_eq!(
            MasterMessage::from_json(&launch.to_json()).expect("decodes"),
            launch
        );
        let register = AgentMessage::Register {
            hostname: "node-1".into(),
            resources: ResourceSpec::default(),
            attributes: [("rack".to_owned(), AttributeValue::Text("a".into()))].into(),
            tasks: vec![],
        };
        assert_eq!(
            AgentMessage::from_json(&register.to_json()).expect("decodes"),
            register
        );
        assert!(AgentMessage::from_json("{\"type\":\"launch\"}").is_err());
    }

    #[test]
    fn health_checks_and_health_round_trip_and_are_optional() {
        let mut check = HealthCheckSpec::new(HealthCheckKind::Command(CommandSpec {
            shell: true,
            value: Some("test -f ready".into()),
            ..CommandSpec::default()
        }));
        check.interval_seconds = 0.25;
        let spec = TaskSpec {
            task_id: "t1".into(),
            framework_id: "f1".into(),
            name: "web".into(),
            kind: TaskKind::Command(CommandSpec {
                shell: true,
                value: Some("sleep 60".into()),
                ..CommandSpec::default()
            }),
            resources: ResourceSpec::default(),
            kill_grace_ms: 3000,
            labels: BTreeMap::new(),
            health_check: Some(check),
        };
        let launch = MasterMessage::Launch(Box::new(spec.clone()));
        let json = launch.to_json();
        assert!(
            json.contains(r#""kind":{"command":{"shell":true"#),
            "{json}"
        );
        assert_eq!(MasterMessage::from_json(&json).expect("decodes"), launch);
        for kind in [
            HealthCheckKind::Http {
                port: 31000,
                path: "/health".into(),
                scheme: "http".into(),
            },
            HealthCheckKind::Tcp { port: 31001 },
        ] {
            let mut spec = spec.clone();
            spec.health_check = Some(HealthCheckSpec::new(kind));
            let launch = MasterMessage::Launch(Box::new(spec));
            assert_eq!(
                MasterMessage::from_json(&launch.to_json()).expect("decodes"),
                launch
            );
        }
        let status = StatusUpdate {
            task_id: "t1".into(),
            framework_id: "f1".into(),
            state: TaskState::TaskRunning,
            reason: Some("REASON_TASK_HEALTH_CHECK_STATUS_UPDATED".into()),
            message: None,
            uuid: "u1".into(),
            timestamp: 1.5,
            host_ports: vec![],
            healthy: Some(false),
        };
        let message = AgentMessage::Status(status);
        let json = message.to_json();
        assert!(json.contains(r#""healthy":false"#), "{json}");
        assert_eq!(AgentMessage::from_json(&json).expect("decodes"), message);
        // Without a check or a health (older agents, older checkpoints), nothing is written
        // and nothing is needed.
        let mut plain = spec;
        plain.health_check = None;
        let json = MasterMessage::Launch(Box::new(plain)).to_json();
        assert!(!json.contains("health_check"), "{json}");
        let old = r#"{"type":"status","task_id":"t","framework_id":"f","state":"TASK_RUNNING","uuid":"u","timestamp":1.0}"#;
        let AgentMessage::Status(old) = AgentMessage::from_json(old).expect("decodes") else {
            panic!("a status")
        };
        assert_eq!(old.healthy, None);
    }

    #[test]
    fn terminal_states_are_the_final_ones() {
        assert!(TaskState::TaskFinished.is_terminal());
        assert!(!TaskState::TaskRunning.is_terminal());
        assert!(!TaskState::TaskUnreachable.is_terminal());
        assert_eq!(TaskState::TaskKilled.as_str(), "TASK_KILLED");
    }
}
