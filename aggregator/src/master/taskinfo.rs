//! Mesos `TaskInfo` JSON into the agent's [`TaskSpec`]: command or Docker container, env,
//! volumes, port mappings, kill grace period, labels. Errors name the field at fault and
//! become TASK_ERROR updates.

use std::collections::BTreeMap;

use proto::exec::{
    CommandSpec, DockerNetwork, DockerSpec, PortMapping, TaskKind, TaskSpec, Volume,
};
use scheduler::pools::Allotment;
use serde_json::Value;

use super::resources;

/// Default time between SIGTERM and SIGKILL.
pub const DEFAULT_GRACE_MS: u64 = 3000;

/// A parsed task: what to send to the agent and what it uses.
#[derive(Debug, Clone)]
pub struct ParsedTask {
    pub spec: TaskSpec,
    pub agent_id: String,
    pub resources: Allotment,
    pub resources_json: Value,
}

/// `{"value": "..."}` ids.
pub fn value_of(v: &Value) -> Option<&str> {
    v["value"].as_str().filter(|s| !s.is_empty())
}

fn env(v: &Value) -> BTreeMap<String, String> {
    v["variables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|var| {
            Some((
                var["name"].as_str()?.to_owned(),
                var["value"].as_str().unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

fn command(v: &Value) -> CommandSpec {
    CommandSpec {
        shell: v["shell"].as_bool().unwrap_or(true),
        value: v["value"].as_str().map(str::to_owned),
        arguments: v["arguments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        env: env(&v["environment"]),
    }
}

/// Parses one `TaskInfo` of framework `framework_id`.
pub fn parse(info: &Value, framework_id: &str) -> Result<ParsedTask, String> {
    let task_id = value_of(&info["task_id"]).ok_or("task_id.value is missing")?;
    let agent_id = value_of(&info["agent_id"])
        .or_else(|| value_of(&info["slave_id"]))
        .ok_or("agent_id.value is missing")?;
    let allotment = resources::parse(&info["resources"])?;
    if allotment.is_empty() {
        return Err("resources: a task needs some resources (cpus or mem)".into());
    }
    let container = &info["container"];
    let kind = match container["type"].as_str() {
        Some("DOCKER") => {
            let docker = &container["docker"];
            let image = docker["image"]
                .as_str()
                .filter(|s| !s.is_empty())
                .ok_or("container.docker.image is missing")?;
            let network = match docker["network"].as_str().unwrap_or("HOST") {
                "HOST" => DockerNetwork::Host,
                "BRIDGE" | "USER" => DockerNetwork::Bridge,
                "NONE" => DockerNetwork::None,
                other => return Err(format!("container.docker.network {other} is unknown")),
            };
            let ports = allotment.merged().ranges("ports");
            let mut port_mappings = Vec::new();
            for (i, m) in docker["port_mappings"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let host = m["host_port"].as_u64().ok_or_else(|| {
                    format!("container.docker.port_mappings[{i}].host_port is missing")
                })?;
                let container_port = m["container_port"].as_u64().ok_or_else(|| {
                    format!("container.docker.port_mappings[{i}].container_port is missing")
                })?;
                let (Ok(host_port), Ok(container_port)) =
                    (u16::try_from(host), u16::try_from(container_port))
                else {
                    return Err(format!(
                        "container.docker.port_mappings[{i}]: ports must be below 65536"
                    ));
                };
                if !ports.contains(&scheduler::resources::Ranges::new([(host, host)])) {
                    return Err(format!(
                        "container.docker.port_mappings[{i}].host_port {host} is not in the task's ports resource"
                    ));
                }
                port_mappings.push(PortMapping {
                    host_port,
                    container_port,
                    protocol: m["protocol"].as_str().unwrap_or("tcp").to_owned(),
                });
            }
            let volumes = container["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| {
                    Some(Volume {
                        host_path: v["host_path"].as_str()?.to_owned(),
                        container_path: v["container_path"].as_str()?.to_owned(),
                        read_only: v["mode"].as_str() == Some("RO"),
                    })
                })
                .collect();
            let cmd = info.get("command").map(command);
            let env = cmd.as_ref().map(|c| c.env.clone()).unwrap_or_default();
            TaskKind::Docker(DockerSpec {
                image: image.to_owned(),
                network,
                port_mappings,
                volumes,
                command: cmd.filter(|c| c.value.is_some() || !c.arguments.is_empty()),
                env,
                force_pull: docker["force_pull_image"].as_bool().unwrap_or(false),
            })
        }
        Some("MESOS") | None => {
            let cmd = info
                .get("command")
                .map(command)
                .ok_or("command is missing (and no Docker container given)")?;
            if cmd.value.as_deref().is_none_or(str::is_empty) {
                return Err("command.value is missing".into());
            }
            TaskKind::Command(cmd)
        }
        Some(other) => {
            return Err(format!(
                "container.type {other} is not supported (use DOCKER or MESOS)"
            ));
        }
    };
    let kill_grace_ms = info["kill_policy"]["grace_period"]["nanoseconds"]
        .as_u64()
        .map_or(DEFAULT_GRACE_MS, |ns| ns / 1_000_000);
    let labels = info["labels"]["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            Some((
                l["key"].as_str()?.to_owned(),
                l["value"].as_str().unwrap_or("").to_owned(),
            ))
        })
        .collect();
    Ok(ParsedTask {
        spec: TaskSpec {
            task_id: task_id.to_owned(),
            framework_id: framework_id.to_owned(),
            name: info["name"].as_str().unwrap_or(task_id).to_owned(),
            kind,
            resources: resources::to_spec(&allotment),
            kill_grace_ms,
            labels,
        },
        agent_id: agent_id.to_owned(),
        resources_json: resources::to_json(&allotment, None),
        resources: allotment,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cpus() -> Value {
        json!([{ "name": "cpus", "type": "SCALAR", "scalar": { "value": 0.1 } },
               { "name": "ports", "type": "RANGES", "ranges": { "range": [{ "begin": 31000, "end": 31000 }] } }])
    }

    #[test]
    fn command_and_docker_tasks_parse() {
        let task = parse(&json!({
            "task_id": { "value": "t1" }, "agent_id": { "value": "a1" }, "name": "echo",
            "resources": cpus(),
            "command": { "value": "echo hi", "environment": { "variables": [{ "name": "A", "value": "1" }] } },
            "kill_policy": { "grace_period": { "nanoseconds": 2_000_000_000u64 } }
        }), "f1").expect("valid");
        assert_eq!(task.agent_id, "a1");
        assert_eq!(task.spec.kill_grace_ms, 2000);
        let TaskKind::Command(cmd) = &task.spec.kind else {
            panic!("command task")
        };
        assert!(cmd.shell);
        assert_eq!(cmd.env["A"], "1");
        let docker = parse(&json!({
            "task_id": { "value": "t2" }, "agent_id": { "value": "a1" }, "resources": cpus(),
            "container": { "type": "DOCKER", "docker": { "image": "busybox", "network": "BRIDGE",
                "port_mappings": [{ "host_port": 31000, "container_port": 80 }] } }
        }), "f1").expect("valid");
        let TaskKind::Docker(d) = &docker.spec.kind else {
            panic!("docker task")
        };
        assert_eq!(d.port_mappings[0].host_port, 31000);
        assert!(d.command.is_none());
    }

    #[test]
    fn invalid_tasks_name_the_field() {
        let err = |v: Value| parse(&v, "f").expect_err("invalid");
        assert!(err(json!({ "agent_id": { "value": "a" } })).contains("task_id"));
        assert!(err(json!({ "task_id": { "value": "t" }, "agent_id": { "value": "a" }, "resources": cpus() })).contains("command"));
        let e = err(
            json!({ "task_id": { "value": "t" }, "agent_id": { "value": "a" }, "resources": cpus(),
            "container": { "type": "DOCKER", "docker": { "image": "x", "port_mappings": [{ "host_port": 40000, "container_port": 1 }] } } }),
        );
        assert!(e.contains("not in the task's ports"), "{e}");
    }
}
