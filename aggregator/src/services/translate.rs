//! A service file's services as Marathon app definitions under `/<cluster_name>/`: images
//! become Docker containers (bridge with port mappings, or the host's network with port
//! definitions), commands run as command tasks, millicores and bytes become `cpus` and
//! `mem` (MiB), the health check and restart policy take Marathon's fields, and the scale
//! policy and the file's ownership ride on labels.

use serde_json::{Value, json};

use super::spec::{Service, ServiceFile};
use crate::apps::autoscale;

/// The label marking an app as managed by the service file of a cluster (its value).
pub const LABEL_CLUSTER: &str = "strata.cluster";
pub use crate::apps::instances::LABEL_RESTART;

/// The app group a cluster's services live in.
pub fn group(cluster: &str) -> String {
    format!("/{cluster}")
}

/// Every service as a Marathon app definition.
pub fn apps(file: &ServiceFile) -> Vec<Value> {
    file.services
        .iter()
        .map(|s| app(&file.cluster_name, s))
        .collect()
}

fn app(cluster: &str, s: &Service) -> Value {
    let mut labels = json!({ LABEL_CLUSTER: cluster });
    if let Some(policy) = &s.scale_policy {
        labels[autoscale::LABEL_MIN] = json!(policy.min_replicas.to_string());
        labels[autoscale::LABEL_MAX] = json!(policy.max_replicas.to_string());
        if let Some(cpu) = policy.target_cpu_percent {
            labels[autoscale::LABEL_CPU] = json!(cpu.to_string());
        }
        if let Some(mem) = policy.target_memory_percent {
            labels[autoscale::LABEL_MEM] = json!(mem.to_string());
        }
        labels[autoscale::LABEL_COOLDOWN] = json!(policy.cooldown_seconds.to_string());
    }
    if s.restart_policy.condition == "on-failure" {
        labels[LABEL_RESTART] = json!("on-failure");
    }
    let restart = &s.restart_policy;
    let mut app = json!({
        "id": format!("{}/{}", group(cluster), s.name),
        "instances": s.replicas,
        "cpus": s.resources.cpu_millicores as f64 / 1000.0,
        "mem": s.resources.memory_bytes as f64 / f64::from(1 << 20),
        "env": s.env,
        "labels": labels,
        "backoffSeconds": restart.delay_seconds,
        "backoffFactor": restart.backoff_factor,
        "maxLaunchDelaySeconds": restart.max_delay_seconds,
    });
    if let Some(command) = &s.command {
        app["cmd"] = json!(command);
    }
    let bridge = s.image.is_some() && !s.host_network;
    if bridge {
        app["portDefinitions"] = json!([]);
    } else {
        app["portDefinitions"] = json!(
            s.ports
                .iter()
                .map(|p| {
                    let port = if p.host_port == 0 {
                        p.container_port
                    } else {
                        p.host_port
                    };
                    let mut d = json!({ "port": port, "protocol": p.protocol });
                    if let Some(name) = &p.name {
                        d["name"] = json!(name);
                    }
                    d
                })
                .collect::<Vec<_>>()
        );
    }
    if let Some(image) = &s.image {
        let mut docker = json!({
            "image": image,
            "network": if bridge { "BRIDGE" } else { "HOST" },
        });
        if bridge {
            docker["portMappings"] = json!(
                s.ports
                    .iter()
                    .map(|p| {
                        let mut m = json!({
                            "containerPort": p.container_port,
                            "hostPort": p.host_port,
                            "protocol": p.protocol,
                        });
                        if let Some(name) = &p.name {
                            m["name"] = json!(name);
                        }
                        m
                    })
                    .collect::<Vec<_>>()
            );
        }
        let volumes: Vec<Value> = s
            .volumes
            .iter()
            .map(|v| {
                json!({
                    "containerPath": v.container_path,
                    "hostPath": v.host_path,
                    "mode": if v.read_only { "RO" } else { "RW" },
                })
            })
            .collect();
        app["container"] = json!({ "type": "DOCKER", "docker": docker, "volumes": volumes });
    }
    if let Some(check) = &s.health_check {
        let mut hc = json!({
            "protocol": check.kind.to_uppercase(),
            "gracePeriodSeconds": check.grace_period_seconds,
            "intervalSeconds": check.interval_seconds,
            "timeoutSeconds": check.timeout_seconds,
            "maxConsecutiveFailures": check.max_consecutive_failures,
            // The grace period covers the start; checks begin at once.
            "delaySeconds": 0,
        });
        match check.kind.as_str() {
            "command" => hc["command"] = json!({ "value": check.command }),
            kind => {
                hc["portIndex"] = json!(check.port_index);
                if kind == "http" {
                    hc["path"] = json!(check.path.as_deref().unwrap_or("/"));
                }
            }
        }
        app["healthChecks"] = json!([hc]);
    }
    app
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{apps::definition, services::spec};

    #[test]
    fn services_become_valid_marathon_apps() {
        let file = spec::read(&json!({
            "cluster_name": "shop",
            "services": [
                { "service_name": "web", "image": "busybox", "command": "httpd -f -p 8080",
                  "replicas": 2, "ports": [{ "container_port": 8080 }],
                  "volumes": ["/srv:/data:ro"], "resources": { "cpu_millicores": 250, "memory_bytes": 67108864 },
                  "health_check": { "type": "http", "path": "/health" },
                  "scale_policy": { "min_replicas": 1, "max_replicas": 4, "target_cpu_percent": 60 } },
                { "service_name": "worker", "command": "sleep 1000", "ports": [0, 0],
                  "restart_policy": "on-failure",
                  "health_check": { "type": "command", "command": "true" } },
            ],
        }))
        .expect("valid");
        let apps = apps(&file);
        let web = definition::parse(&apps[0]).expect("parses");
        web.validate().expect("valid app");
        assert_eq!(web.id, "/shop/web");
        assert_eq!((web.cpus, web.mem, web.instances), (0.25, 64.0, 2));
        assert_eq!(web.port_count(), 1);
        assert_eq!(web.health_checks[0].protocol, "HTTP");
        assert_eq!(web.labels[autoscale::LABEL_MAX], "4");
        let policy = autoscale::Policy::from_labels(&web.labels)
            .expect("policy")
            .expect("valid");
        assert_eq!(policy.cpu, Some(0.6));
        let worker = definition::parse(&apps[1]).expect("parses");
        worker.validate().expect("valid app");
        assert_eq!(worker.port_count(), 2);
        assert!(worker.container.is_none());
        assert_eq!(worker.labels[LABEL_RESTART], "on-failure");
    }
}
