//! The executor running Docker tasks against the real engine (skipped, saying why, when no
//! engine answers). Nothing is pulled: the image is the static busybox `cargo xtask setup`
//! imports.

#[allow(dead_code, reason = "helpers shared with the command-task tests")]
mod support;

use std::process::Command;

use proto::exec::{CommandSpec, DockerNetwork, DockerSpec, MasterMessage, TaskKind, TaskSpec};
use support::{Harness, shell_task, test_dir};

use proto::exec::TaskState::{TaskFailed, TaskFinished, TaskKilled, TaskRunning, TaskStarting};

const IMPORTED: &str = "strata-test/busybox:latest";

/// The tests' image, which `cargo xtask setup` imports (with `sh`, `echo` and `sleep`).
fn image() -> String {
    let present = Command::new("docker")
        .args(["image", "inspect", IMPORTED])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        present,
        "the Docker engine has no {IMPORTED}: run `cargo xtask setup`, which imports it"
    );
    IMPORTED.into()
}

fn docker_task(task_id: &str, image: &str, script: &str) -> TaskSpec {
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
        env: [("GREETING".to_owned(), "hello".to_owned())].into(),
        force_pull: false,
    });
    spec
}

fn container_exists(name_part: &str) -> bool {
    let output = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout).contains(name_part)
}

#[tokio::test]
async fn container_tasks_run_fail_and_are_killed() {
    if let Err(err) = agent::exec::docker::engine().await {
        eprintln!("skipping: {}", agent::error_chain(&err));
        return;
    }
    let image = image();
    let dir = test_dir("docker");
    let mut harness = Harness::start(&dir).await;
    let script = "echo $GREETING port=$PORT0 in $MESOS_SANDBOX; exit 0";
    harness.launch(docker_task("dok", &image, script)).await;
    harness.launch(docker_task("dbad", &image, "exit 3")).await;
    harness
        .launch(docker_task("dlong", &image, "sleep 60"))
        .await;
    let missing = docker_task("dmissing", "strata-test/absent:none", "true");
    harness.launch(missing).await;

    harness
        .expect("dok", &[TaskStarting, TaskRunning, TaskFinished])
        .await;
    let stdout = std::fs::read_to_string(harness.sandbox("dok").join("stdout")).expect("stdout");
    assert_eq!(stdout, "hello port=31000 in /mnt/mesos/sandbox\n");
    let bad = harness
        .expect("dbad", &[TaskStarting, TaskRunning, TaskFailed])
        .await;
    let message = bad[2].message.clone().unwrap_or_default();
    assert_eq!(message, "container exited with status 3");
    let failed = harness
        .expect("dmissing", &[TaskStarting, TaskFailed])
        .await;
    assert_eq!(
        failed[1].reason.as_deref(),
        Some("REASON_CONTAINER_LAUNCH_FAILED")
    );
    assert!(
        failed[1]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("pulling image")),
        "{failed:?}"
    );

    harness.expect("dlong", &[TaskStarting, TaskRunning]).await;
    let kill = MasterMessage::Kill {
        task_id: "dlong".into(),
        grace_ms: Some(1000),
    };
    harness.send(kill).await;
    assert_eq!(
        harness.next("dlong", Some(TaskRunning)).await.state,
        TaskKilled
    );
    let scope = agent::exec::naming::scope(&dir.join("state"));
    assert!(!container_exists(&scope), "the task containers are removed");
    harness.finish().await;
}
