//! Health checks of real tasks: a command check that passes, then fails until the task is
//! killed; an HTTP check of a real server; a TCP check of a closed port; checks resumed by a
//! restarted agent; a command check run inside a container (skipped, saying why, without a
//! Docker engine or a busybox image).

#[allow(dead_code, reason = "helpers shared with the other executor tests")]
mod support;

use std::{
    collections::HashSet,
    process::Command,
    time::{Duration, Instant},
};

use agent::exec::resources::parse_resources;
use proto::exec::{
    AgentMessage, CommandSpec, DockerNetwork, DockerSpec, HealthCheckKind, HealthCheckSpec,
    MasterMessage, StatusUpdate, TaskKind, TaskSpec, TaskState,
};
use support::{Harness, is_root, read_when_written, running, shell_task, test_dir};

use TaskState::{TaskKilled, TaskRunning, TaskStarting};

const HEALTH_REASON: &str = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED";
/// How long a whole expected sequence of updates may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// A check of `kind` with short timings.
fn check(kind: HealthCheckKind, grace: f64, failures: u32) -> HealthCheckSpec {
    HealthCheckSpec {
        kind,
        delay_seconds: 0.2,
        interval_seconds: 0.2,
        timeout_seconds: 2.0,
        consecutive_failures: failures,
        grace_period_seconds: grace,
    }
}

fn shell_check(script: &str) -> HealthCheckKind {
    HealthCheckKind::Command(CommandSpec {
        shell: true,
        value: Some(script.into()),
        ..CommandSpec::default()
    })
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// Reads the updates about `task_id` (each one once, resends skipped) until `done` takes one;
/// all of them, in order.
async fn updates_until(
    harness: &mut Harness,
    task_id: &str,
    done: impl Fn(&StatusUpdate) -> bool,
) -> Vec<StatusUpdate> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut seen = HashSet::new();
    let mut updates = Vec::new();
    loop {
        let received = tokio::time::timeout_at(deadline, harness.session.outgoing.recv()).await;
        let message = received
            .unwrap_or_else(|_| panic!("{task_id}: not done after {PATIENCE:?}: {updates:#?}"))
            .expect("the executor is running");
        let AgentMessage::Status(update) = message else {
            continue;
        };
        if update.task_id != task_id || !seen.insert(update.uuid.clone()) {
            continue;
        }
        let last = done(&update);
        updates.push(update);
        if last {
            return updates;
        }
    }
}

/// `(state, healthy)` of each update.
fn health(updates: &[StatusUpdate]) -> Vec<(TaskState, Option<bool>)> {
    updates.iter().map(|u| (u.state, u.healthy)).collect()
}

fn is_healthy(update: &StatusUpdate) -> bool {
    update.healthy == Some(true)
}

fn is_terminal(update: &StatusUpdate) -> bool {
    update.state.is_terminal()
}

async fn pid_of(harness: &Harness, task_id: &str) -> i32 {
    let text = read_when_written(&harness.sandbox(task_id).join("pid")).await;
    text.trim().parse().expect("a pid")
}

