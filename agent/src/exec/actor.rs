//! The executor actor: owns the task table, applies master messages and monitor events,
//! checkpoints every change and sends status updates on the current connection, if any. It
//! also starts each running task's health check loop and stops it when the task is killed
//! or ends.

use std::{collections::HashMap, time::Duration};

use proto::exec::{AgentMessage, MasterMessage, StatusUpdate, TaskKind, TaskSpec, TaskState};
use tokio::{
    sync::mpsc::{self, error::TrySendError},
    task::{AbortHandle, JoinSet},
};
use tracing::{debug, info, warn};

use super::{
    ExecConfig, Input, Session,
    cgroups::Cgroups,
    checkpoint::Checkpoints,
    docker::ContainerTask,
    health,
    monitor::{self, Event, EventKind, Health, Reporter},
    naming, process,
    sandbox::{self, command_line, environment, sandbox_dir},
    status::{self, Change, Ended, REASON_RECONCILIATION, Stamp},
    table::{Acked, Runtime, Table},
};

/// How often unacknowledged updates are sent again.
const RESEND_EVERY: Duration = Duration::from_secs(10);
/// Messages a connection may have queued; beyond, updates wait for the next resend.
const OUTGOING: usize = 1024;
/// Where a container task sees its sandbox.
const CONTAINER_SANDBOX: &str = "/mnt/mesos/sandbox";

pub(super) struct Actor {
    pub(super) config: ExecConfig,
    pub(super) scope: String,
    pub(super) cgroups: Cgroups,
    pub(super) checkpoints: Checkpoints,
    pub(super) table: Table,
    out: Option<mpsc::Sender<AgentMessage>>,
    events: mpsc::UnboundedSender<Event>,
    pub(super) monitors: JoinSet<()>,
    /// The health check loops, by task.
    checks: HashMap<String, AbortHandle>,
}

pub(super) async fn run(config: ExecConfig, mut inputs: mpsc::Receiver<Input>) {
    let scope = naming::scope(&config.state_dir);
    let (events, mut monitor_events) = mpsc::unbounded_channel();
    let mut actor = Actor {
        cgroups: Cgroups::detect(&config.cgroup_mount, &scope),
        checkpoints: Checkpoints::new(&config.state_dir),
        scope,
        config,
        table: Table::default(),
        out: None,
        events,
        monitors: JoinSet::new(),
        checks: HashMap::new(),
    };
    info!(scope = actor.scope, cgroups = ?actor.cgroups, work_dir = %actor.config.work_dir.display(), resources = ?actor.config.resources, "executor starting");
    actor.recover().await;
    let mut resend = tokio::time::interval(RESEND_EVERY);
    resend.tick().await;
    let detached = loop {
        tokio::select! {
            input = inputs.recv() => match input {
                None => break None,
                Some(Input::Detach(reply)) => break Some(reply),
                Some(Input::Session(reply)) => {
                    let _ = reply.send(actor.session());
                }
                Some(Input::Master(message)) => actor.master(message),
            },
            Some(event) = monitor_events.recv() => actor.event(event),
            _ = resend.tick() => actor.resend(),
            Some(_) = actor.monitors.join_next() => {}
        }
    };
    actor.monitors.shutdown().await;
    info!("executor stopped; its tasks keep running");
    if let Some(reply) = detached {
        let _ = reply.send(());
    }
}

impl Actor {
    fn session(&mut self) -> Session {
        let (sender, outgoing) = mpsc::channel(OUTGOING);
        self.out = Some(sender);
        let register = AgentMessage::Register {
            hostname: self.config.hostname.clone(),
            resources: self.config.resources.clone(),
            attributes: self.config.attributes.clone(),
            tasks: self.table.reports(),
        };
        Session { register, outgoing }
    }

