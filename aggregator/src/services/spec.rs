//! The service file (`config.yaml`): a cluster name and its services, read field by field
//! so that every mistake is reported at once, each with its path (`services[1].replicas`)
//! and, through [`super::yaml::Located`], its line.
//!
//! Defaults: `replicas` 1, `resources` 100 millicores and 128 MiB, `network_mode` bridge
//! for images (command services always use the host's network), health checks every 10 s
//! with a 5 s timeout, 30 s of grace and 3 failures before a replacement, a scale cooldown
//! of 60 s, and `restart_policy: always` with a 1 s backoff growing 1.15 times to 300 s.

use std::collections::BTreeMap;

use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::apps::validate::valid_segment;

/// One mistake in a service file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// A whole service file.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceFile {
    pub cluster_name: String,
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub image: Option<String>,
    pub command: Option<String>,
    pub replicas: u32,
    pub ports: Vec<PortSpec>,
    pub env: BTreeMap<String, String>,
    pub volumes: Vec<VolumeSpec>,
    pub host_network: bool,
    pub resources: Resources,
    pub scale_policy: Option<ScalePolicy>,
    pub health_check: Option<HealthCheckSpec>,
    pub restart_policy: RestartPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    pub container_port: u16,
    /// 0 or absent: assigned from the agent's ports. On the host's network the port is
    /// `host_port`, or `container_port` when that is 0 (so `ports: [0]` asks for one
    /// assigned port and `ports: [8080]` for 8080).
    #[serde(default)]
    pub host_port: u16,
    #[serde(default = "tcp")]
    pub protocol: String,
    #[serde(default)]
    pub name: Option<String>,
}

fn tcp() -> String {
    "tcp".into()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    pub host_path: String,
    pub container_path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Resources {
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpu_millicores: 100,
            memory_bytes: 128 << 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalePolicy {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// Average CPU use per replica, in percent of its `cpu_millicores`.
    #[serde(default)]
    pub target_cpu_percent: Option<f64>,
    /// Average memory use per replica, in percent of its `memory_bytes`.
    #[serde(default)]
    pub target_memory_percent: Option<f64>,
    #[serde(default = "sixty")]
    pub cooldown_seconds: f64,
}

fn sixty() -> f64 {
    60.0
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// `http`, `tcp` or `command`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub path: Option<String>,
    /// Which of the service's ports is checked (http, tcp).
    #[serde(default)]
    pub port_index: u32,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default = "ten")]
    pub interval_seconds: f64,
    #[serde(default = "five")]
    pub timeout_seconds: f64,
    #[serde(default = "thirty")]
    pub grace_period_seconds: f64,
    #[serde(default = "three")]
    pub max_consecutive_failures: u32,
}

fn ten() -> f64 {
    10.0
}
fn five() -> f64 {
    5.0
}
fn thirty() -> f64 {
    30.0
}
fn three() -> u32 {
    3
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartPolicy {
    /// `always`: every ended replica is replaced; `on-failure`: one that exits 0 is done.
    pub condition: String,
    pub delay_seconds: f64,
    pub backoff_factor: f64,
    pub max_delay_seconds: f64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            condition: "always".into(),
            delay_seconds: 1.0,
            backoff_factor: 1.15,
            max_delay_seconds: 300.0,
        }
    }
}

/// The fields of one JSON object, taken one at a time; every failure is recorded and the
/// keys nobody took are reported as unknown.
struct Fields<'a> {
    map: Map<String, Value>,
    path: String,
    problems: &'a mut Vec<Problem>,
}

