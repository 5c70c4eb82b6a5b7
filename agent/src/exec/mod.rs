//! The agent as a Mesos-style executor: it registers with the master on every connection
//! (resources, attributes, the tasks it knows), launches and kills command and Docker tasks,
//! and reports their status updates at least once.
//!
//! [`Executor`] is the handle the link uses: [`Executor::session`] at every (re)connection
//! gives the `Register` message and the stream of outgoing messages for that connection;
//! [`Executor::deliver`] passes a master message in. Behind it an actor task owns the task
//! table ([`table`], pure), checkpoints every change ([`checkpoint`]) and drives the shells:
//! [`process`] (command tasks under a wrapper that records the exit code, in [`cgroups`]) and
//! [`docker`]. Tasks with a health check are checked next to them ([`health`], [`probe`]):
//! changes of health are TASK_RUNNING updates, and too many failures in a row kill the task.
//! Tasks never depend on the link: they run while it is down, and their latest
//! unacknowledged updates wait in the table, resent every 10 s and after each registration.
//! A restarted agent re-adopts its tasks from the checkpoints ([`recovery`]).

mod actor;
pub mod cgroups;
pub mod checkpoint;
pub mod docker;
pub mod files;
pub mod health;
mod monitor;
pub mod naming;
pub mod probe;
pub mod process;
mod recovery;
pub mod resources;
pub mod sandbox;
pub mod status;
pub mod table;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use proto::exec::{AgentMessage, AttributeValue, MasterMessage, ResourceSpec};
use tokio::sync::{mpsc, oneshot};

/// How the executor runs.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// Where checkpoints go (`<state-dir>/tasks`); also what scopes cgroup and container
    /// names to this agent.
    pub state_dir: PathBuf,
    /// Where sandboxes go (`<work-dir>/sandboxes/<framework>/<task>`).
    pub work_dir: PathBuf,
    pub hostname: String,
    /// What the agent offers.
    pub resources: ResourceSpec,
    pub attributes: BTreeMap<String, AttributeValue>,
    /// The cgroup file system, normally `/sys/fs/cgroup`.
    pub cgroup_mount: PathBuf,
}

impl ExecConfig {
    /// The configuration of an agent keeping its state in `state_dir`: resources detected on
    /// this host (work dir's file system for disk), each one named in `overrides` replaced.
    pub fn detect(
        state_dir: &Path,
        work_dir: Option<PathBuf>,
        overrides: &ResourceSpec,
        attributes: BTreeMap<String, AttributeValue>,
    ) -> Self {
        let work_dir = work_dir.unwrap_or_else(|| state_dir.join("work"));
        if let Err(err) = std::fs::create_dir_all(&work_dir) {
            tracing::warn!(work_dir = %work_dir.display(), error = %err, "cannot create the work directory");
        }
        let capacity = resources::host_capacity(&work_dir);
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        Self {
            state_dir: state_dir.to_path_buf(),
            work_dir,
            hostname: hostname.trim().to_owned(),
            resources: resources::merged(resources::detected(capacity), overrides),
            attributes,
            cgroup_mount: PathBuf::from("/sys/fs/cgroup"),
        }
    }
}

/// One connection's view of the executor.
#[derive(Debug)]
pub struct Session {
    /// Send first, right after hello.
    pub register: AgentMessage,
    /// Status updates to send while this connection lasts. Updates the link cannot take stay
    /// retained by the executor and are sent again later.
    pub outgoing: mpsc::Receiver<AgentMessage>,
}

#[derive(Debug)]
enum Input {
    Session(oneshot::Sender<Session>),
    Master(MasterMessage),
    Detach(oneshot::Sender<()>),
}

/// The handle to the executor actor; cheap to clone. The actor stops when every handle is
/// dropped (tasks keep running).
#[derive(Debug, Clone)]
pub struct Executor {
    inputs: mpsc::Sender<Input>,
}

impl Executor {
    /// Starts the actor: it recovers the tasks of earlier runs from the checkpoints, then
    /// serves. Needs a tokio runtime.
    pub fn start(config: ExecConfig) -> Self {
        let (inputs, receiver) = mpsc::channel(256);
        tokio::spawn(actor::run(config, receiver));
        Self { inputs }
    }

    /// A new connection: the registration to send and the outgoing messages. `None` when the
    /// actor is gone.
    pub async fn session(&self) -> Option<Session> {
        let (reply, answer) = oneshot::channel();
        self.inputs.send(Input::Session(reply)).await.ok()?;
        answer.await.ok()
    }

    /// Passes a message from the master in.
    pub async fn deliver(&self, message: MasterMessage) {
        let _ = self.inputs.send(Input::Master(message)).await;
    }

    /// Stops the actor and its monitors without touching the tasks (as if the agent died),
    /// and waits until it has stopped.
    pub async fn detach(self) {
        let (reply, done) = oneshot::channel();
        if self.inputs.send(Input::Detach(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
}
