//! Docker tasks through the engine: pull when absent (or forced), create a container named
//! `strata-<agent scope>-<task>` with the task's labels, environment, network, ports, volumes
//! and limits, start it, wait for it, copy its logs into the sandbox, and remove it. A
//! restarted agent finds its containers again by name.

use std::{collections::BTreeMap, collections::HashMap, io::Write as _, path::PathBuf};

use bollard::{
    Docker,
    container::LogOutput,
    errors::Error as BollardError,
    models::{ContainerCreateBody, HostConfig, PortBinding},
    query_parameters::{
        CreateContainerOptionsBuilder, CreateImageOptions, LogsOptions,
        RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptions,
    },
};
use futures_util::{StreamExt as _, TryStreamExt as _};
use proto::exec::{DockerNetwork, DockerSpec, TaskSpec};

use super::{sandbox::command_line, status::Ended};
use crate::collect::docker::DockerClient;

/// What a container task needs besides its spec.
#[derive(Debug, Clone)]
pub struct ContainerTask {
    pub spec: TaskSpec,
    pub docker: DockerSpec,
    /// The container name.
    pub name: String,
    /// The agent's scope (the `strata.agent` label).
    pub scope: String,
    pub env: BTreeMap<String, String>,
    pub sandbox: PathBuf,
}

