//! App definitions in Marathon's JSON form: parsing (every type error names its field
//! path), Marathon's defaults, semantic validation into Marathon's error shape
//! (`{"message": "Object is not valid", "details": [{"path", "errors"}]}`), and the JSON the
//! API answers with (only the keys Marathon clients know: its Python client refuses others).
//!
//! Read-only fields a client sends back from a GET (`tasks`, `deployments`, counts,
//! `versionInfo`) are accepted and ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One app, as defined by its users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AppDefinition {
    pub id: String,
    pub cmd: Option<String>,
    pub args: Option<Vec<String>>,
    pub container: Option<Container>,
    pub instances: u32,
    pub cpus: f64,
    pub mem: f64,
    pub disk: f64,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub constraints: Vec<Vec<String>>,
    pub health_checks: Vec<HealthCheck>,
    pub upgrade_strategy: UpgradeStrategy,
    pub backoff_seconds: f64,
    pub backoff_factor: f64,
    pub max_launch_delay_seconds: f64,
    pub task_kill_grace_period_seconds: Option<f64>,
    /// Absent means one port chosen by the cluster, as in Marathon; `[]` means none.
    pub port_definitions: Option<Vec<PortDefinition>>,
    pub dependencies: Vec<String>,
    pub accepted_resource_roles: Option<Vec<String>>,
    pub role: Option<String>,
    pub user: Option<String>,
    /// When this configuration was made (ISO 8601, set by the service).
    pub version: Option<String>,
}

