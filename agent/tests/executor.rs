//! The executor running real command tasks: status flow, sandboxes, environment, kills,
//! cgroup limits, and re-adoption of running tasks by a new executor on the same state.

mod support;

use std::time::Duration;

use proto::exec::{AgentMessage, MasterMessage, TaskState};
use support::{Harness, is_root, read_when_written, running, shell_task, test_dir};

use TaskState::{TaskFailed, TaskFinished, TaskKilled, TaskRunning, TaskStarting};

#[tokio::test]
async fn a_command_runs_in_its_sandbox_and_reports_its_end() {
    if !is_root("a_command_runs_in_its_sandbox_and_reports_its_end") {
        return;
    }
    let dir = test_dir("flow");
    let mut harness = Harness::start(&dir).await;
    harness
        .launch(shell_task(
            "ok",
            "echo hello-sandbox port=$PORT0 ports=$PORTS; exit 0",
        ))
        .await;
    harness
        .launch(shell_task("bad", "echo oops >&2; exit 3"))
        .await;
    let ok = harness
        .expect("ok", &[TaskStarting, TaskRunning, TaskFinished])
        .await;
    let stdout = std::fs::read_to_string(harness.sandbox("ok").join("stdout")).expect("stdout");
    assert_eq!(stdout, "hello-sandbox port=31000 ports=31000,31001\n");
    assert_eq!(ok[2].host_ports, vec![31000, 31001]);
    let bad = harness
        .expect("bad", &[TaskStarting, TaskRunning, TaskFailed])
        .await;
    let message = bad[2].message.as_deref().expect("a message");
    assert!(message.contains("status 3"), "{message}");
    let stderr = std::fs::read_to_string(harness.sandbox("bad").join("stderr")).expect("stderr");
    assert_eq!(stderr, "oops\n");
    // Acknowledged terminal updates are forgotten: no checkpoint, no resend.
    assert!(harness.checkpoint("ok").exists());
    harness.ack(&ok[2]).await;
    harness.ack(&bad[2]).await;
    let register = harness.executor.session().await.expect("session").register;
    let AgentMessage::Register { tasks, .. } = register else {
        panic!("register expected");
    };
    assert!(tasks.is_empty(), "{tasks:?}");
    assert!(!harness.checkpoint("ok").exists());
    assert!(
        harness.sandbox("ok").join("stdout").exists(),
        "the sandbox stays"
    );
    harness.finish().await;
}

#[tokio::test]
async fn a_killed_task_is_terminated_within_its_grace() {
    if !is_root("a_killed_task_is_terminated_within_its_grace") {
        return;
    }
    let dir = test_dir("kill");
    let mut harness = Harness::start(&dir).await;
    // Ignores SIGTERM: the kill must escalate to SIGKILL after the grace.
    let stubborn = "trap '' TERM; echo $$ > pid; while :; do sleep 1; done";
    harness.launch(shell_task("stubborn", stubborn)).await;
    harness
        .launch(shell_task("sleeper", "echo $$ > pid; exec sleep 60"))
        .await;
    harness
        .expect("stubborn", &[TaskStarting, TaskRunning])
        .await;
    harness
        .expect("sleeper", &[TaskStarting, TaskRunning])
        .await;
    let stubborn_pid: i32 = read_when_written(&harness.sandbox("stubborn").join("pid"))
        .await
        .trim()
        .parse()
        .expect("pid");
    let began = tokio::time::Instant::now();
    let kill = |task_id: &str| MasterMessage::Kill {
        task_id: task_id.into(),
        grace_ms: None,
    };
    harness.send(kill("sleeper")).await;
    harness.send(kill("stubborn")).await;
    let killed = harness.next("sleeper", Some(TaskRunning)).await;
    assert_eq!(killed.state, TaskKilled);
    assert_eq!(killed.message.as_deref(), Some("killed by the framework"));
    let killed = harness.next("stubborn", Some(TaskRunning)).await;
    assert_eq!(killed.state, TaskKilled);
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert!(!running(stubborn_pid));
    // A kill right after the launch finds the wrapper before it has started the program:
    // the program started after it must still be stopped.
    harness
        .launch(shell_task("early", "echo $$ > pid; exec sleep 60"))
        .await;
    harness.send(kill("early")).await;
    let mut early = harness.next("early", None).await;
    while !early.state.is_terminal() {
        early = harness.next("early", Some(early.state)).await;
    }
    assert_eq!(early.state, TaskKilled);
    // A kill of a task the agent does not have.
    harness.send(kill("nobody")).await;
    let lost = harness.next("nobody", None).await;
    assert_eq!(lost.state, TaskState::TaskLost);
    assert_eq!(lost.message.as_deref(), Some("cannot find task"));
    harness.finish().await;
}