    /// Sends on the current connection; what does not go stays retained in the table.
    fn send(&mut self, update: StatusUpdate) {
        let Some(out) = &self.out else { return };
        match out.try_send(AgentMessage::Status(update)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                debug!("outgoing queue full; the update waits for a resend")
            }
            Err(TrySendError::Closed(_)) => self.out = None,
        }
    }

    fn resend(&mut self) {
        for update in self.table.unacked() {
            self.send(update);
        }
    }

    pub(super) fn checkpoint(&self, task_id: &str) {
        let Some(record) = self.table.get(task_id) else {
            return;
        };
        if let Err(err) = self.checkpoints.store(record) {
            warn!(task_id, error = %err, "cannot checkpoint a task");
        }
    }

    /// Records `change` for a live task, checkpoints and sends it.
    pub(super) fn change(&mut self, task_id: &str, change: Change) {
        if let Some(update) = self.table.transition(task_id, change, Stamp::now()) {
            self.checkpoint(task_id);
            if update.state.is_terminal() {
                self.stop_checks(task_id);
                let (state, reason, message) = (
                    update.state.as_str(),
                    update.reason.as_deref(),
                    update.message.as_deref(),
                );
                if update.state == TaskState::TaskFinished || update.state == TaskState::TaskKilled
                {
                    info!(task_id, state, message, "task ended");
                } else {
                    warn!(task_id, state, reason, message, "task ended");
                }
            }
            self.send(update);
        }
    }

    /// The terminal update of a task that ended.
    pub(super) fn finish(&mut self, task_id: &str, ended: &Ended) {
        let Some(record) = self.table.get(task_id) else {
            return;
        };
        let what = match record.spec.kind {
            TaskKind::Command(_) => "command",
            TaskKind::Docker(_) => "container",
        };
        let change = match record.killed_unhealthy {
            Some(failures) if record.killing => status::killed_unhealthy(failures),
            _ => status::terminal(ended, record.killing, what),
        };
        self.change(task_id, change);
    }

    /// An update about a task the agent does not have: sent once, not retained.
    fn send_unknown(&mut self, task_id: &str, message: &str, reason: Option<&'static str>) {
        let mut change = Change::new(TaskState::TaskLost).message(message);
        change.reason = reason;
        let update = change.update(task_id, "", Stamp::now(), Vec::new());
        self.send(update);
    }

    pub(super) fn reporter(&self, task_id: &str) -> Reporter {
        Reporter {
            task_id: task_id.to_owned(),
            events: self.events.clone(),
        }
    }

    fn master(&mut self, message: MasterMessage) {
        match message {
            MasterMessage::Registered { known_tasks } => {
                info!(
                    known = known_tasks.len(),
                    tasks = self.table.len(),
                    "registered with the master"
                );
                for task_id in self.table.unknown(&known_tasks) {
                    warn!(task_id, "the master has a task this agent does not know");
                    let message = "the agent does not know this task";
                    self.send_unknown(task_id, message, Some(REASON_RECONCILIATION));
                }
                self.resend();
            }
            MasterMessage::Launch(spec) => self.launch(*spec),
            MasterMessage::Kill { task_id, grace_ms } => self.kill(&task_id, grace_ms),
            MasterMessage::Acknowledge { task_id, uuid } => {
                match self.table.acknowledge(&task_id, &uuid) {
                    Acked::Forgotten => {
                        if let Err(err) = self.checkpoints.delete(&task_id) {
                            warn!(task_id, error = %err, "cannot delete a task checkpoint");
                        }
                        debug!(task_id, "terminal update acknowledged; task forgotten");
                    }
                    Acked::Acked => self.checkpoint(&task_id),
                    Acked::Ignored => debug!(task_id, uuid, "acknowledgement of an older update"),
                }
            }
            MasterMessage::ReadFile {
                request,
                framework_id,
                task_id,
                file,
                offset,
                length,
            } => {
                let chunk = super::files::read(
                    &self.config.work_dir,
                    &framework_id,
                    &task_id,
                    &file,
                    offset,
                    length,
                );
                if let Some(out) = &self.out
                    && out
                        .try_send(AgentMessage::FileData { request, chunk })
                        .is_err()
                {
                    debug!(
                        task_id,
                        "outgoing queue full or closed; a file read is dropped"
                    );
                }
            }
            MasterMessage::ShutdownFramework { framework_id } => {
                let tasks = self.table.live_of_framework(&framework_id);
                info!(
                    framework_id,
                    tasks = tasks.len(),
                    "shutting the framework down"
                );
                for task_id in tasks {
                    self.kill(&task_id, None);
                }
            }
        }
    }

    fn event(&mut self, event: Event) {
        let task_id = event.task_id;
        match event.kind {
            EventKind::Started(runtime) => {
                let Some(record) = self.table.get_mut(&task_id) else {
                    return;
                };
                if record.is_terminal() {
                    return;
                }
                record.runtime = runtime;
                let killing = record.killing;
                if record.status.state == TaskState::TaskRunning {
                    self.checkpoint(&task_id);
                } else {
                    self.change(&task_id, Change::new(TaskState::TaskRunning));
                }
                if killing {
                    let grace = self.table.get(&task_id).map_or(0, |r| r.spec.kill_grace_ms);
                    self.start_kill(&task_id, grace);
                } else {
                    self.start_checks(&task_id);
                }
            }
            EventKind::Ended(ended) => self.finish(&task_id, &ended),
            EventKind::Health(health) => self.health(&task_id, health),
        }
    }

    /// Starts the health check loop of a running task that has a check, unless it runs.
    /// A re-adopted task goes on from the health it last reported.
    pub(super) fn start_checks(&mut self, task_id: &str) {
        let Some(record) = self.table.get(task_id) else {
            return;
        };
        let Some(check) = &record.spec.health_check else {
            return;
        };
        if record.killing || record.is_terminal() || self.checks.contains_key(task_id) {
            return;
        }
        let sandbox = sandbox_dir(&self.config.work_dir, &record.spec);
        let hostname = &self.config.hostname;
        let probe = health::probe(
            &record.spec,
            &check.kind,
            &record.runtime,
            &sandbox,
            hostname,
        );
        let Some(probe) = probe else {
            return warn!(task_id, "cannot check this task's health");
        };
        let reported = record.status.healthy;
        let watch = health::watch(self.reporter(task_id), probe, check.clone(), reported);
        debug!(task_id, ?reported, "health checks start");
        let handle = self.monitors.spawn(watch);
        self.checks.insert(task_id.to_owned(), handle);
    }

    fn stop_checks(&mut self, task_id: &str) {
        if let Some(handle) = self.checks.remove(task_id) {
            handle.abort();
        }
    }

    /// What a health check loop decided, for a task that still runs and is not being killed
    /// (a decision that crossed a kill or the end is dropped).
    fn health(&mut self, task_id: &str, health: Health) {
        let Some(record) = self.table.get_mut(task_id) else {
            return;
        };
        if record.killing || record.status.state != TaskState::TaskRunning {
            return;
        }
        match health {
            Health::Changed(healthy) => {
                info!(task_id, healthy, "task health changed");
                self.change(task_id, status::health_changed(healthy));
            }
            Health::Failed(failures) => {
                warn!(
                    task_id,
                    failures, "task failed its health check; killing it"
                );
                record.killing = true;
                record.killed_unhealthy = Some(failures);
                let grace = record.spec.kill_grace_ms;
                self.checks.remove(task_id);
                self.checkpoint(task_id);
                self.start_kill(task_id, grace);
            }
        }
    }

    fn launch(&mut self, spec: TaskSpec) {
        let task_id = spec.task_id.clone();
        if self.table.is_live(&task_id) {
            warn!(task_id, "launch of a task that already runs; ignored");
            return;
        }
        if let Some(why) = sandbox::invalid(&spec) {
            warn!(task_id, why, "invalid task");
            let change = Change::new(TaskState::TaskError)
                .reason(status::REASON_TASK_INVALID)
                .message(why);
            let update = self.table.launch(spec, change, Stamp::now()).status.clone();
            self.checkpoint(&task_id);
            return self.send(update);
        }
        info!(
            task_id,
            framework_id = spec.framework_id,
            name = spec.name,
            "launching a task"
        );
        let starting = Change::new(TaskState::TaskStarting);
        let update = self
            .table
            .launch(spec.clone(), starting, Stamp::now())
            .status
            .clone();
        self.checkpoint(&task_id);
        self.send(update);
        let sandbox = sandbox_dir(&self.config.work_dir, &spec);
        match &spec.kind {
            TaskKind::Command(command) => {
                let env = environment(
                    &spec,
                    &command.env,
                    &sandbox.to_string_lossy(),
                    &self.config.hostname,
                );
                self.start_command(
                    &spec,
                    &command_line(command).unwrap_or_default(),
                    &env,
                    sandbox,
                );
            }
            TaskKind::Docker(docker) => {
                let mut docker = docker.clone();
                let own = docker
                    .command
                    .as_ref()
                    .map(|c| c.env.clone())
                    .unwrap_or_default();
                let env = environment(&spec, &own, CONTAINER_SANDBOX, &self.config.hostname);
                if let Err(err) = std::fs::create_dir_all(&sandbox) {
                    warn!(task_id, error = %err, "cannot create the sandbox");
                } else {
                    docker.volumes.push(proto::exec::Volume {
                        host_path: sandbox.to_string_lossy().into_owned(),
                        container_path: CONTAINER_SANDBOX.into(),
                        read_only: false,
                    });
                }
                let task = ContainerTask {
                    name: naming::container_name(&self.scope, &task_id),
                    scope: self.scope.clone(),
                    spec: spec.clone(),
                    docker,
                    env,
                    sandbox,
                };
                self.monitors
                    .spawn(monitor::container(self.reporter(&task_id), task));
            }
        }
    }

    fn start_command(
        &mut self,
        spec: &TaskSpec,
        line: &[String],
        env: &std::collections::BTreeMap<String, String>,
        sandbox: std::path::PathBuf,
    ) {
        let task_id = spec.task_id.as_str();
        let (cpus, mem) = (spec.resources.scalar("cpus"), spec.resources.scalar("mem"));
        let cgroup = match self.cgroups.create(task_id, cpus, mem) {
            Ok(cgroup) => cgroup,
            Err(err) => {
                warn!(task_id, error = %err, "cannot create the task's cgroup; it runs without limits");
                None
            }
        };
        match process::spawn(line, env, &sandbox, cgroup.as_ref()) {
            Ok(spawned) => {
                info!(task_id, pid = spawned.pid, sandbox = %sandbox.display(), "task started");
                let runtime = Runtime::Process {
                    pid: spawned.pid,
                    start_time: spawned.start_time,
                };
                let report = self.reporter(task_id);
                self.monitors
                    .spawn(monitor::own_child(report, spawned.child, sandbox, cgroup));
                self.event(Event {
                    task_id: task_id.to_owned(),
                    kind: EventKind::Started(runtime),
                });
            }
            Err(err) => {
                if let Some(cgroup) = cgroup {
                    self.monitors.spawn(monitor::destroy_cgroup(cgroup));
                }
                let why = format!("starting the command: {err}");
                self.finish(task_id, &Ended::LaunchFailed(why));
            }
        }
    }

    fn kill(&mut self, task_id: &str, grace_ms: Option<u64>) {
        let Some(record) = self.table.get_mut(task_id) else {
            warn!(task_id, "kill of an unknown task");
            return self.send_unknown(task_id, "cannot find task", None);
        };
        if record.is_terminal() {
            let update = (!record.acked).then(|| record.status.clone());
            debug!(task_id, "kill of a task that already ended");
            return update.into_iter().for_each(|u| self.send(u));
        }
        let grace = grace_ms.unwrap_or(record.spec.kill_grace_ms);
        record.killing = true;
        info!(task_id, grace_ms = grace, "killing a task");
        self.stop_checks(task_id);
        self.checkpoint(task_id);
        self.start_kill(task_id, grace);
    }

    /// Starts the kill of a live task by its runtime (a pending one is killed once started).
    pub(super) fn start_kill(&mut self, task_id: &str, grace_ms: u64) {
        let Some(record) = self.table.get(task_id) else {
            return;
        };
        match &record.runtime {
            Runtime::Process { pid, .. } => {
                let cgroup = self.cgroups.task(task_id).filter(|c| c.exists());
                let grace = Duration::from_millis(grace_ms);
                self.monitors
                    .spawn(monitor::kill_process(*pid, cgroup, grace));
            }
            Runtime::Container { id } => {
                self.monitors
                    .spawn(monitor::stop_container(id.clone(), grace_ms));
            }
            Runtime::Pending => debug!(task_id, "killed once it has started"),
        }
    }
}
