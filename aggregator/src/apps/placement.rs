//! Fitting app instances into offers (pure): resources from one acceptable pool, host ports
//! (fixed ones must be offered, `0` takes the next free), Marathon constraints against the
//! agents the app already runs on; a refusal says why in Marathon's reason names. Also the
//! Mesos `TaskInfo` an instance is launched with.

use std::collections::BTreeMap;

use scheduler::{
    constraints::Constraint,
    pools::Allotment,
    resources::{Ranges, Resources},
};
use serde_json::{Value, json};

use super::definition::{AppDefinition, HealthCheck};
use crate::master::resources;

/// What the service knows of an agent from its offers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentFacts {
    pub hostname: String,
    pub attributes: BTreeMap<String, String>,
}

impl AgentFacts {
    /// The agent's value of a constraint field (`hostname` or an attribute).
    pub fn field(&self, field: &str) -> Option<&str> {
        if field == "hostname" {
            Some(&self.hostname)
        } else {
            self.attributes.get(field).map(String::as_str)
        }
    }
}

/// One offer, as the app service reads it.
#[derive(Debug, Clone)]
pub struct OfferView {
    pub id: String,
    pub agent_id: String,
    pub facts: AgentFacts,
    /// What is left of it.
    pub left: Allotment,
}

impl OfferView {
    /// Reads a Mesos `Offer`; None when it is malformed.
    pub fn from_json(offer: &Value) -> Option<Self> {
        let attributes = offer["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                let name = a["name"].as_str()?.to_owned();
                let value = match a["type"].as_str() {
                    Some("SCALAR") => a["scalar"]["value"].as_f64()?.to_string(),
                    _ => a["text"]["value"].as_str()?.to_owned(),
                };
                Some((name, value))
            })
            .collect();
        Some(Self {
            id: offer["id"]["value"].as_str()?.to_owned(),
            agent_id: offer["agent_id"]["value"].as_str()?.to_owned(),
            facts: AgentFacts {
                hostname: offer["hostname"].as_str()?.to_owned(),
                attributes,
            },
            left: resources::parse(&offer["resources"]).ok()?,
        })
    }
}

/// Why an offer was not used for an instance (Marathon's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reject {
    UnfulfilledRole,
    UnfulfilledConstraint,
    InsufficientCpus,
    InsufficientMemory,
    InsufficientDisk,
    InsufficientPorts,
}

impl Reject {
    pub fn name(self) -> &'static str {
        match self {
            Self::UnfulfilledRole => "UnfulfilledRole",
            Self::UnfulfilledConstraint => "UnfulfilledConstraint",
            Self::InsufficientCpus => "InsufficientCpus",
            Self::InsufficientMemory => "InsufficientMemory",
            Self::InsufficientDisk => "InsufficientDisk",
            Self::InsufficientPorts => "InsufficientPorts",
        }
    }

    /// Every reason, in the order the queue lists them.
    pub const ALL: [Reject; 6] = [
        Self::UnfulfilledRole,
        Self::UnfulfilledConstraint,
        Self::InsufficientCpus,
        Self::InsufficientMemory,
        Self::InsufficientDisk,
        Self::InsufficientPorts,
    ];
}

/// An instance fitted into an offer: the resources it takes and its host ports.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub taken: Allotment,
    pub ports: Vec<u16>,
}

/// The host ports an instance asks for: `0` for any.
fn wanted_ports(app: &AppDefinition) -> Vec<u64> {
    let mappings = app.port_mappings();
    if !mappings.is_empty() {
        return mappings
            .iter()
            .filter_map(|m| m.host_port)
            .map(u64::from)
            .collect();
    }
    vec![0; app.port_count()]
}

fn take_ports(free: &Ranges, wanted: &[u64]) -> Option<(Ranges, Vec<u16>)> {
    let fixed: Vec<u64> = wanted.iter().copied().filter(|p| *p != 0).collect();
    let fixed_ranges = Ranges::new(fixed.iter().map(|&p| (p, p)));
    if !free.contains(&fixed_ranges) {
        return None;
    }
    let rest = free.minus(&fixed_ranges);
    let any = rest.take(wanted.iter().filter(|p| **p == 0).count() as u64)?;
    let mut assigned = any.pairs().iter().flat_map(|&(b, e)| b..=e);
    let ports: Vec<u16> = wanted
        .iter()
        .map(|&p| if p == 0 { assigned.next().unwrap_or(0) } else { p } as u16)
        .collect();
    Some((fixed_ranges.plus(&any), ports))
}