/// The memory and CPU limits in the task's own cgroup, as the task sees it.
#[tokio::test]
async fn a_task_runs_under_its_limits() {
    if !is_root("a_task_runs_under_its_limits") {
        return;
    }
    let dir = test_dir("limits");
    let mut harness = Harness::start(&dir).await;
    harness
        .launch(shell_task(
            "limited",
            "cat /proc/self/cgroup; exec sleep 30",
        ))
        .await;
    harness
        .expect("limited", &[TaskStarting, TaskRunning])
        .await;
    let cgroups = read_when_written(&harness.sandbox("limited").join("stdout")).await;
    let path_of = |controller: &str| {
        cgroups.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == controller)
                .then(|| path.to_owned())
        })
    };
    let memory = std::path::Path::new("/sys/fs/cgroup/memory");
    let v1 = memory.join("memory.limit_in_bytes").exists();
    if v1 {
        let path = path_of("memory").expect("a memory cgroup");
        assert!(path.contains("strata-tasks/agent-"), "{path}");
        let dir = memory.join(path.trim_start_matches('/'));
        let limit = std::fs::read_to_string(dir.join("memory.limit_in_bytes")).expect("limit");
        assert_eq!(limit.trim(), (64 * 1024 * 1024).to_string());
        let cpu = path_of("cpu").expect("a cpu cgroup");
        let quota = format!("/sys/fs/cgroup/cpu{cpu}/cpu.cfs_quota_us");
        assert_eq!(
            std::fs::read_to_string(quota).expect("quota").trim(),
            "50000"
        );
    } else {
        let path = path_of("").expect("a v2 cgroup");
        let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
        let limit = std::fs::read_to_string(dir.join("memory.max")).expect("limit");
        assert_eq!(limit.trim(), (64 * 1024 * 1024).to_string());
    }
    let kill = MasterMessage::Kill {
        task_id: "limited".into(),
        grace_ms: Some(0),
    };
    harness.send(kill).await;
    assert_eq!(
        harness.next("limited", Some(TaskRunning)).await.state,
        TaskKilled
    );
    if v1 {
        let path = path_of("memory").expect("a memory cgroup");
        let dir = memory.join(path.trim_start_matches('/'));
        assert!(!dir.exists(), "the task's cgroup is removed once it ended");
    }
    harness.finish().await;
}

/// The agent dies (its executor stops without touching the tasks); a new one on the same
/// state directory re-adopts them.
#[tokio::test]
async fn a_restarted_executor_readopts_running_tasks() {
    if !is_root("a_restarted_executor_readopts_running_tasks") {
        return;
    }
    let dir = test_dir("readopt");
    let mut first = Harness::start(&dir).await;
    first.launch(shell_task("short", "sleep 2; exit 0")).await;
    first
        .launch(shell_task("long", "echo $$ > pid; exec sleep 30"))
        .await;
    first.launch(shell_task("gone", "sleep 1; exit 5")).await;
    first.expect("short", &[TaskStarting, TaskRunning]).await;
    first.expect("long", &[TaskStarting, TaskRunning]).await;
    first.expect("gone", &[TaskStarting, TaskRunning]).await;
    let pid: i32 = read_when_written(&first.sandbox("long").join("pid"))
        .await
        .trim()
        .parse()
        .expect("pid");
    first.executor.clone().detach().await;
    // "gone" ends while no agent runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(running(pid), "tasks outlive the agent");

    let mut second = Harness::start(&dir).await;
    let AgentMessage::Register { tasks, .. } = &second.session.register else {
        panic!("register expected");
    };
    let mut ids: Vec<&str> = tasks.iter().map(|t| t.spec.task_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["gone", "long", "short"]);
    // Updates made before the master answered are sent after registration.
    second
        .send(MasterMessage::Registered {
            known_tasks: vec!["long".into(), "ghost".into()],
        })
        .await;
    let gone = second.next("gone", Some(TaskRunning)).await;
    assert_eq!(gone.state, TaskFailed);
    assert!(
        gone.message
            .as_deref()
            .is_some_and(|m| m.contains("status 5")),
        "{gone:?}"
    );
    let ghost = second.next("ghost", None).await;
    assert_eq!(ghost.state, TaskState::TaskLost);
    assert_eq!(ghost.reason.as_deref(), Some("REASON_RECONCILIATION"));
    let short = second.next("short", Some(TaskRunning)).await;
    assert_eq!(short.state, TaskFinished, "{short:?}");
    assert!(running(pid), "the long task still runs after re-adoption");
    let kill = MasterMessage::Kill {
        task_id: "long".into(),
        grace_ms: Some(500),
    };
    second.send(kill).await;
    assert_eq!(
        second.next("long", Some(TaskRunning)).await.state,
        TaskKilled
    );
    assert!(!running(pid));
    second.finish().await;
}

#[tokio::test]
async fn invalid_tasks_are_refused_without_running() {
    let dir = test_dir("invalid");
    let mut harness = Harness::start(&dir).await;
    let mut spec = shell_task("empty", "");
    spec.kind = proto::exec::TaskKind::Command(Default::default());
    harness.launch(spec).await;
    let error = harness.next("empty", None).await;
    assert_eq!(error.state, TaskState::TaskError);
    assert_eq!(error.reason.as_deref(), Some("REASON_TASK_INVALID"));
    // Unacknowledged, it is resent after each registration.
    harness
        .send(MasterMessage::Registered {
            known_tasks: vec![],
        })
        .await;
    let again = harness.session.outgoing.recv().await.expect("resent");
    assert_eq!(again, AgentMessage::Status(error.clone()));
    harness.ack(&error).await;
    harness
        .send(MasterMessage::Registered {
            known_tasks: vec![],
        })
        .await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), harness.session.outgoing.recv());
    assert!(quiet.await.is_err(), "nothing to resend once acknowledged");
    harness.finish().await;
}

#[tokio::test]
async fn a_task_over_its_memory_limit_fails_with_the_memory_reason() {
    if !is_root("a_task_over_its_memory_limit_fails_with_the_memory_reason") {
        return;
    }
    let dir = test_dir("oom");
    let mut harness = Harness::start(&dir).await;
    // The shell keeps the output of `$(...)` in memory: 200 MB against a 64 MB limit.
    let hog = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); exit 0";
    harness.launch(shell_task("hog", hog)).await;
    let updates = harness
        .expect("hog", &[TaskStarting, TaskRunning, TaskFailed])
        .await;
    assert_eq!(
        updates[2].reason.as_deref(),
        Some("REASON_CONTAINER_LIMITATION_MEMORY"),
        "{updates:?}"
    );
    harness.finish().await;
}