#[tokio::test]
async fn a_failing_command_check_marks_the_task_unhealthy_then_kills_it() {
    if !is_root("a_failing_command_check_marks_the_task_unhealthy_then_kills_it") {
        return;
    }
    let dir = test_dir("health-command");
    let mut harness = Harness::start(&dir).await;
    let mut task = shell_task("hc", "echo $$ > pid; echo ok > ready; exec sleep 60");
    // Runs in the sandbox with the task's environment.
    let script = "test -f ready && test \"$MESOS_TASK_ID\" = hc && test \"$PORT0\" = 31000";
    task.health_check = Some(check(shell_check(script), 0.0, 3));
    harness.launch(task).await;
    let healthy = updates_until(&mut harness, "hc", is_healthy).await;
    assert_eq!(
        health(&healthy),
        [
            (TaskStarting, None),
            (TaskRunning, None),
            (TaskRunning, Some(true))
        ]
    );
    assert_eq!(healthy[2].reason.as_deref(), Some(HEALTH_REASON));
    assert_eq!(healthy[2].host_ports, vec![31000, 31001]);
    let pid = pid_of(&harness, "hc").await;

    std::fs::remove_file(harness.sandbox("hc").join("ready")).expect("removing ready");
    let unhealthy_at = Instant::now();
    let ended = updates_until(&mut harness, "hc", is_terminal).await;
    let took = unhealthy_at.elapsed();
    assert_eq!(
        health(&ended),
        [(TaskRunning, Some(false)), (TaskKilled, Some(false))]
    );
    assert_eq!(ended[0].reason.as_deref(), Some(HEALTH_REASON));
    let killed = &ended[1];
    assert_eq!(killed.reason, None, "Mesos gives no reason for this kill");
    let message = killed.message.as_deref().unwrap_or_default();
    assert!(message.contains("failed 3 times in a row"), "{message}");
    // Three checks 0.2 s apart, then a kill the task does not resist.
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(!running(pid), "the task is gone");
    // The terminal update, health included, waits for its acknowledgement.
    let AgentMessage::Register { tasks, .. } =
        harness.executor.session().await.expect("session").register
    else {
        panic!("register expected");
    };
    assert_eq!(tasks[0].status.healthy, Some(false));
    assert_eq!(tasks[0].status.state, TaskKilled);
    harness.finish().await;
}

#[tokio::test]
async fn an_http_check_of_a_server_finds_it_healthy_after_its_grace() {
    if !is_root("an_http_check_of_a_server_finds_it_healthy_after_its_grace") {
        return;
    }
    let dir = test_dir("health-http");
    let mut harness = Harness::start(&dir).await;
    let port = free_port();
    // The server takes a moment to listen: the failures before are within the grace period.
    let mut task = shell_task(
        "web",
        "sleep 1; exec python3 -m http.server $PORT0 --bind 127.0.0.1",
    );
    task.resources =
        parse_resources(&format!("cpus:0.5;mem:256;ports:[{port}-{port}]")).expect("resources");
    let http = HealthCheckKind::Http {
        port,
        path: "/".into(),
        scheme: "http".into(),
    };
    let mut http_check = check(http, 20.0, 3);
    http_check.delay_seconds = 0.0;
    task.health_check = Some(http_check);
    harness.launch(task).await;
    let healthy = updates_until(&mut harness, "web", is_healthy).await;
    assert_eq!(
        health(&healthy),
        [
            (TaskStarting, None),
            (TaskRunning, None),
            (TaskRunning, Some(true))
        ],
        "no unhealthy update within the grace period"
    );
    // A kill by the framework stops the checks; its update says nothing of health.
    let kill = MasterMessage::Kill {
        task_id: "web".into(),
        grace_ms: Some(2000),
    };
    harness.send(kill).await;
    let ended = updates_until(&mut harness, "web", is_terminal).await;
    assert_eq!(health(&ended), [(TaskKilled, None)]);
    assert_eq!(ended[0].message.as_deref(), Some("killed by the framework"));
    harness.finish().await;
}

#[tokio::test]
async fn a_tcp_check_of_a_closed_port_never_passes_and_kills_the_task() {
    if !is_root("a_tcp_check_of_a_closed_port_never_passes_and_kills_the_task") {
        return;
    }
    let dir = test_dir("health-tcp");
    let mut harness = Harness::start(&dir).await;
    let mut task = shell_task("closed", "echo $$ > pid; exec sleep 60");
    let port = free_port();
    let mut tcp_check = check(HealthCheckKind::Tcp { port }, 0.5, 2);
    tcp_check.interval_seconds = 0.1;
    task.health_check = Some(tcp_check);
    let launched = Instant::now();
    harness.launch(task).await;
    let updates = updates_until(&mut harness, "closed", is_terminal).await;
    assert_eq!(
        health(&updates),
        [
            (TaskStarting, None),
            (TaskRunning, None),
            (TaskRunning, Some(false)),
            (TaskKilled, Some(false))
        ]
    );
    let took = launched.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "the grace period counts: {took:?}"
    );
    let message = updates[3].message.as_deref().unwrap_or_default();
    assert!(message.contains("failed 2 times in a row"), "{message}");
    let pid = pid_of(&harness, "closed").await;
    assert!(!running(pid));
    harness.finish().await;
}

