//! Mesos `TaskInfo` JSON into the agent's [`TaskSpec`]: command or Docker container, env,
//! volumes, port mappings, kill grace period, labels, health check. Errors name the field at
//! fault and become TASK_ERROR updates.

use std::collections::BTreeMap;

use proto::exec::{
    CommandSpec, DockerNetwork, DockerSpec, HealthCheckKind, HealthCheckSpec, PortMapping,
    TaskKind, TaskSpec, Volume,
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

/// A port field of a health check (`health_check.http.port`), 1 to 65535.
fn check_port(v: &Value, field: &str) -> Result<u16, String> {
    let port = v.as_u64().ok_or_else(|| format!("{field} is missing"))?;
    u16::try_from(port)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("{field} {port} is not a port (1 to 65535)"))
}

/// A duration field of a health check in seconds: absent is `default`, otherwise a finite,
/// non-negative number.
fn check_seconds(check: &Value, name: &str, default: f64) -> Result<f64, String> {
    match &check[name] {
        Value::Null => Ok(default),
        v => v
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| {
                format!("health_check.{name} must be a number of seconds, not negative")
            }),
    }
}

/// Mesos `HealthCheck` JSON, with Mesos's defaults for what is absent. Without `type`, the
/// one of `http`, `tcp` and `command` that is given says it.
fn health_check(check: &Value) -> Result<HealthCheckSpec, String> {
    let given: Vec<&str> = ["http", "tcp", "command"]
        .into_iter()
        .filter(|k| check[*k].is_object())
        .collect();
    let kind = match (check["type"].as_str(), given.as_slice()) {
        (Some(kind), _) => kind.to_owned(),
        (None, [one]) => one.to_ascii_uppercase(),
        (None, _) => return Err("health_check.type is missing".into()),
    };
    let kind = match kind.as_str() {
        "HTTP" => {
            let http = &check["http"];
            let port = check_port(&http["port"], "health_check.http.port")?;
            let path = http["path"].as_str().unwrap_or("/");
            if !path.starts_with('/') {
                return Err(format!("health_check.http.path {path} must start with /"));
            }
            let scheme = http["scheme"].as_str().unwrap_or("http");
            if scheme != "http" {
                return Err(format!(
                    "health_check.http.scheme {scheme} is not supported (use http)"
                ));
            }
            HealthCheckKind::Http {
                port,
                path: path.to_owned(),
                scheme: scheme.to_owned(),
            }
        }
        "TCP" => HealthCheckKind::Tcp {
            port: check_port(&check["tcp"]["port"], "health_check.tcp.port")?,
        },
        "COMMAND" => {
            let cmd = check
                .get("command")
                .filter(|c| c.is_object())
                .map(command)
                .ok_or("health_check.command is missing")?;
            if cmd.value.as_deref().is_none_or(|v| v.trim().is_empty()) {
                return Err("health_check.command.value is missing".into());
            }
            HealthCheckKind::Command(cmd)
        }
        other => {
            return Err(format!(
                "health_check.type {other} is not supported (use HTTP, TCP or COMMAND)"
            ));
        }
    };
    let consecutive_failures = match &check["consecutive_failures"] {
        Value::Null => HealthCheckSpec::DEFAULT_CONSECUTIVE_FAILURES,
        v => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or("health_check.consecutive_failures must be a whole number, not negative")?,
    };
    Ok(HealthCheckSpec {
        kind,
        delay_seconds: check_seconds(
            check,
            "delay_seconds",
            HealthCheckSpec::DEFAULT_DELAY_SECONDS,
        )?,
        interval_seconds: check_seconds(
            check,
            "interval_seconds",
            HealthCheckSpec::DEFAULT_INTERVAL_SECONDS,
        )?,
        timeout_seconds: check_seconds(
            check,
            "timeout_seconds",
            HealthCheckSpec::DEFAULT_TIMEOUT_SECONDS,
        )?,
        consecutive_failures,
        grace_period_seconds: check_seconds(
            check,
            "grace_period_seconds",
            HealthCheckSpec::DEFAULT_GRACE_PERIOD_SECONDS,
        )?,
    })
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
    let health_check = match &info["health_check"] {
        Value::Null => None,
        check if check.is_object() => Some(health_check(check)?),
        _ => return Err("health_check must be an object".into()),
    };
    Ok(ParsedTask {
        spec: TaskSpec {
            task_id: task_id.to_owned(),
            framework_id: framework_id.to_owned(),
            name: info["name"].as_str().unwrap_or(task_id).to_owned(),
            kind,
            resources: resources::to_spec(&allotment),
            kill_grace_ms,
            labels,
            health_check,
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

    fn with_check(check: Value) -> Result<ParsedTask, String> {
        parse(
            &json!({
                "task_id": { "value": "t" }, "agent_id": { "value": "a" }, "resources": cpus(),
                "command": { "value": "sleep 60" }, "health_check": check
            }),
            "f",
        )
    }

    fn check_of(check: Value) -> HealthCheckSpec {
        let task = with_check(check).expect("valid");
        task.spec.health_check.expect("a health check")
    }

    #[test]
    fn health_checks_parse_with_mesos_defaults() {
        let http = check_of(json!({ "type": "HTTP", "http": { "port": 31000 } }));
        assert_eq!(
            http.kind,
            HealthCheckKind::Http {
                port: 31000,
                path: "/".into(),
                scheme: "http".into()
            }
        );
        assert_eq!(
            (
                http.delay_seconds,
                http.interval_seconds,
                http.timeout_seconds
            ),
            (15.0, 10.0, 20.0)
        );
        assert_eq!(http.consecutive_failures, 3);
        assert_eq!(http.grace_period_seconds, 10.0);
        let tcp = check_of(json!({
            "type": "TCP", "tcp": { "port": 8080 }, "delay_seconds": 0.5, "interval_seconds": 0.25,
            "timeout_seconds": 1, "consecutive_failures": 5, "grace_period_seconds": 0
        }));
        assert_eq!(tcp.kind, HealthCheckKind::Tcp { port: 8080 });
        assert_eq!(
            (tcp.delay_seconds, tcp.interval_seconds, tcp.timeout_seconds),
            (0.5, 0.25, 1.0)
        );
        assert_eq!(
            (tcp.consecutive_failures, tcp.grace_period_seconds),
            (5, 0.0)
        );
        let command = check_of(json!({
            "type": "COMMAND",
            "command": { "value": "test -f ready", "environment": { "variables": [{ "name": "A", "value": "1" }] } },
            "http": { "port": 1 }
        }));
        let HealthCheckKind::Command(cmd) = &command.kind else {
            panic!("a command check: {command:?}")
        };
        assert!(cmd.shell);
        assert_eq!(cmd.value.as_deref(), Some("test -f ready"));
        assert_eq!(cmd.env["A"], "1");
        // Without a type, the one check given says it (Mesos before 1.2).
        let untyped = check_of(json!({ "http": { "port": 80, "path": "/ping" } }));
        assert!(matches!(untyped.kind, HealthCheckKind::Http { ref path, .. } if path == "/ping"));
        let none = with_check(Value::Null).expect("valid");
        assert_eq!(none.spec.health_check, None);
    }

    #[test]
    fn malformed_health_checks_name_the_field() {
        let cases = [
            (
                json!({ "type": "HTTP" }),
                "health_check.http.port is missing",
            ),
            (
                json!({ "type": "HTTP", "http": { "port": 70000 } }),
                "health_check.http.port 70000",
            ),
            (
                json!({ "type": "HTTP", "http": { "port": 80, "path": "x" } }),
                "health_check.http.path",
            ),
            (
                json!({ "type": "HTTP", "http": { "port": 80, "scheme": "https" } }),
                "health_check.http.scheme https",
            ),
            (
                json!({ "type": "TCP", "tcp": {} }),
                "health_check.tcp.port is missing",
            ),
            (
                json!({ "type": "TCP", "tcp": { "port": 0 } }),
                "health_check.tcp.port 0",
            ),
            (
                json!({ "type": "COMMAND" }),
                "health_check.command is missing",
            ),
            (
                json!({ "type": "COMMAND", "command": { "value": " " } }),
                "health_check.command.value",
            ),
            (json!({ "type": "GRPC" }), "health_check.type GRPC"),
            (json!({}), "health_check.type is missing"),
            (
                json!({ "type": "TCP", "tcp": { "port": 1 }, "interval_seconds": -1 }),
                "health_check.interval_seconds",
            ),
            (
                json!({ "type": "TCP", "tcp": { "port": 1 }, "delay_seconds": "5" }),
                "health_check.delay_seconds",
            ),
            (
                json!({ "type": "TCP", "tcp": { "port": 1 }, "timeout_seconds": -0.5 }),
                "health_check.timeout_seconds",
            ),
            (
                json!({ "type": "TCP", "tcp": { "port": 1 }, "grace_period_seconds": -2 }),
                "health_check.grace_period_seconds",
            ),
            (
                json!({ "type": "TCP", "tcp": { "port": 1 }, "consecutive_failures": 1.5 }),
                "health_check.consecutive_failures",
            ),
            (json!("TCP"), "health_check must be an object"),
        ];
        for (check, wanted) in cases {
            let err = with_check(check.clone()).expect_err("invalid");
            assert!(err.contains(wanted), "{check}: {err}");
        }
    }
}
