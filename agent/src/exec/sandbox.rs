//! What a task is given before it runs: its sandbox directory
//! (`<work-dir>/sandboxes/<framework>/<task>/`), its environment (the spec's plus
//! `MESOS_SANDBOX`, `MESOS_TASK_ID`, `MESOS_FRAMEWORK_ID`, `HOST`, `PORTS`, `PORT`,
//! `PORT0..n`), the command line of a command task, and the check that a spec (with its
//! health check) can run.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use proto::exec::{CommandSpec, HealthCheckKind, HealthCheckSpec, TaskKind, TaskSpec};

use super::naming::file_name;

/// The sandbox directory of a task.
pub fn sandbox_dir(work_dir: &Path, spec: &TaskSpec) -> PathBuf {
    sandbox_of(work_dir, &spec.framework_id, &spec.task_id)
}

/// The sandbox directory of a framework's task, whether or not the agent still tracks it.
pub fn sandbox_of(work_dir: &Path, framework_id: &str, task_id: &str) -> PathBuf {
    work_dir
        .join("sandboxes")
        .join(file_name(framework_id))
        .join(file_name(task_id))
}

/// The environment of a task: the spec's variables, then the agent's (which win).
pub fn environment(
    spec: &TaskSpec,
    own: &BTreeMap<String, String>,
    sandbox: &str,
    hostname: &str,
) -> BTreeMap<String, String> {
    let mut env = own.clone();
    env.insert("MESOS_SANDBOX".into(), sandbox.to_owned());
    env.insert("MESOS_TASK_ID".into(), spec.task_id.clone());
    env.insert("MESOS_FRAMEWORK_ID".into(), spec.framework_id.clone());
    env.insert("HOST".into(), hostname.to_owned());
    let ports = spec.resources.range_values("ports");
    let list: Vec<String> = ports.iter().map(u64::to_string).collect();
    env.insert("PORTS".into(), list.join(","));
    if let Some(first) = list.first() {
        env.insert("PORT".into(), first.clone());
    }
    for (index, port) in list.into_iter().enumerate() {
        env.insert(format!("PORT{index}"), port);
    }
    env
}

/// The program and its arguments for a command: `/bin/sh -c VALUE` for a shell command;
/// otherwise, as Mesos does, `value` (or the first argument) is the program and `arguments`
/// its argv from argv[1] on (`arguments[0]` is argv[0], which the wrapper cannot pass on).
pub fn command_line(command: &CommandSpec) -> Result<Vec<String>, String> {
    if command.shell {
        let value = command
            .value
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .ok_or("a shell command needs a value")?;
        return Ok(vec!["/bin/sh".into(), "-c".into(), value.to_owned()]);
    }
    let program = match (&command.value, command.arguments.first()) {
        (Some(value), _) if !value.is_empty() => value.clone(),
        (_, Some(first)) if !first.is_empty() => first.clone(),
        _ => return Err("a command needs a value or arguments".into()),
    };
    let mut line = vec![program];
    line.extend(command.arguments.iter().skip(1).cloned());
    Ok(line)
}

/// Why a spec cannot run, if it cannot.
pub fn invalid(spec: &TaskSpec) -> Option<String> {
    if spec.task_id.is_empty() {
        return Some("the task has no id".into());
    }
    if spec.framework_id.is_empty() {
        return Some("the task has no framework id".into());
    }
    let scalars = spec.resources.scalars.values();
    if scalars.clone().any(|v| !v.is_finite() || *v < 0.0) {
        return Some("resources must be finite and not negative".into());
    }
    let kind = match &spec.kind {
        TaskKind::Command(command) => command_line(command).err(),
        TaskKind::Docker(docker) if docker.image.trim().is_empty() => {
            Some("a docker task needs an image".into())
        }
        TaskKind::Docker(docker) => docker.command.as_ref().and_then(|c| command_line(c).err()),
    };
    kind.or_else(|| spec.health_check.as_ref().and_then(invalid_check))
}

