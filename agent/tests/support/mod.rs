//! Shared helpers of the executor tests: a real executor on a fresh state directory, a
//! session to read its updates from, and task specs.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use agent::exec::{ExecConfig, Executor, Session, naming, resources::parse_resources};
use proto::exec::{
    AgentMessage, CommandSpec, MasterMessage, StatusUpdate, TaskKind, TaskSpec, TaskState,
};

/// How long any one expected update may take.
const PATIENCE: Duration = Duration::from_secs(20);

/// Whether the test can run; prints why not.
pub fn is_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping {test}: running tasks in cgroups needs root");
    }
    root
}

/// A fresh directory for one test.
pub fn test_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-exec-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the test directory");
    dir
}

pub fn config(dir: &Path) -> ExecConfig {
    ExecConfig {
        state_dir: dir.join("state"),
        work_dir: dir.join("work"),
        hostname: "test-host".into(),
        resources: parse_resources("cpus:2;mem:1024;ports:[31000-31010]").expect("resources"),
        attributes: Default::default(),
        cgroup_mount: "/sys/fs/cgroup".into(),
    }
}

/// An executor and the session it talks on.
#[derive(Debug)]
pub struct Harness {
    pub dir: PathBuf,
    pub executor: Executor,
    pub session: Session,
    /// Updates read while looking for another task's.
    pending: Vec<StatusUpdate>,
}

impl Harness {
    pub async fn start(dir: &Path) -> Self {
        let executor = Executor::start(config(dir));
        let session = executor.session().await.expect("a session");
        Self {
            dir: dir.to_path_buf(),
            executor,
            session,
            pending: Vec::new(),
        }
    }

    pub async fn send(&self, message: MasterMessage) {
        self.executor.deliver(message).await;
    }

    pub async fn launch(&self, spec: TaskSpec) {
        self.send(MasterMessage::Launch(Box::new(spec))).await;
    }

    /// The next update about `task_id` in a state other than the last one seen (resends
    /// of the same update are skipped).
    pub async fn next(&mut self, task_id: &str, after: Option<TaskState>) -> StatusUpdate {
        let wanted = |u: &StatusUpdate| u.task_id == task_id && Some(u.state) != after;
        if let Some(at) = self.pending.iter().position(wanted) {
            let update = self.pending.remove(at);
            self.pending
                .retain(|u| !(u.task_id == task_id && Some(u.state) == after));
            return update;
        }
        self.pending.retain(|u| u.task_id != task_id);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let received = tokio::time::timeout_at(deadline, self.session.outgoing.recv()).await;
            let message = received
                .unwrap_or_else(|_| {
                    panic!("no update for {task_id} after {after:?} in {PATIENCE:?}")
                })
                .expect("the executor is running");
            if let AgentMessage::Status(update) = message {
                if wanted(&update) {
                    return update;
                }
                if update.task_id != task_id {
                    self.pending.push(update);
                }
            }
        }
    }

    /// Expects exactly these states for `task_id`, in order; returns the updates.
    pub async fn expect(&mut self, task_id: &str, states: &[TaskState]) -> Vec<StatusUpdate> {
        let mut updates: Vec<StatusUpdate> = Vec::new();
        for &state in states {
            let update = self.next(task_id, updates.last().map(|u| u.state)).await;
            assert_eq!(update.state, state, "{task_id}: {update:?}");
            updates.push(update);
        }
        updates
    }

    pub async fn ack(&self, update: &StatusUpdate) {
        let ack = MasterMessage::Acknowledge {
            task_id: update.task_id.clone(),
            uuid: update.uuid.clone(),
        };
        self.send(ack).await;
    }

    pub fn sandbox(&self, task_id: &str) -> PathBuf {
        self.dir.join("work/sandboxes/f1").join(task_id)
    }

    pub fn checkpoint(&self, task_id: &str) -> PathBuf {
        self.dir.join("state/tasks").join(format!("{task_id}.json"))
    }

    /// Stops the executor and removes what the test left (the agent's empty cgroup dirs).
    pub async fn finish(self) {
        let scope = naming::scope(&self.dir.join("state"));
        self.executor.detach().await;
        for controller in ["", "cpu/", "memory/", "unified/"] {
            let dir = format!("/sys/fs/cgroup/{controller}strata-tasks/{scope}");
            let _ = std::fs::remove_dir(dir);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A shell command task of framework `f1`.
pub fn shell_task(task_id: &str, script: &str) -> TaskSpec {
    TaskSpec {
        task_id: task_id.into(),
        framework_id: "f1".into(),
        name: task_id.into(),
        kind: TaskKind::Command(CommandSpec {
            shell: true,
            value: Some(script.into()),
            ..CommandSpec::default()
        }),
        resources: parse_resources("cpus:0.5;mem:64;ports:[31000-31001]").expect("resources"),
        kill_grace_ms: 1000,
        labels: Default::default(),
        health_check: None,
    }
}

/// Reads a sandbox file, waiting up to a few seconds for it to have content.
pub async fn read_when_written(path: &Path) -> String {
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.is_empty()
        {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} stayed empty", path.display());
}

/// Whether process `pid` runs (and is not a zombie).
pub fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}
