//! Marathon's rules for app definitions: every failure with its JSON path, collected
//! rather than stopping at the first.

use super::definition::{AppDefinition, Invalid, Violation, absolute_id};

/// Whether `segment` is one valid id segment: lowercase letters, digits and hyphens, not
/// starting or ending with a hyphen.
pub fn valid_segment(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Whether `id` is a valid absolute path of lowercase segments.
pub fn valid_id(id: &str) -> bool {
    id.starts_with('/') && id.len() > 1 && id[1..].split('/').all(valid_segment)
}

struct Checks(Vec<Violation>);

impl Checks {
    fn require(&mut self, ok: bool, path: &str, error: &str) {
        if !ok {
            match self.0.iter_mut().find(|v| v.path == path) {
                Some(v) => v.errors.push(error.to_owned()),
                None => self.0.push(Violation {
                    path: path.to_owned(),
                    errors: vec![error.to_owned()],
                }),
            }
        }
    }
}

impl AppDefinition {
    /// Marathon's rules, every failure with its path.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checks(Vec::new());
        c.require(
            valid_id(&self.id),
            "/id",
            "path must be absolute, its segments lowercase letters, digits and hyphens, not starting or ending with a hyphen",
        );
        let docker = self.container.as_ref().and_then(|c| c.docker.as_ref());
        c.require(
            self.cmd.is_some() || self.args.is_some() || docker.is_some(),
            "/",
            "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'",
        );
        c.require(
            !(self.cmd.is_some() && self.args.is_some()),
            "/",
            "AppDefinition must not contain both 'cmd' and 'args'",
        );
        for (path, value) in [
            ("/cpus", self.cpus),
            ("/mem", self.mem),
            ("/disk", self.disk),
        ] {
            c.require(
                value.is_finite() && value >= 0.0,
                path,
                "got a negative number, expected 0 or more",
            );
        }
        c.require(
            self.cpus > 0.0 || self.mem > 0.0,
            "/cpus",
            "an app needs some cpus or mem",
        );
        let strategy = &self.upgrade_strategy;
        c.require(
            (0.0..=1.0).contains(&strategy.minimum_health_capacity),
            "/upgradeStrategy/minimumHealthCapacity",
            "must be between 0 and 1",
        );
        c.require(
            (0.0..=1.0).contains(&strategy.maximum_over_capacity),
            "/upgradeStrategy/maximumOverCapacity",
            "must be between 0 and 1",
        );
        c.require(
            self.backoff_seconds >= 0.0,
            "/backoffSeconds",
            "must be 0 or more",
        );
        c.require(
            self.backoff_factor >= 1.0,
            "/backoffFactor",
            "must be 1 or more",
        );
        c.require(
            self.max_launch_delay_seconds >= 0.0,
            "/maxLaunchDelaySeconds",
            "must be 0 or more",
        );
        for (i, parts) in self.constraints.iter().enumerate() {
            if let Err(err) = scheduler::constraints::Constraint::parse(parts) {
                c.require(false, &format!("/constraints({i})"), &err.to_string());
            }
        }
        if let Some(container) = &self.container {
            c.require(
                matches!(container.kind.as_str(), "DOCKER" | "MESOS"),
                "/container/type",
                "must be DOCKER or MESOS",
            );
            if let Some(docker) = &container.docker {
                c.require(
                    !docker.image.is_empty(),
                    "/container/docker/image",
                    "must not be empty",
                );
                c.require(
                    docker
                        .network
                        .as_deref()
                        .is_none_or(|n| matches!(n, "BRIDGE" | "HOST" | "USER" | "NONE")),
                    "/container/docker/network",
                    "must be BRIDGE, HOST, USER or NONE",
                );
            }
            for (i, mapping) in self.port_mappings().iter().enumerate() {
                let path = format!("/container/portMappings({i})");
                c.require(
                    mapping.container_port <= 65_535,
                    &format!("{path}/containerPort"),
                    "must be a port number",
                );
                c.require(
                    mapping.host_port.is_none_or(|p| p <= 65_535),
                    &format!("{path}/hostPort"),
                    "must be a port number",
                );
                c.require(
                    mapping
                        .protocol
                        .as_deref()
                        .is_none_or(|p| matches!(p, "tcp" | "udp" | "udp,tcp")),
                    &format!("{path}/protocol"),
                    "must be tcp, udp or udp,tcp",
                );
            }
        }
        for (i, port) in self.port_definitions.iter().flatten().enumerate() {
            c.require(
                port.port <= 65_535,
                &format!("/portDefinitions({i})/port"),
                "must be a port number",
            );
        }
        let ports = self.port_count();
        for (i, check) in self.health_checks.iter().enumerate() {
            let path = format!("/healthChecks({i})");
            let protocol = check.protocol.as_str();
            c.require(
                matches!(
                    protocol,
                    "HTTP"
                        | "HTTPS"
                        | "TCP"
                        | "COMMAND"
                        | "MESOS_HTTP"
                        | "MESOS_HTTPS"
                        | "MESOS_TCP"
                ),
                &format!("{path}/protocol"),
                "must be HTTP, HTTPS, TCP, COMMAND, MESOS_HTTP, MESOS_HTTPS or MESOS_TCP",
            );
            if protocol == "COMMAND" {
                c.require(
                    check.command.is_some(),
                    &format!("{path}/command"),
                    "a COMMAND check needs a command",
                );
            } else if check.port.is_none() {
                let index = check.port_index.unwrap_or(0) as usize;
                c.require(
                    index < ports,
                    &format!("{path}/portIndex"),
                    "the app has no port at this index",
                );
            }
            c.require(
                check.interval_seconds > 0.0,
                &format!("{path}/intervalSeconds"),
                "must be more than 0",
            );
            c.require(
                check.timeout_seconds > 0.0,
                &format!("{path}/timeoutSeconds"),
                "must be more than 0",
            );
            c.require(
                check.timeout_seconds < check.interval_seconds,
                &format!("{path}/timeoutSeconds"),
                "must be less than intervalSeconds",
            );
        }
        for (i, dependency) in self.dependencies.iter().enumerate() {
            c.require(
                valid_id(&absolute_id(dependency)),
                &format!("/dependencies({i})"),
                "must be an app id",
            );
        }
        if c.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid(c.0))
        }
    }
}