/// Why a health check cannot run, if it cannot.
fn invalid_check(check: &HealthCheckSpec) -> Option<String> {
    let times = [
        check.delay_seconds,
        check.interval_seconds,
        check.timeout_seconds,
        check.grace_period_seconds,
    ];
    if times.iter().any(|t| !t.is_finite() || *t < 0.0) {
        return Some("health check times must be finite and not negative".into());
    }
    match &check.kind {
        HealthCheckKind::Http { scheme, .. } if scheme != "http" => Some(format!(
            "health check scheme {scheme} is not supported (use http)"
        )),
        HealthCheckKind::Http { port: 0, .. } | HealthCheckKind::Tcp { port: 0 } => {
            Some("a health check needs a port".into())
        }
        HealthCheckKind::Command(command) => command_line(command)
            .err()
            .map(|why| format!("health check: {why}")),
        HealthCheckKind::Http { .. } | HealthCheckKind::Tcp { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use proto::exec::ResourceSpec;

    use super::*;

    fn spec(command: CommandSpec) -> TaskSpec {
        TaskSpec {
            task_id: "t1".into(),
            framework_id: "f1".into(),
            name: "t".into(),
            kind: TaskKind::Command(command),
            resources: ResourceSpec {
                ranges: [("ports".to_owned(), vec![(31000, 31001), (31005, 31005)])].into(),
                ..ResourceSpec::default()
            },
            kill_grace_ms: 0,
            labels: BTreeMap::new(),
            health_check: None,
        }
    }

    #[test]
    fn environment_carries_ports_and_ids() {
        let spec = spec(CommandSpec::default());
        let own = [
            ("PORT0".to_owned(), "1".to_owned()),
            ("A".to_owned(), "b".to_owned()),
        ];
        let env = environment(&spec, &own.into(), "/sb", "node-1");
        assert_eq!(env["PORTS"], "31000,31001,31005");
        assert_eq!(env["PORT0"], "31000", "the agent's values win");
        assert_eq!(env["PORT2"], "31005");
        assert_eq!(env["PORT"], "31000");
        assert_eq!(env["A"], "b");
        assert_eq!(env["MESOS_SANDBOX"], "/sb");
        assert_eq!(env["MESOS_TASK_ID"], "t1");
        assert_eq!(env["HOST"], "node-1");
    }

    #[test]
    fn command_lines_and_invalid_specs() {
        let shell = CommandSpec {
            shell: true,
            value: Some("echo hi".into()),
            ..CommandSpec::default()
        };
        assert_eq!(
            command_line(&shell).expect("valid"),
            ["/bin/sh", "-c", "echo hi"]
        );
        let exec = CommandSpec {
            value: Some("/bin/echo".into()),
            arguments: vec!["echo".into(), "a".into()],
            ..CommandSpec::default()
        };
        assert_eq!(command_line(&exec).expect("valid"), ["/bin/echo", "a"]);
        let args_only = CommandSpec {
            arguments: vec!["sleep".into(), "1".into()],
            ..CommandSpec::default()
        };
        assert_eq!(command_line(&args_only).expect("valid"), ["sleep", "1"]);
        assert!(invalid(&spec(CommandSpec::default())).is_some());
        assert!(invalid(&spec(shell.clone())).is_none());
        let mut checked = spec(shell);
        let check = HealthCheckSpec::new(HealthCheckKind::Tcp { port: 31000 });
        checked.health_check = Some(check.clone());
        assert!(invalid(&checked).is_none());
        checked.health_check = Some(HealthCheckSpec {
            interval_seconds: f64::NAN,
            ..check
        });
        assert!(invalid(&checked).is_some_and(|why| why.contains("health check times")));
        let https = HealthCheckKind::Http {
            port: 1,
            path: "/".into(),
            scheme: "https".into(),
        };
        checked.health_check = Some(HealthCheckSpec::new(https));
        assert!(invalid(&checked).is_some_and(|why| why.contains("https")));
        let empty = HealthCheckKind::Command(CommandSpec::default());
        checked.health_check = Some(HealthCheckSpec::new(empty));
        assert!(invalid(&checked).is_some_and(|why| why.starts_with("health check:")));
    }
}
