//! Start-up recovery from the checkpoints of an earlier run. A live task is re-adopted: a
//! wrapper with the recorded pid and start time is polled (it is no longer the agent's
//! child), a container is found again by name and watched; its health checks resume. A task that ended meanwhile gets
//! its terminal update from the `exit_status` its wrapper wrote, or from the stopped
//! container; one that left nothing behind is TASK_FAILED (`REASON_EXECUTOR_TERMINATED`).
//! Terminal tasks whose last update was acknowledged are forgotten; the others wait for
//! their acknowledgement again.

use proto::exec::TaskKind;
use tracing::{info, warn};

use super::{
    actor::Actor, monitor, naming, process, sandbox::sandbox_dir, status::Ended, table::Runtime,
};

impl Actor {
    pub(super) async fn recover(&mut self) {
        for record in self.checkpoints.load() {
            let task_id = record.spec.task_id.clone();
            if record.is_terminal() && record.acked {
                if let Err(err) = self.checkpoints.delete(&task_id) {
                    warn!(task_id, error = %err, "cannot delete a task checkpoint");
                }
                continue;
            }
            let terminal = record.is_terminal();
            let (spec, runtime, killing) =
                (record.spec.clone(), record.runtime.clone(), record.killing);
            self.table.insert(record);
            if terminal {
                continue;
            }
            let sandbox = sandbox_dir(&self.config.work_dir, &spec);
            let report = self.reporter(&task_id);
            match (&spec.kind, runtime) {
                (TaskKind::Command(_), Runtime::Process { pid, start_time }) => {
                    let cgroup = self.cgroups.task(&task_id).filter(|c| c.exists());
                    if process::alive(pid, start_time) {
                        info!(task_id, pid, "re-adopted a running task");
                        let watch = monitor::adopted(report, pid, start_time, sandbox, cgroup);
                        self.monitors.spawn(watch);
                        if killing {
                            self.start_kill(&task_id, spec.kill_grace_ms);
                        } else {
                            self.start_checks(&task_id);
                        }
                    } else {
                        let ended = process::conclude(&sandbox, cgroup, None).await;
                        info!(task_id, ?ended, "a task ended while the agent was down");
                        self.finish(&task_id, &ended);
                    }
                }
                (TaskKind::Command(_), _) => {
                    warn!(task_id, "a task was being launched when the agent stopped");
                    self.finish(&task_id, &Ended::Vanished);
                }
                (TaskKind::Docker(_), _) => {
                    let name = naming::container_name(&self.scope, &task_id);
                    info!(task_id, container = name, "looking for a task's container");
                    self.monitors
                        .spawn(monitor::adopted_container(report, name, sandbox));
                }
            }
        }
        if !self.table.is_empty() {
            info!(tasks = self.table.len(), "tasks recovered from checkpoints");
        }
    }
}