impl<'a> Fields<'a> {
    fn of(value: &Value, path: String, problems: &'a mut Vec<Problem>) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Self {
                map: map.clone(),
                path,
                problems,
            }),
            other => {
                problems.push(Problem {
                    path,
                    message: format!("expected a mapping, found {}", kind(other)),
                });
                None
            }
        }
    }

    fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn problem(&mut self, path: String, message: impl Into<String>) {
        self.problems.push(Problem {
            path,
            message: message.into(),
        });
    }

    /// The raw value of `key`, absent when missing or null.
    fn raw(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    /// `key` as a `T`; a wrong type is recorded with the path inside the value.
    fn take<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        let value = self.raw(key)?;
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(err) => {
                let mut path = self.at(key);
                for segment in err.path().iter() {
                    match segment {
                        serde_path_to_error::Segment::Seq { index } => {
                            path.push_str(&format!("[{index}]"));
                        }
                        serde_path_to_error::Segment::Map { key } => {
                            path.push('.');
                            path.push_str(key);
                        }
                        _ => {}
                    }
                }
                let message = err.into_inner().to_string();
                self.problem(path, message);
                None
            }
        }
    }

    fn required<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        if self.map.get(key).is_none_or(Value::is_null) {
            let path = self.at(key);
            self.problem(path, "required");
            return None;
        }
        self.take(key)
    }

    /// Reports every key not taken.
    fn finish(self, known: &[&str]) {
        for key in self.map.keys() {
            let path = self.at(key);
            self.problems.push(Problem {
                path,
                message: format!("unknown field, expected one of: {}", known.join(", ")),
            });
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

const FILE_FIELDS: &[&str] = &["cluster_name", "services"];
const SERVICE_FIELDS: &[&str] = &[
    "service_name",
    "image",
    "command",
    "replicas",
    "ports",
    "env",
    "volumes",
    "network_mode",
    "resources",
    "scale_policy",
    "health_check",
    "restart_policy",
];

/// Reads a service file from its JSON form; every problem found, or the file.
pub fn read(value: &Value) -> Result<ServiceFile, Vec<Problem>> {
    let mut problems = Vec::new();
    let Some(mut fields) = Fields::of(value, String::new(), &mut problems) else {
        return Err(problems);
    };
    let cluster_name: Option<String> = fields.required("cluster_name");
    if let Some(name) = &cluster_name
        && !valid_segment(name)
    {
        fields.problem(
            "cluster_name".into(),
            "lowercase letters, digits and hyphens, not starting or ending with a hyphen",
        );
    }
    let raw_services: Vec<Value> = fields.required("services").unwrap_or_default();
    fields.finish(FILE_FIELDS);
    let mut services = Vec::new();
    for (i, raw) in raw_services.iter().enumerate() {
        if let Some(service) = read_service(raw, format!("services[{i}]"), &mut problems) {
            services.push(service);
        }
    }
    let names: Vec<Option<&str>> = raw_services
        .iter()
        .map(|s| s["service_name"].as_str())
        .collect();
    for (i, name) in names.iter().enumerate() {
        if let Some(name) = name
            && names[..i].contains(&Some(name))
        {
            problems.push(Problem {
                path: format!("services[{i}].service_name"),
                message: format!("`{name}` is named twice"),
            });
        }
    }
    match cluster_name {
        Some(cluster_name) if problems.is_empty() => Ok(ServiceFile {
            cluster_name,
            services,
        }),
        _ => Err(problems),
    }
}

fn read_service(raw: &Value, path: String, problems: &mut Vec<Problem>) -> Option<Service> {
    let before = problems.len();
    let mut f = Fields::of(raw, path.clone(), problems)?;
    let name: Option<String> = f.required("service_name");
    let image: Option<String> = f.take("image");
    let command: Option<String> = f.take("command");
    let replicas: u32 = f.take("replicas").unwrap_or(1);
    let ports = read_ports(&mut f);
    let env: BTreeMap<String, Value> = f.take("env").unwrap_or_default();
    let env = env
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Number(n) => Some((k, n.to_string())),
            Value::Bool(b) => Some((k, b.to_string())),
            other => {
                let at = format!("{}.env.{k}", f.path);
                f.problem(at, format!("expected a string, found {}", kind(&other)));
                None
            }
        })
        .collect();
    let volumes = read_volumes(&mut f);
    let network_mode: Option<String> = f.take("network_mode");
    let resources: Resources = f.take("resources").unwrap_or_default();
    let scale_policy: Option<ScalePolicy> = f.take("scale_policy");
    let health_check: Option<HealthCheckSpec> = f.take("health_check");
    let restart_policy = match f.raw("restart_policy") {
        Some(Value::String(condition)) => RestartPolicy {
            condition,
            ..RestartPolicy::default()
        },
        Some(other) => {
            f.map.insert("restart_policy".into(), other);
            f.take("restart_policy").unwrap_or_default()
        }
        None => RestartPolicy::default(),
    };
    f.finish(SERVICE_FIELDS);
    let name = name?;
    let host_network = match network_mode.as_deref() {
        None => image.is_none(),
        Some("host") => true,
        Some("bridge") if image.is_some() => false,
        Some("bridge") => {
            problems.push(Problem {
                path: format!("{path}.network_mode"),
                message: "bridge needs an image: a command runs in the host's network".into(),
            });
            true
        }
        Some(other) => {
            problems.push(Problem {
                path: format!("{path}.network_mode"),
                message: format!("`{other}` is not one of: bridge, host"),
            });
            true
        }
    };
    let service = Service {
        name,
        image,
        command,
        replicas,
        ports,
        env,
        volumes,
        host_network,
        resources,
        scale_policy,
        health_check,
        restart_policy,
    };
    super::rules::check(&service, &path, problems);
    (problems.len() == before).then_some(service)
}