/// Failures on the way to a running container.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("no docker engine answers on this host")]
    NoEngine,
    #[error("connecting to the docker engine")]
    Connect(#[source] crate::collect::docker::DockerError),
    #[error("pulling image {0}")]
    Pull(String, #[source] BollardError),
    #[error("creating the container")]
    Create(#[source] BollardError),
    #[error("starting the container")]
    Start(#[source] BollardError),
}

/// The engine, version negotiated.
pub async fn engine() -> Result<Docker, LaunchError> {
    match DockerClient::connect().await {
        Ok(Some(client)) => Ok(client.engine().clone()),
        Ok(None) => Err(LaunchError::NoEngine),
        Err(err) => Err(LaunchError::Connect(err)),
    }
}

/// `image` with `:latest` when it names no tag or digest (a pull without a tag would fetch
/// every tag), as (image, tag).
fn image_and_tag(image: &str) -> (&str, &str) {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains('@') {
        return (image, "");
    }
    match last.rsplit_once(':') {
        Some((_, tag)) => (&image[..image.len() - tag.len() - 1], tag),
        None => (image, "latest"),
    }
}

async fn pull(docker: &Docker, spec: &DockerSpec) -> Result<(), LaunchError> {
    if !spec.force_pull && docker.inspect_image(&spec.image).await.is_ok() {
        return Ok(());
    }
    let (image, tag) = image_and_tag(&spec.image);
    let options = CreateImageOptions {
        from_image: Some(image.to_owned()),
        tag: (!tag.is_empty()).then(|| tag.to_owned()),
        ..CreateImageOptions::default()
    };
    let pulling = docker.create_image(Some(options), None, None);
    pulling
        .try_for_each(|_| async { Ok(()) })
        .await
        .map_err(|e| LaunchError::Pull(spec.image.clone(), e))
}

/// The container's configuration.
pub fn create_body(task: &ContainerTask) -> ContainerCreateBody {
    let spec = &task.docker;
    let network = match spec.network {
        DockerNetwork::Host => "host",
        DockerNetwork::Bridge => "bridge",
        DockerNetwork::None => "none",
    };
    let mut port_bindings = HashMap::new();
    for mapping in &spec.port_mappings {
        let key = format!("{}/{}", mapping.container_port, mapping.protocol);
        let binding = PortBinding {
            host_ip: Some("0.0.0.0".into()),
            host_port: Some(mapping.host_port.to_string()),
        };
        let bindings: &mut Option<Vec<PortBinding>> = port_bindings.entry(key).or_default();
        bindings.get_or_insert_with(Vec::new).push(binding);
    }
    let binds = spec.volumes.iter().map(|v| {
        let mode = if v.read_only { "ro" } else { "rw" };
        format!("{}:{}:{mode}", v.host_path, v.container_path)
    });
    let cpus = task.spec.resources.scalar("cpus");
    let mem = task.spec.resources.scalar("mem");
    let labels = [
        ("strata.task_id", task.spec.task_id.clone()),
        ("strata.framework_id", task.spec.framework_id.clone()),
        ("strata.agent", task.scope.clone()),
    ];
    let mut env = spec.env.clone();
    env.extend(task.env.clone());
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.as_ref().and_then(|c| command_line(c).ok()),
        env: Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
        exposed_ports: (!port_bindings.is_empty()).then(|| port_bindings.keys().cloned().collect()),
        host_config: Some(HostConfig {
            network_mode: Some(network.into()),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            binds: Some(binds.collect()),
            nano_cpus: (cpus > 0.0).then_some((cpus * 1e9) as i64),
            memory: (mem > 0.0).then_some((mem * 1024.0 * 1024.0) as i64),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

/// Pulls, creates and starts the container of `task`; its id.
pub async fn launch(docker: &Docker, task: &ContainerTask) -> Result<String, LaunchError> {
    pull(docker, &task.docker).await?;
    // A container left by an earlier run of the same task id would block the name.
    let force = RemoveContainerOptionsBuilder::new().force(true).build();
    let _ = docker.remove_container(&task.name, Some(force)).await;
    let options = CreateContainerOptionsBuilder::new()
        .name(&task.name)
        .build();
    let created = docker
        .create_container(Some(options), create_body(task))
        .await
        .map_err(LaunchError::Create)?;
    docker
        .start_container(&created.id, None)
        .await
        .map_err(LaunchError::Start)?;
    Ok(created.id)
}

/// Waits for container `id` to stop, then concludes. The wait is renewed while the
/// container runs (the engine client times requests out after a while).
pub async fn watch(docker: &Docker, id: &str, sandbox: &PathBuf) -> Ended {
    loop {
        let options = WaitContainerOptions {
            condition: "not-running".into(),
        };
        // A non-zero exit comes as a wait error; the code is read from inspect either way.
        match docker.wait_container(id, Some(options)).next().await {
            Some(Err(err)) if !matches!(err, BollardError::DockerContainerWaitError { .. }) => {
                tracing::debug!(container = id, error = %crate::error_chain(&err), "waiting for a container");
            }
            _ => {}
        }
        let inspected = docker.inspect_container(id, None).await;
        match inspected.map(|i| i.state.and_then(|s| s.running)) {
            Ok(Some(true)) | Err(BollardError::RequestTimeoutError) => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            _ => return conclude(docker, id, sandbox).await,
        }
    }
}

/// How a stopped container ended (exit code, OOM), after copying its logs into the sandbox;
/// removes it. A container that is gone: [`Ended::Vanished`].
pub async fn conclude(docker: &Docker, id: &str, sandbox: &PathBuf) -> Ended {
    let Ok(inspected) = docker.inspect_container(id, None).await else {
        return Ended::Vanished;
    };
    if let Err(err) = copy_logs(docker, id, sandbox).await {
        tracing::warn!(container = id, error = %err, "cannot copy the container's logs");
    }
    let state = inspected.state.unwrap_or_default();
    let force = RemoveContainerOptionsBuilder::new().force(true).build();
    if let Err(err) = docker.remove_container(id, Some(force)).await {
        tracing::warn!(container = id, error = %crate::error_chain(&err), "cannot remove a container");
    }
    Ended::Exit {
        code: state.exit_code,
        signal: None,
        oom: state.oom_killed.unwrap_or(false),
    }
}

async fn copy_logs(docker: &Docker, id: &str, sandbox: &PathBuf) -> std::io::Result<()> {
    std::fs::create_dir_all(sandbox)?;
    let mut stdout = std::fs::File::create(sandbox.join("stdout"))?;
    let mut stderr = std::fs::File::create(sandbox.join("stderr"))?;
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        ..LogsOptions::default()
    };
    let mut logs = docker.logs(id, Some(options));
    while let Some(chunk) = logs.next().await {
        match chunk.map_err(std::io::Error::other)? {
            LogOutput::StdErr { message } => stderr.write_all(&message)?,
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                stdout.write_all(&message)?;
            }
            LogOutput::StdIn { .. } => {}
        }
    }
    Ok(())
}

/// The container named `name`: its id and whether it runs; `None` when there is none.
pub async fn find(docker: &Docker, name: &str) -> Option<(String, bool)> {
    let inspected = docker.inspect_container(name, None).await.ok()?;
    let running = inspected.state.and_then(|s| s.running).unwrap_or(false);
    Some((inspected.id?, running))
}

/// Stops container `id`: SIGTERM, then SIGKILL after `grace_ms`.
pub async fn stop(docker: &Docker, id: &str, grace_ms: u64) -> Result<(), BollardError> {
    let seconds = i32::try_from(grace_ms.div_ceil(1000)).unwrap_or(i32::MAX);
    let options = StopContainerOptionsBuilder::new().t(seconds).build();
    docker.stop_container(id, Some(options)).await
}

#[cfg(test)]
mod tests {
    use proto::exec::{CommandSpec, PortMapping, ResourceSpec, TaskKind, Volume};

    use super::*;

    #[test]
    fn images_get_a_tag() {
        assert_eq!(image_and_tag("busybox"), ("busybox", "latest"));
        assert_eq!(image_and_tag("busybox:1.36"), ("busybox", "1.36"));
        assert_eq!(image_and_tag("reg:5000/a/b"), ("reg:5000/a/b", "latest"));
        assert_eq!(image_and_tag("reg:5000/a/b:v2"), ("reg:5000/a/b", "v2"));
        assert_eq!(image_and_tag("a@sha256:00"), ("a@sha256:00", ""));
    }

    #[test]
    fn container_configuration_follows_the_spec() {
        let docker = DockerSpec {
            image: "busybox".into(),
            network: DockerNetwork::Bridge,
            port_mappings: vec![PortMapping {
                host_port: 31000,
                container_port: 80,
                protocol: "tcp".into(),
            }],
            volumes: vec![Volume {
                host_path: "/data".into(),
                container_path: "/d".into(),
                read_only: true,
            }],
            command: Some(CommandSpec {
                shell: true,
                value: Some("httpd -f".into()),
                ..CommandSpec::default()
            }),
            env: [("A".to_owned(), "1".to_owned())].into(),
            force_pull: false,
        };
        let spec = TaskSpec {
            task_id: "t".into(),
            framework_id: "f".into(),
            name: "t".into(),
            kind: TaskKind::Docker(docker.clone()),
            resources: ResourceSpec {
                scalars: [("cpus".to_owned(), 0.5), ("mem".to_owned(), 64.0)].into(),
                ..ResourceSpec::default()
            },
            kill_grace_ms: 0,
            labels: BTreeMap::new(),
            health_check: None,
        };
        let task = ContainerTask {
            spec,
            docker,
            name: "strata-x-t".into(),
            scope: "x".into(),
            env: [("PORT0".to_owned(), "31000".to_owned())].into(),
            sandbox: "/sb".into(),
        };
        let body = create_body(&task);
        assert_eq!(body.cmd.expect("cmd"), ["/bin/sh", "-c", "httpd -f"]);
        let env = body.env.expect("env");
        assert!(env.contains(&"A=1".to_owned()) && env.contains(&"PORT0=31000".to_owned()));
        assert_eq!(body.labels.expect("labels")["strata.task_id"], "t");
        let host = body.host_config.expect("host config");
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        assert_eq!(host.binds.expect("binds"), ["/data:/d:ro"]);
        assert_eq!(host.network_mode.as_deref(), Some("bridge"));
        let bindings = host.port_bindings.expect("ports");
        let binding = &bindings["80/tcp"].as_ref().expect("binding")[0];
        assert_eq!(binding.host_port.as_deref(), Some("31000"));
    }
}