/// Fits one instance of `app` into what is left of `offer`. `placed` are the agents of the
/// app's instances, for its constraints.
pub fn fit(app: &AppDefinition, offer: &OfferView, placed: &[&AgentFacts]) -> Result<Fit, Reject> {
    for parts in &app.constraints {
        let Ok(constraint) = Constraint::parse(parts) else {
            continue; // refused when the app was validated
        };
        let values = placed.iter().map(|agent| agent.field(&constraint.field));
        if !constraint.satisfied(offer.facts.field(&constraint.field), values) {
            return Err(Reject::UnfulfilledConstraint);
        }
    }
    let pools: Vec<(&str, &Resources)> = offer
        .left
        .pools()
        .filter(|(pool, _)| {
            app.accepted_resource_roles
                .as_ref()
                .is_none_or(|roles| roles.iter().any(|r| r == pool))
        })
        .collect();
    if pools.is_empty() {
        return Err(Reject::UnfulfilledRole);
    }
    let wanted = wanted_ports(app);
    let mut worst = Reject::InsufficientCpus;
    for (pool, free) in pools {
        let shortfall = [
            (free.get("cpus") + 1e-9 < app.cpus, Reject::InsufficientCpus),
            (free.get("mem") + 1e-9 < app.mem, Reject::InsufficientMemory),
            (free.get("disk") + 1e-9 < app.disk, Reject::InsufficientDisk),
        ]
        .into_iter()
        .find_map(|(short, reason)| short.then_some(reason));
        if let Some(reason) = shortfall {
            worst = reason;
            continue;
        }
        let Some((port_ranges, ports)) = take_ports(&free.ranges("ports"), &wanted) else {
            worst = Reject::InsufficientPorts;
            continue;
        };
        let mut taken = Resources::from_scalars(
            [("cpus", app.cpus), ("mem", app.mem), ("disk", app.disk)]
                .into_iter()
                .filter(|(_, amount)| *amount > 0.0),
        );
        if !port_ranges.is_empty() {
            taken.add_ranges("ports", &port_ranges);
        }
        let mut allotment = Allotment::default();
        allotment.add(pool, &taken);
        return Ok(Fit {
            taken: allotment,
            ports,
        });
    }
    Err(worst)
}

/// Mesos's `HealthCheck` for Marathon's; `ports` are the instance's host ports.
fn health_check_json(check: &HealthCheck, ports: &[u16]) -> Value {
    let port = check
        .port
        .or_else(|| {
            ports
                .get(check.port_index.unwrap_or(0) as usize)
                .map(|p| u32::from(*p))
        })
        .unwrap_or(0);
    let mut json = json!({
        "delay_seconds": check.delay_seconds,
        "interval_seconds": check.interval_seconds,
        "timeout_seconds": check.timeout_seconds,
        "grace_period_seconds": check.grace_period_seconds,
        // 0 means never kill for failing checks.
        "consecutive_failures": if check.max_consecutive_failures == 0 { u32::MAX } else { check.max_consecutive_failures },
    });
    match check.protocol.as_str() {
        "COMMAND" => {
            let value = check.command.as_ref().map_or("", |c| c.value());
            json["type"] = json!("COMMAND");
            json["command"] = json!({ "value": value, "shell": true });
        }
        "TCP" | "MESOS_TCP" => {
            json["type"] = json!("TCP");
            json["tcp"] = json!({ "port": port });
        }
        protocol => {
            let scheme = if protocol.ends_with("HTTPS") {
                "https"
            } else {
                "http"
            };
            json["type"] = json!("HTTP");
            json["http"] = json!({ "port": port, "path": check.path.as_deref().unwrap_or("/"), "scheme": scheme });
        }
    }
    json
}

/// The `TaskInfo` launching one instance of `app` (configuration `version`) on `agent_id`.
/// The container's host volumes as Mesos `Volume`s (`RW` unless `RO`).
fn volumes_json(app: &AppDefinition) -> Vec<Value> {
    app.container
        .iter()
        .flat_map(|c| &c.volumes)
        .filter_map(|v| {
            let mode = if v.mode.as_deref().is_some_and(|m| m.eq_ignore_ascii_case("RO")) {
                "RO"
            } else {
                "RW"
            };
            Some(json!({ "container_path": v.container_path, "host_path": v.host_path.as_ref()?, "mode": mode }))
        })
        .collect()
}

