//! Health checks run next to a task, with Mesos's semantics. [`Tracker`] is the pure part:
//! given each check's result and the time since checking began, it says when the task's
//! health changed and when to kill it. [`watch`] is the loop the actor starts for a running
//! task with a check (and stops when the task is killed or ends): it waits the delay, runs the
//! [`Probe`] every interval under the timeout, and sends what the tracker decides to the
//! actor as [`Health`] events.
//!
//! - A failure within the grace period (counted from the start), before any success, is
//!   ignored.
//! - A success resets the count of consecutive failures.
//! - The first result that counts, and every change between healthy and unhealthy, is
//!   reported (the actor sends it as TASK_RUNNING with `healthy`).
//! - `consecutive_failures` failures in a row (at least one) kill the task.

use std::{path::Path, time::Duration};

use proto::exec::{HealthCheckKind, HealthCheckSpec, TaskKind, TaskSpec};
use tokio::time::Instant;
use tracing::debug;

use super::{
    monitor::{Health, Reporter},
    probe::Probe,
    sandbox::{command_line, environment},
    table::Runtime,
};

/// The shortest time between two checks, whatever the spec says (0 would spin).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// `seconds` as a duration; what is not a finite, non-negative number is zero.
fn seconds(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::ZERO)
}

/// What one check's result calls for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The task's health changed to this (or is known for the first time): report it.
    pub report: Option<bool>,
    /// The task failed this many checks in a row: kill it.
    pub kill: Option<u32>,
}

/// The state of one task's health checking. Pure: time comes in as an argument.
#[derive(Debug, Clone)]
pub struct Tracker {
    grace: Duration,
    limit: u32,
    failures: u32,
    /// No check has succeeded yet, so failures within the grace period are ignored.
    initializing: bool,
    /// The health last reported.
    reported: Option<bool>,
}

impl Tracker {
    /// A tracker for `spec`. `reported` is the health already reported for this task (by an
    /// earlier agent, for a re-adopted one): with a health known, the grace period is over.
    pub fn new(spec: &HealthCheckSpec, reported: Option<bool>) -> Self {
        Self {
            grace: seconds(spec.grace_period_seconds),
            limit: spec.consecutive_failures.max(1),
            failures: 0,
            initializing: reported.is_none(),
            reported,
        }
    }

    /// Takes the result of one check made `elapsed` after checking began.
    pub fn observe(&mut self, healthy: bool, elapsed: Duration) -> Verdict {
        if healthy {
            self.failures = 0;
            self.initializing = false;
            return self.verdict(true, None);
        }
        if self.initializing && elapsed <= self.grace && self.grace > Duration::ZERO {
            return Verdict::default();
        }
        self.failures = self.failures.saturating_add(1);
        let kill = (self.failures >= self.limit).then_some(self.failures);
        self.verdict(false, kill)
    }

    fn verdict(&mut self, healthy: bool, kill: Option<u32>) -> Verdict {
        let report = (self.reported != Some(healthy)).then_some(healthy);
        self.reported = Some(healthy);
        Verdict { report, kill }
    }
}

/// How to check the task of `spec` running as `runtime` with sandbox `sandbox`; `None` when
/// it cannot be checked (a command check of a container the agent has no id for).
pub fn probe(
    spec: &TaskSpec,
    check: &HealthCheckKind,
    runtime: &Runtime,
    sandbox: &Path,
    hostname: &str,
) -> Option<Probe> {
    match check {
        HealthCheckKind::Http { port, path, .. } => Some(Probe::Http {
            port: *port,
            path: path.clone(),
        }),
        HealthCheckKind::Tcp { port } => Some(Probe::Tcp { port: *port }),
        HealthCheckKind::Command(command) => {
            let line = command_line(command).ok()?;
            match (&spec.kind, runtime) {
                (TaskKind::Command(task), _) => {
                    let dir = sandbox.to_string_lossy();
                    let mut env = environment(spec, &task.env, &dir, hostname);
                    env.extend(command.env.clone());
                    Some(Probe::Command {
                        line,
                        env,
                        dir: sandbox.to_path_buf(),
                    })
                }
                (TaskKind::Docker(_), Runtime::Container { id }) => Some(Probe::Exec {
                    container: id.clone(),
                    line,
                    env: command.env.clone(),
                }),
                (TaskKind::Docker(_), _) => None,
            }
        }
    }
}