impl Default for AppDefinition {
    fn default() -> Self {
        Self {
            id: String::new(),
            cmd: None,
            args: None,
            container: None,
            instances: 1,
            cpus: 1.0,
            mem: 128.0,
            disk: 0.0,
            env: BTreeMap::new(),
            labels: BTreeMap::new(),
            constraints: Vec::new(),
            health_checks: Vec::new(),
            upgrade_strategy: UpgradeStrategy::default(),
            backoff_seconds: 1.0,
            backoff_factor: 1.15,
            max_launch_delay_seconds: 300.0,
            task_kill_grace_period_seconds: None,
            port_definitions: None,
            dependencies: Vec::new(),
            accepted_resource_roles: None,
            role: None,
            user: None,
            version: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    #[serde(rename = "type")]
    pub kind: String,
    pub docker: Option<Docker>,
    pub port_mappings: Option<Vec<PortMapping>>,
    pub volumes: Vec<Volume>,
}

impl Default for Container {
    fn default() -> Self {
        Self {
            kind: "DOCKER".into(),
            docker: None,
            port_mappings: None,
            volumes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Docker {
    pub image: String,
    pub network: Option<String>,
    pub port_mappings: Option<Vec<PortMapping>>,
    pub privileged: bool,
    pub force_pull_image: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PortMapping {
    pub container_port: u32,
    /// 0: assigned from the agent's offered ports.
    pub host_port: Option<u32>,
    pub service_port: Option<u32>,
    pub protocol: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Volume {
    pub container_path: String,
    pub host_path: Option<String>,
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PortDefinition {
    pub port: u32,
    pub protocol: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpgradeStrategy {
    pub minimum_health_capacity: f64,
    pub maximum_over_capacity: f64,
}

impl Default for UpgradeStrategy {
    fn default() -> Self {
        Self {
            minimum_health_capacity: 1.0,
            maximum_over_capacity: 1.0,
        }
    }
}

/// A health check, run by the agent next to the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HealthCheck {
    pub protocol: String,
    pub path: Option<String>,
    pub port_index: Option<u32>,
    pub port: Option<u32>,
    pub command: Option<CheckCommand>,
    pub grace_period_seconds: f64,
    pub interval_seconds: f64,
    pub timeout_seconds: f64,
    /// 0: never kill for failing checks.
    pub max_consecutive_failures: u32,
    pub delay_seconds: f64,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            protocol: "HTTP".into(),
            path: None,
            port_index: None,
            port: None,
            command: None,
            grace_period_seconds: 300.0,
            interval_seconds: 60.0,
            timeout_seconds: 20.0,
            max_consecutive_failures: 3,
            delay_seconds: 15.0,
        }
    }
}

/// `{"value": "..."}`, or a bare string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CheckCommand {
    Object { value: String },
    Text(String),
}

impl CheckCommand {
    pub fn value(&self) -> &str {
        match self {
            Self::Object { value } | Self::Text(value) => value,
        }
    }
}

/// One invalid field: its JSON path (`/healthChecks(0)/protocol`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub path: String,
    pub errors: Vec<String>,
}

/// Why a definition was refused, in Marathon's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid(pub Vec<Violation>);

impl Invalid {
    pub fn one(path: &str, error: impl Into<String>) -> Self {
        Self(vec![Violation {
            path: path.to_owned(),
            errors: vec![error.into()],
        }])
    }

    /// The body of a 422 answer.
    pub fn to_json(&self) -> Value {
        json!({ "message": "Object is not valid", "details": self.0 })
    }
}

/// A serde path (`healthChecks[0].protocol`) as Marathon writes it (`/healthChecks(0)/protocol`).
fn marathon_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("({index})")),
            serde_path_to_error::Segment::Map { key } => {
                out.push('/');
                out.push_str(key);
            }
            serde_path_to_error::Segment::Enum { variant } => {
                out.push('/');
                out.push_str(variant);
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    if out.is_empty() { "/".into() } else { out }
}

/// Parses a definition; type errors name the field.
pub fn parse(body: &Value) -> Result<AppDefinition, Invalid> {
    if !body.is_object() {
        return Err(Invalid::one("/", "an app definition is a JSON object"));
    }
    serde_path_to_error::deserialize(body).map_err(|err| {
        let path = marathon_path(err.path());
        let message = err.inner().to_string();
        let message = message
            .split(" at line")
            .next()
            .unwrap_or(&message)
            .to_owned();
        Invalid::one(&path, message)
    })
}

/// An absolute app id (`/group/app`) from a given one, relative to the root.
pub fn absolute_id(id: &str) -> String {
    let trimmed = id.trim_matches('/');
    format!("/{trimmed}")
}

impl AppDefinition {
    /// The Docker port mappings, wherever they were given (`container.portMappings` or the
    /// older `container.docker.portMappings`).
    pub fn port_mappings(&self) -> Vec<PortMapping> {
        let Some(container) = &self.container else {
            return Vec::new();
        };
        container
            .port_mappings
            .clone()
            .or_else(|| {
                container
                    .docker
                    .as_ref()
                    .and_then(|d| d.port_mappings.clone())
            })
            .unwrap_or_default()
    }

    /// How many ports each instance gets.
    pub fn port_count(&self) -> usize {
        let mappings = self.port_mappings();
        let docker_network = self
            .container
            .as_ref()
            .and_then(|c| c.docker.as_ref())
            .and_then(|d| d.network.as_deref());
        if docker_network == Some("BRIDGE") || !mappings.is_empty() {
            mappings.iter().filter(|m| m.host_port.is_some()).count()
        } else {
            self.port_definitions.as_ref().map_or(1, Vec::len)
        }
    }

    /// Whether a change from `self` to `other` needs new tasks (anything but the count).
    pub fn needs_restart(&self, other: &AppDefinition) -> bool {
        let mut a = self.clone();
        let mut b = other.clone();
        a.instances = 0;
        b.instances = 0;
        a.version = None;
        b.version = None;
        a != b
    }

    /// The definition as the API shows it (with Marathon's defaults filled in).
    pub fn to_json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        strip_nulls(&mut value);
        if let Some(object) = value.as_object_mut()
            && self.port_definitions.is_none()
            && self.port_mappings().is_empty()
        {
            object.insert(
                "portDefinitions".into(),
                json!([{ "port": 0, "protocol": "tcp" }]),
            );
        }
        value
    }
}

/// Drops null members at every depth (Marathon clients read a null as a bad value).
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::validate::valid_id;

    #[test]
    fn defaults_and_read_only_fields_are_accepted() {
        let app = parse(&json!({
            "id": "/web/api", "cmd": "sleep 100", "tasksRunning": 3, "tasks": [], "versionInfo": {}
        }))
        .expect("parses");
        assert_eq!((app.instances, app.cpus, app.mem), (1, 1.0, 128.0));
        assert_eq!(app.upgrade_strategy, UpgradeStrategy::default());
        assert!(app.validate().is_ok());
        assert_eq!(app.port_count(), 1);
        assert_eq!(app.to_json()["portDefinitions"][0]["port"], 0);
    }

    #[test]
    fn type_errors_and_rule_breaks_name_their_field() {
        let err =
            parse(&json!({ "id": "/a", "cmd": "x", "instances": "three" })).expect_err("type");
        assert_eq!(err.0[0].path, "/instances");
        let err =
            parse(&json!({ "id": "/a", "cmd": "x", "healthChecks": [{ "intervalSeconds": "x" }] }))
                .expect_err("nested type");
        assert_eq!(err.0[0].path, "/healthChecks(0)/intervalSeconds");
        let app = parse(&json!({
            "id": "/Bad_Id", "cmd": "x", "args": ["y"], "cpus": -1,
            "constraints": [["hostname", "SOMETIMES"]],
            "upgradeStrategy": { "minimumHealthCapacity": 1.5 },
            "healthChecks": [{ "protocol": "HTTP", "portIndex": 3 }],
        }))
        .expect("parses");
        let paths: Vec<String> = app
            .validate()
            .expect_err("invalid")
            .0
            .into_iter()
            .map(|v| v.path)
            .collect();
        for path in [
            "/id",
            "/",
            "/cpus",
            "/constraints(0)",
            "/upgradeStrategy/minimumHealthCapacity",
            "/healthChecks(0)/portIndex",
        ] {
            assert!(
                paths.iter().any(|p| p == path),
                "{path} missing from {paths:?}"
            );
        }
        let body = Invalid::one("/id", "bad").to_json();
        assert_eq!(body["message"], "Object is not valid");
        assert_eq!(body["details"][0]["errors"][0], "bad");
    }

    #[test]
    fn ids_and_restarts() {
        assert_eq!(absolute_id("a/b/"), "/a/b");
        assert!(valid_id("/prod/web-1"));
        assert!(!valid_id("/-web"));
        assert!(!valid_id("/"));
        let a = parse(&json!({ "id": "/a", "cmd": "x", "instances": 2 })).expect("parses");
        let mut b = a.clone();
        b.instances = 5;
        assert!(!a.needs_restart(&b));
        b.cmd = Some("y".into());
        assert!(a.needs_restart(&b));
    }
}