pub fn task_info(
    app: &AppDefinition,
    version: &str,
    task_id: &str,
    agent_id: &str,
    fit: &Fit,
) -> Value {
    let mut env: Vec<Value> = app
        .env
        .iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    env.push(json!({ "name": "MARATHON_APP_ID", "value": app.id }));
    env.push(json!({ "name": "MARATHON_APP_VERSION", "value": version }));
    let mut command = match (&app.cmd, &app.args) {
        (Some(cmd), _) => json!({ "shell": true, "value": cmd }),
        (None, Some(args)) => json!({
            "shell": false,
            "value": args.first().cloned().unwrap_or_default(),
            "arguments": args,
        }),
        (None, None) => json!({ "shell": false }),
    };
    command["environment"] = json!({ "variables": env });
    let mut labels: Vec<Value> = app
        .labels
        .iter()
        .map(|(key, value)| json!({ "key": key, "value": value }))
        .collect();
    labels.push(json!({ "key": super::LABEL_APP, "value": app.id }));
    labels.push(json!({ "key": super::LABEL_VERSION, "value": version }));
    let mut info = json!({
        "name": app.id.trim_start_matches('/').replace('/', "."),
        "task_id": { "value": task_id },
        "agent_id": { "value": agent_id },
        "labels": { "labels": labels },
    });
    info["resources"] = resources::to_json(&fit.taken, None);
    if let Some(docker) = app.container.as_ref().and_then(|c| c.docker.as_ref()) {
        let network = docker.network.as_deref().unwrap_or("HOST");
        let mut host_ports = fit.ports.iter();
        let mappings: Vec<Value> = app
            .port_mappings()
            .iter()
            .filter(|m| m.host_port.is_some())
            .map(|m| {
                json!({
                    "host_port": host_ports.next().copied().unwrap_or(0),
                    "container_port": m.container_port,
                    "protocol": m.protocol.as_deref().unwrap_or("tcp").split(',').next().unwrap_or("tcp"),
                })
            })
            .collect();
        info["container"] = json!({
            "type": "DOCKER",
            "docker": {
                "image": docker.image,
                "network": network,
                "port_mappings": mappings,
                "force_pull_image": docker.force_pull_image,
                "privileged": docker.privileged,
            },
            "volumes": volumes_json(app),
        });
        if app.cmd.is_none() && app.args.is_none() {
            command["shell"] = json!(false);
        }
    }
    info["command"] = command;
    if let Some(check) = app.health_checks.first() {
        info["health_check"] = health_check_json(check, &fit.ports);
    }
    if let Some(grace) = app.task_kill_grace_period_seconds {
        info["kill_policy"] = json!({ "grace_period": { "nanoseconds": (grace * 1e9) as u64 } });
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::definition::parse;

    fn offer(host: &str, rack: &str, cpus: f64, ports: (u64, u64)) -> OfferView {
        let mut r = Resources::from_scalars([("cpus", cpus), ("mem", 1024.0), ("disk", 100.0)]);
        r.add_ranges("ports", &Ranges::new([ports]));
        OfferView {
            id: format!("o-{host}"),
            agent_id: format!("a-{host}"),
            facts: AgentFacts {
                hostname: host.into(),
                attributes: [("rack".to_owned(), rack.to_owned())].into(),
            },
            left: Allotment::unreserved(r),
        }
    }

    #[test]
    fn resources_ports_and_constraints_decide_and_say_why() {
        let app = parse(&json!({
            "id": "/web", "cmd": "x", "cpus": 1, "mem": 64,
            "portDefinitions": [{ "port": 0 }, { "port": 0 }],
            "constraints": [["hostname", "UNIQUE"]],
        }))
        .expect("parses");
        let a = offer("a", "r1", 2.0, (31000, 31010));
        let fit_a = fit(&app, &a, &[]).expect("fits");
        assert_eq!(fit_a.ports, vec![31000, 31001]);
        assert_eq!(
            fit(&app, &a, &[&a.facts]),
            Err(Reject::UnfulfilledConstraint)
        );
        assert_eq!(
            fit(&app, &offer("b", "r1", 0.5, (1, 9)), &[]),
            Err(Reject::InsufficientCpus)
        );
        assert_eq!(
            fit(&app, &offer("c", "r1", 4.0, (1, 1)), &[]),
            Err(Reject::InsufficientPorts)
        );
        let mut picky = app.clone();
        picky.accepted_resource_roles = Some(vec!["prod".into()]);
        assert_eq!(fit(&picky, &a, &[]), Err(Reject::UnfulfilledRole));
    }

    #[test]
    fn docker_bridge_gets_assigned_host_ports_and_a_health_check_on_them() {
        let app = parse(&json!({
            "id": "/g/web", "cpus": 0.5, "mem": 32, "instances": 1,
            "container": { "type": "DOCKER", "docker": { "image": "nginx", "network": "BRIDGE" },
                           "portMappings": [{ "containerPort": 80, "hostPort": 0 }] },
            "healthChecks": [{ "protocol": "MESOS_HTTP", "path": "/health", "portIndex": 0 }],
        }))
        .expect("parses");
        assert!(app.validate().is_ok(), "{:?}", app.validate());
        let o = offer("a", "r1", 2.0, (31005, 31010));
        let fitted = fit(&app, &o, &[]).expect("fits");
        let info = task_info(&app, "v1", "g_web.1", &o.agent_id, &fitted);
        assert_eq!(
            info["container"]["docker"]["port_mappings"][0]["host_port"],
            31005
        );
        assert_eq!(info["health_check"]["http"]["port"], 31005);
        assert_eq!(info["name"], "g.web");
        let parsed = crate::master::taskinfo::parse(&info, "fw").expect("the master accepts it");
        assert_eq!(parsed.spec.task_id, "g_web.1");
    }
}