/// The check loop of one task; it returns after reporting [`Health::Failed`], otherwise it
/// runs until the actor aborts it. `reported` is the health already reported (see
/// [`Tracker::new`]): a re-adopted task with a known health is checked again after one
/// interval rather than after the initial delay.
pub async fn watch(report: Reporter, probe: Probe, spec: HealthCheckSpec, reported: Option<bool>) {
    let began = Instant::now();
    let mut tracker = Tracker::new(&spec, reported);
    let interval = seconds(spec.interval_seconds).max(MIN_INTERVAL);
    let timeout = (spec.timeout_seconds > 0.0).then(|| seconds(spec.timeout_seconds));
    let first = match reported {
        None => seconds(spec.delay_seconds),
        Some(_) => interval,
    };
    tokio::time::sleep(first).await;
    loop {
        let result = probe.run(timeout).await;
        if let Err(why) = &result {
            debug!(task_id = report.task_id, why, "health check failed");
        }
        let verdict = tracker.observe(result.is_ok(), began.elapsed());
        if let Some(healthy) = verdict.report {
            report.health(Health::Changed(healthy));
        }
        if let Some(failures) = verdict.kill {
            return report.health(Health::Failed(failures));
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use proto::exec::CommandSpec;
    use tokio::sync::mpsc;

    use super::*;
    use crate::exec::monitor::EventKind;

    fn spec(grace: f64, failures: u32) -> HealthCheckSpec {
        HealthCheckSpec {
            grace_period_seconds: grace,
            consecutive_failures: failures,
            ..HealthCheckSpec::new(HealthCheckKind::Tcp { port: 1 })
        }
    }

    const fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn report(healthy: bool) -> Verdict {
        Verdict {
            report: Some(healthy),
            kill: None,
        }
    }

    #[test]
    fn failures_in_the_grace_period_before_a_success_are_ignored() {
        let mut tracker = Tracker::new(&spec(10.0, 3), None);
        assert_eq!(tracker.observe(false, at(1_000)), Verdict::default());
        assert_eq!(tracker.observe(false, at(10_000)), Verdict::default());
        assert_eq!(tracker.observe(true, at(11_000)), report(true));
        assert_eq!(tracker.observe(true, at(12_000)), Verdict::default());
        // After a success, the grace period no longer applies.
        let mut tracker = Tracker::new(&spec(10.0, 3), None);
        tracker.observe(true, at(1_000));
        assert_eq!(tracker.observe(false, at(2_000)), report(false));
        // Outside it, the first failure is the first health known.
        let mut tracker = Tracker::new(&spec(1.0, 3), None);
        assert_eq!(tracker.observe(false, at(1_001)), report(false));
    }

    #[test]
    fn consecutive_failures_kill_and_a_success_resets_them() {
        let mut tracker = Tracker::new(&spec(0.0, 3), None);
        assert_eq!(tracker.observe(true, at(1)), report(true));
        assert_eq!(tracker.observe(false, at(2)), report(false));
        assert_eq!(tracker.observe(false, at(3)), Verdict::default());
        assert_eq!(tracker.observe(true, at(4)), report(true));
        assert_eq!(tracker.observe(false, at(5)), report(false));
        assert_eq!(tracker.observe(false, at(6)), Verdict::default());
        let killed = Verdict {
            report: None,
            kill: Some(3),
        };
        assert_eq!(tracker.observe(false, at(7)), killed);
        // Zero is taken as one, as Mesos does (`failures >= consecutive_failures`).
        let mut tracker = Tracker::new(&spec(0.0, 0), None);
        let first = tracker.observe(false, at(1));
        assert_eq!((first.report, first.kill), (Some(false), Some(1)));
    }

    #[test]
    fn a_resumed_tracker_keeps_the_reported_health() {
        let mut healthy = Tracker::new(&spec(60.0, 2), Some(true));
        assert_eq!(healthy.observe(true, at(1)), Verdict::default());
        assert_eq!(healthy.observe(false, at(2)), report(false), "no grace");
        let mut unhealthy = Tracker::new(&spec(60.0, 2), Some(false));
        assert_eq!(unhealthy.observe(false, at(1)), Verdict::default());
        assert_eq!(unhealthy.observe(false, at(2)).kill, Some(2));
    }

    #[test]
    fn command_checks_of_command_tasks_get_the_task_environment() {
        let check = CommandSpec {
            shell: true,
            value: Some("test -f ready".into()),
            env: [("CHECK".to_owned(), "1".to_owned())].into(),
            ..CommandSpec::default()
        };
        let task = TaskSpec {
            task_id: "t".into(),
            framework_id: "f".into(),
            name: "t".into(),
            kind: TaskKind::Command(CommandSpec {
                shell: true,
                value: Some("sleep 9".into()),
                env: [("TASK".to_owned(), "2".to_owned())].into(),
                ..CommandSpec::default()
            }),
            resources: Default::default(),
            kill_grace_ms: 0,
            labels: Default::default(),
            health_check: Some(HealthCheckSpec::new(HealthCheckKind::Command(check))),
        };
        let kind = &task.health_check.as_ref().expect("check").kind;
        let sandbox = Path::new("/sb");
        let Some(Probe::Command { env, dir, line }) =
            probe(&task, kind, &Runtime::Pending, sandbox, "node")
        else {
            panic!("a command check run by the agent")
        };
        assert_eq!(line, ["/bin/sh", "-c", "test -f ready"]);
        assert_eq!(dir, sandbox);
        assert_eq!((env["CHECK"].as_str(), env["TASK"].as_str()), ("1", "2"));
        assert_eq!(env["MESOS_SANDBOX"], "/sb");
        let mut docker = task.clone();
        docker.kind = TaskKind::Docker(proto::exec::DockerSpec {
            image: "busybox".into(),
            network: proto::exec::DockerNetwork::Bridge,
            port_mappings: vec![],
            volumes: vec![],
            command: None,
            env: Default::default(),
            force_pull: false,
        });
        let running = Runtime::Container { id: "c1".into() };
        let exec = probe(&docker, kind, &running, sandbox, "node");
        assert!(
            matches!(exec, Some(Probe::Exec { ref container, ref env, .. })
            if container == "c1" && env.len() == 1)
        );
        assert_eq!(
            probe(&docker, kind, &Runtime::Pending, sandbox, "node"),
            None
        );
    }

    #[tokio::test]
    async fn the_loop_waits_the_delay_then_reports_and_kills() {
        let (events, mut received) = mpsc::unbounded_channel();
        let reporter = Reporter {
            task_id: "t".into(),
            events,
        };
        // Nothing listens on port 1: every check fails, outside the (zero) grace period.
        let check = HealthCheckSpec {
            delay_seconds: 0.3,
            interval_seconds: 0.1,
            ..spec(0.0, 2)
        };
        let began = Instant::now();
        watch(reporter, Probe::Tcp { port: 1 }, check, None).await;
        let took = began.elapsed();
        assert!(
            took >= at(400) && took < at(5_000),
            "delay, then one interval: {took:?}"
        );
        let mut health = Vec::new();
        while let Ok(event) = received.try_recv() {
            if let EventKind::Health(h) = event.kind {
                health.push(h);
            }
        }
        assert_eq!(health, [Health::Changed(false), Health::Failed(2)]);
    }
}
