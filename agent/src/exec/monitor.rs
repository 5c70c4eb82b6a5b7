//! The tasks that watch running tasks and report how they end, and the ones that kill them.
//! They (and the health check loops of [`health`](super::health)) never touch the table:
//! they send [`Event`]s to the actor, the only writer of the table and the checkpoints.

use std::{path::PathBuf, time::Duration};

use tokio::{process::Child, sync::mpsc::UnboundedSender};
use tracing::warn;

use super::{
    cgroups::TaskCgroup,
    docker::{self, ContainerTask},
    process,
    status::Ended,
    table::Runtime,
};

/// Time to wait for a Docker engine when re-adopting containers after a restart.
const ENGINE_PATIENCE: Duration = Duration::from_secs(60);

/// What a task's health check loop decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The task's health changed (or was found for the first time).
    Changed(bool),
    /// The task failed this many checks in a row, enough to kill it.
    Failed(u32),
}

/// What a monitor saw.
#[derive(Debug)]
pub enum EventKind {
    /// The task runs, here.
    Started(Runtime),
    Ended(Ended),
    Health(Health),
}

#[derive(Debug)]
pub struct Event {
    pub task_id: String,
    pub kind: EventKind,
}

/// Sends events about one task.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub task_id: String,
    pub events: UnboundedSender<Event>,
}

impl Reporter {
    fn send(&self, kind: EventKind) {
        let _ = self.events.send(Event {
            task_id: self.task_id.clone(),
            kind,
        });
    }

    fn ended(&self, ended: Ended) {
        self.send(EventKind::Ended(ended));
    }

    pub(super) fn health(&self, health: Health) {
        self.send(EventKind::Health(health));
    }
}

/// Watches the agent's own wrapper child.
pub async fn own_child(
    report: Reporter,
    child: Child,
    sandbox: PathBuf,
    cgroup: Option<TaskCgroup>,
) {
    report.ended(process::watch_child(child, &sandbox, cgroup).await);
}

/// Watches a wrapper found alive after a restart.
pub async fn adopted(
    report: Reporter,
    pid: i32,
    start: u64,
    sandbox: PathBuf,
    cgroup: Option<TaskCgroup>,
) {
    report.ended(process::watch_adopted(pid, start, &sandbox, cgroup).await);
}

/// Launches a container task and watches it.
pub async fn container(report: Reporter, task: ContainerTask) {
    let launched = async {
        let engine = docker::engine().await?;
        let id = docker::launch(&engine, &task).await?;
        Ok::<_, docker::LaunchError>((engine, id))
    };
    match launched.await {
        Ok((engine, id)) => {
            report.send(EventKind::Started(Runtime::Container { id: id.clone() }));
            report.ended(docker::watch(&engine, &id, &task.sandbox).await);
        }
        Err(err) => report.ended(Ended::LaunchFailed(crate::error_chain(&err))),
    }
}

/// Finds the container of a task again after a restart, by name, and watches it.
pub async fn adopted_container(report: Reporter, name: String, sandbox: PathBuf) {
    let deadline = tokio::time::Instant::now() + ENGINE_PATIENCE;
    let engine = loop {
        match docker::engine().await {
            Ok(engine) => break engine,
            Err(err) if tokio::time::Instant::now() >= deadline => {
                let why = format!("cannot recover the container: {}", crate::error_chain(&err));
                return report.ended(Ended::LaunchFailed(why));
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    };
    match docker::find(&engine, &name).await {
        None => report.ended(Ended::Vanished),
        Some((id, running)) => {
            report.send(EventKind::Started(Runtime::Container { id: id.clone() }));
            let ended = if running {
                docker::watch(&engine, &id, &sandbox).await
            } else {
                docker::conclude(&engine, &id, &sandbox).await
            };
            report.ended(ended);
        }
    }
}

/// Kills a command task.
pub async fn kill_process(pid: i32, cgroup: Option<TaskCgroup>, grace: Duration) {
    process::kill(pid, cgroup, grace).await;
}

/// Stops a container task.
pub async fn stop_container(id: String, grace_ms: u64) {
    let stopped = match docker::engine().await {
        Ok(engine) => docker::stop(&engine, &id, grace_ms)
            .await
            .map_err(|e| crate::error_chain(&e)),
        Err(err) => Err(crate::error_chain(&err)),
    };
    if let Err(error) = stopped {
        warn!(container = id, error, "cannot stop a container");
    }
}

/// Removes a cgroup left by a failed launch.
pub async fn destroy_cgroup(cgroup: TaskCgroup) {
    cgroup.destroy().await;
}