fn read_ports(f: &mut Fields<'_>) -> Vec<PortSpec> {
    let Some(raw) = f.raw("ports") else {
        return Vec::new();
    };
    let Value::Array(items) = raw else {
        let at = f.at("ports");
        f.problem(at, format!("expected a list, found {}", kind(&raw)));
        return Vec::new();
    };
    let mut ports = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let key = format!("ports[{i}]");
        let item = match item {
            Value::Number(n) => serde_json::json!({ "container_port": n }),
            other => other,
        };
        f.map.insert(key.clone(), item);
        if let Some(port) = f.take::<PortSpec>(&key) {
            ports.push(port);
        }
    }
    ports
}

fn read_volumes(f: &mut Fields<'_>) -> Vec<VolumeSpec> {
    let volumes: Vec<String> = f.take("volumes").unwrap_or_default();
    let mut out = Vec::new();
    for (i, text) in volumes.iter().enumerate() {
        let parts: Vec<&str> = text.split(':').collect();
        let (host, container, mode) = match parts.as_slice() {
            [h, c] => (*h, *c, "rw"),
            [h, c, m] => (*h, *c, *m),
            _ => ("", "", ""),
        };
        if !host.starts_with('/') || !container.starts_with('/') || !matches!(mode, "ro" | "rw") {
            let at = format!("{}.volumes[{i}]", f.path);
            f.problem(
                at,
                format!("`{text}` is not HOST_PATH:CONTAINER_PATH[:ro|rw] with absolute paths"),
            );
            continue;
        }
        out.push(VolumeSpec {
            host_path: host.into(),
            container_path: container.into(),
            read_only: mode == "ro",
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_small_file_gets_its_defaults() {
        let file = read(&json!({
            "cluster_name": "shop",
            "services": [{ "service_name": "web", "image": "nginx", "ports": [80] }],
        }))
        .expect("valid");
        let web = &file.services[0];
        assert_eq!((web.replicas, web.host_network), (1, false));
        assert_eq!(web.ports[0].container_port, 80);
        assert_eq!(web.resources, Resources::default());
        assert_eq!(web.restart_policy.condition, "always");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let problems = read(&json!({
            "cluster_name": "Shop",
            "extra": 1,
            "services": [
                { "service_name": "web", "replicas": "three", "image": "x",
                  "ports": [{ "container_port": 80, "protocl": "tcp" }],
                  "resources": { "cpu_millicores": 0 } },
                { "service_name": "api", "command": "x", "replicas": 9, "network_mode": "bridge",
                  "scale_policy": { "min_replicas": 1, "max_replicas": 3 },
                  "health_check": { "type": "http" }, "restart_policy": "sometimes",
                  "volumes": ["data"] },
                { "service_name": "web", "image": "y" },
            ],
        }))
        .expect_err("invalid");
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        for path in [
            "cluster_name",
            "extra",
            "services[0].replicas",
            "services[0].ports[0].protocl",
            "services[0].resources.cpu_millicores",
            "services[1].network_mode",
            "services[1].replicas",
            "services[1].scale_policy",
            "services[1].health_check.port_index",
            "services[1].restart_policy.condition",
            "services[1].volumes[0]",
            "services[2].service_name",
        ] {
            assert!(paths.contains(&path), "{path} missing from {problems:#?}");
        }
    }
}
