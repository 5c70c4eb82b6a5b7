//! The rules a service must follow beyond its fields' types: names, an image or a command,
//! ports, resources, scale policy bounds, health checks and the restart policy. Every broken
//! rule is recorded with its path.

use super::spec::{Problem, Service};
use crate::apps::validate::valid_segment;

/// The rules a service must follow beyond its fields' types.
pub fn check(s: &Service, path: &str, problems: &mut Vec<Problem>) {
    let mut require = |ok: bool, field: &str, message: String| {
        if !ok {
            problems.push(Problem {
                path: if field.is_empty() {
                    path.to_owned()
                } else {
                    format!("{path}.{field}")
                },
                message,
            });
        }
    };
    require(
        valid_segment(&s.name),
        "service_name",
        "lowercase letters, digits and hyphens, not starting or ending with a hyphen".into(),
    );
    require(
        s.image.is_some() || s.command.is_some(),
        "",
        "a service needs an `image` or a `command`".into(),
    );
    require(
        s.image.is_some() || s.volumes.is_empty(),
        "volumes",
        "volumes need an `image`".into(),
    );
    for (i, port) in s.ports.iter().enumerate() {
        require(
            port.container_port > 0 || s.host_network,
            &format!("ports[{i}].container_port"),
            "must be 1 to 65535 (0, an assigned port, only on the host's network)".into(),
        );
        require(
            matches!(port.protocol.as_str(), "tcp" | "udp"),
            &format!("ports[{i}].protocol"),
            format!("`{}` is not one of: tcp, udp", port.protocol),
        );
    }
    require(
        s.resources.cpu_millicores > 0,
        "resources.cpu_millicores",
        "must be above 0".into(),
    );
    require(
        s.resources.memory_bytes >= 4 << 20,
        "resources.memory_bytes",
        "must be at least 4194304 (4 MiB)".into(),
    );
    if let Some(policy) = &s.scale_policy {
        require(
            policy.max_replicas >= policy.min_replicas.max(1),
            "scale_policy.max_replicas",
            format!(
                "must be at least min_replicas ({}) and at least 1",
                policy.min_replicas
            ),
        );
        require(
            (policy.min_replicas..=policy.max_replicas).contains(&s.replicas),
            "replicas",
            format!(
                "{} is outside scale_policy's {}..={}",
                s.replicas, policy.min_replicas, policy.max_replicas
            ),
        );
        require(
            policy.target_cpu_percent.is_some() || policy.target_memory_percent.is_some(),
            "scale_policy",
            "needs target_cpu_percent or target_memory_percent".into(),
        );
        for (field, target) in [
            ("target_cpu_percent", policy.target_cpu_percent),
            ("target_memory_percent", policy.target_memory_percent),
        ] {
            require(
                target.is_none_or(|t| t > 0.0 && t <= 100.0),
                &format!("scale_policy.{field}"),
                "must be above 0 and at most 100".into(),
            );
        }
        require(
            policy.cooldown_seconds >= 0.0,
            "scale_policy.cooldown_seconds",
            "must not be negative".into(),
        );
    }
    if let Some(check) = &s.health_check {
        match check.kind.as_str() {
            "http" | "tcp" => require(
                (check.port_index as usize) < s.ports.len(),
                "health_check.port_index",
                format!(
                    "the service has {} port(s); a {} check needs one to check",
                    s.ports.len(),
                    check.kind
                ),
            ),
            "command" => require(
                check.command.is_some(),
                "health_check.command",
                "required for a command check".into(),
            ),
            other => require(
                false,
                "health_check.type",
                format!("`{other}` is not one of: http, tcp, command"),
            ),
        }
        require(
            check.interval_seconds > 0.0,
            "health_check.interval_seconds",
            "must be above 0".into(),
        );
        require(
            check.timeout_seconds > 0.0 && check.timeout_seconds < check.interval_seconds,
            "health_check.timeout_seconds",
            "must be above 0 and below interval_seconds".into(),
        );
    }
    let restart = &s.restart_policy;
    require(
        matches!(restart.condition.as_str(), "always" | "on-failure"),
        "restart_policy.condition",
        format!("`{}` is not one of: always, on-failure", restart.condition),
    );
    require(
        restart.delay_seconds >= 0.0 && restart.backoff_factor >= 1.0,
        "restart_policy",
        "delay_seconds must not be negative and backoff_factor must be at least 1".into(),
    );
}