#[tokio::test]
async fn a_restarted_agent_resumes_the_checks_of_its_tasks() {
    if !is_root("a_restarted_agent_resumes_the_checks_of_its_tasks") {
        return;
    }
    let dir = test_dir("health-readopt");
    let mut first = Harness::start(&dir).await;
    let mut task = shell_task("kept", "echo $$ > pid; echo ok > ready; exec sleep 60");
    task.health_check = Some(check(shell_check("test -f ready"), 0.0, 2));
    first.launch(task).await;
    let healthy = updates_until(&mut first, "kept", is_healthy).await;
    let pid = pid_of(&first, "kept").await;
    first.executor.clone().detach().await;
    std::fs::remove_file(first.sandbox("kept").join("ready")).expect("removing ready");

    let mut second = Harness::start(&dir).await;
    let AgentMessage::Register { tasks, .. } = &second.session.register else {
        panic!("register expected");
    };
    assert_eq!(
        tasks[0].status.uuid, healthy[2].uuid,
        "the healthy update is kept"
    );
    assert!(running(pid));
    let ended = updates_until(&mut second, "kept", is_terminal).await;
    let after_restart: Vec<_> = health(&ended)
        .into_iter()
        .filter(|&(state, healthy)| !(state == TaskRunning && healthy == Some(true)))
        .collect();
    assert_eq!(
        after_restart,
        [(TaskRunning, Some(false)), (TaskKilled, Some(false))],
        "{ended:#?}"
    );
    assert!(!running(pid));
    second.finish().await;
}

/// An image with `sh`, `echo` and `sleep`: `busybox`, or the one the Docker executor tests
/// import.
fn busybox_image() -> Option<&'static str> {
    ["busybox", "strata-test/busybox:latest"]
        .into_iter()
        .find(|image| {
            Command::new("docker")
                .args(["image", "inspect", image])
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

fn container_task(task_id: &str, image: &str, script: &str) -> TaskSpec {
    let mut spec = shell_task(task_id, script);
    spec.kind = TaskKind::Docker(DockerSpec {
        image: image.into(),
        network: DockerNetwork::None,
        port_mappings: vec![],
        volumes: vec![],
        command: Some(CommandSpec {
            shell: true,
            value: Some(script.into()),
            ..CommandSpec::default()
        }),
        env: Default::default(),
        force_pull: false,
    });
    spec
}

#[tokio::test]
async fn a_command_check_of_a_container_runs_inside_it() {
    if let Err(err) = agent::exec::docker::engine().await {
        eprintln!("skipping: {}", agent::error_chain(&err));
        return;
    }
    let Some(image) = busybox_image() else {
        return eprintln!(
            "skipping: no busybox image (the Docker executor tests import one from /bin/busybox)"
        );
    };
    let dir = test_dir("health-docker");
    let mut harness = Harness::start(&dir).await;
    let script = "echo ok > $MESOS_SANDBOX/ready; exec sleep 60";
    let mut task = container_task("boxed", image, script);
    // Paths inside the container: only the container sees /mnt/mesos/sandbox.
    let probe = "test -f /mnt/mesos/sandbox/ready && test \"$MESOS_TASK_ID\" = boxed";
    task.health_check = Some(check(shell_check(probe), 0.0, 2));
    harness.launch(task).await;
    let healthy = updates_until(&mut harness, "boxed", is_healthy).await;
    assert_eq!(
        health(&healthy),
        [
            (TaskStarting, None),
            (TaskRunning, None),
            (TaskRunning, Some(true))
        ]
    );
    std::fs::remove_file(harness.sandbox("boxed").join("ready")).expect("removing ready");
    let ended = updates_until(&mut harness, "boxed", is_terminal).await;
    assert_eq!(
        health(&ended),
        [(TaskRunning, Some(false)), (TaskKilled, Some(false))]
    );
    harness.finish().await;
}
