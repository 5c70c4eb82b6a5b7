//! Autoscaling decisions (pure): an app's scale policy rides on its labels, so any Marathon
//! client can set one and Marathon clients still read a valid app; the usage comes from what
//! the agents report of each task's processes. The rule is Kubernetes' horizontal one:
//! `desired = ceil(measured * usage / target)` for CPU and for memory, the larger of the
//! two, ignored within 10% of the target, kept within `min..=max`, and at most one change
//! per cooldown.

use std::collections::{BTreeMap, HashMap};

use proto::{
    exec::TASK_CGROUP_ROOT,
    model::{Container, Process},
};

/// Labels of a scale policy: replica bounds, target use in percent of what each instance
/// asked for, and the cooldown in seconds.
pub const LABEL_MIN: &str = "strata.scale.min";
pub const LABEL_MAX: &str = "strata.scale.max";
pub const LABEL_CPU: &str = "strata.scale.target-cpu-percent";
pub const LABEL_MEM: &str = "strata.scale.target-memory-percent";
pub const LABEL_COOLDOWN: &str = "strata.scale.cooldown-seconds";

/// Changes smaller than this fraction of the target are not acted on.
const TOLERANCE: f64 = 0.1;

/// An app's scale policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub min: u32,
    pub max: u32,
    /// Target fraction (0..=1) of each instance's `cpus` in use.
    pub cpu: Option<f64>,
    /// Target fraction of each instance's `mem` in use.
    pub mem: Option<f64>,
    pub cooldown_ms: u64,
}

impl Policy {
    /// The policy the labels describe; None without `strata.scale.max`, an error naming the
    /// label when one is malformed.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<Result<Self, String>> {
        labels.get(LABEL_MAX)?;
        let number = |name: &str| -> Result<Option<f64>, String> {
            labels
                .get(name)
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|n| n.is_finite() && *n >= 0.0)
                        .ok_or_else(|| format!("label {name}: `{v}` is not a number"))
                })
                .transpose()
        };
        let parsed = (|| {
            let max = number(LABEL_MAX)?.unwrap_or(0.0) as u32;
            let min = number(LABEL_MIN)?.unwrap_or(1.0) as u32;
            let cpu = number(LABEL_CPU)?.map(|p| p / 100.0);
            let mem = number(LABEL_MEM)?.map(|p| p / 100.0);
            let cooldown = number(LABEL_COOLDOWN)?.unwrap_or(60.0);
            if max < min.max(1) {
                return Err(format!(
                    "label {LABEL_MAX}: {max} is below {LABEL_MIN} or 1"
                ));
            }
            if cpu.is_none() && mem.is_none() || cpu == Some(0.0) || mem == Some(0.0) {
                return Err(format!(
                    "label {LABEL_CPU} or {LABEL_MEM}: one above 0 is needed"
                ));
            }
            Ok(Self {
                min,
                max,
                cpu,
                mem,
                cooldown_ms: (cooldown * 1000.0) as u64,
            })
        })();
        Some(parsed)
    }
}

/// What one running instance uses, as its agent last reported.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    /// CPU cores in use.
    pub cpus: f64,
    pub mem_bytes: u64,
}

/// What each task on one agent uses, summed over its processes: those in the task's cgroup
/// (`/strata-tasks/<scope>/<task>`) and, for Docker tasks, those in its container
/// (named `strata-<scope>-<task>`). Processes of no task are skipped.
pub fn usage_by_task<'a>(
    processes: impl IntoIterator<Item = &'a Process>,
    containers: &HashMap<String, Container>,
) -> HashMap<String, Usage> {
    let mut usage: HashMap<String, Usage> = HashMap::new();
    for process in processes {
        let from_cgroup = process.cgroup.as_deref().and_then(|path| {
            let mut segments = path.split('/').skip_while(|s| *s != TASK_CGROUP_ROOT);
            segments.next()?;
            let _scope = segments.next()?;
            segments.next()
        });
        let from_container = || {
            let name = &containers.get(process.container_id.as_deref()?)?.name;
            // `strata-agent-<12 hex>-<task>`
            let rest = name.trim_start_matches('/').strip_prefix("strata-agent-")?;
            rest.get(13..)
                .filter(|_| rest.as_bytes().get(12) == Some(&b'-'))
        };
        let Some(task) = from_cgroup.or_else(from_container) else {
            continue;
        };
        let entry = usage.entry(task.to_owned()).or_default();
        entry.cpus += f64::from(process.cpu_percent.unwrap_or(0.0)) / 100.0;
        entry.mem_bytes += process.rss_bytes.unwrap_or(0);
    }
    usage
}

/// An app's shape and state for one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub instances: u32,
    /// What each instance asked for.
    pub cpus: f64,
    pub mem_mb: f64,
    /// The running instances that were measured.
    pub usage: &'a [Usage],
    /// When the app was last scaled by the autoscaler.
    pub last_scaled_ms: Option<u64>,
}

/// The instance count the policy wants now; None to leave the app as it is.
pub fn decide(policy: &Policy, sample: &Sample<'_>, now: u64) -> Option<u32> {
    if sample
        .last_scaled_ms
        .is_some_and(|at| now < at + policy.cooldown_ms)
    {
        return None;
    }
    let mut desired = sample.instances;
    let measured = sample.usage.len();
    if measured > 0 {
        let ratio = |used: f64, asked: f64, target: f64| used / measured as f64 / asked / target;
        let cpu = policy.cpu.filter(|_| sample.cpus > 0.0).map(|target| {
            ratio(
                sample.usage.iter().map(|u| u.cpus).sum(),
                sample.cpus,
                target,
            )
        });
        let mem = policy.mem.filter(|_| sample.mem_mb > 0.0).map(|target| {
            let used: f64 = sample.usage.iter().map(|u| u.mem_bytes as f64).sum();
            ratio(used / f64::from(1 << 20), sample.mem_mb, target)
        });
        // Each resource wants its own count (the current one within tolerance); the larger
        // need wins, so scaling down for one never starves the other.
        if let Some(wanted) = [cpu, mem]
            .into_iter()
            .flatten()
            .map(|r| {
                if (r - 1.0).abs() <= TOLERANCE {
                    sample.instances
                } else {
                    (measured as f64 * r).ceil() as u32
                }
            })
            .max()
        {
            desired = wanted;
        }
    }
    let desired = desired.clamp(policy.min, policy.max);
    (desired != sample.instances).then_some(desired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            min: 1,
            max: 10,
            cpu: Some(0.5),
            mem: None,
            cooldown_ms: 60_000,
        }
    }

    fn sample(instances: u32, usage: &[Usage]) -> Sample<'_> {
        Sample {
            instances,
            cpus: 0.5,
            mem_mb: 128.0,
            usage,
            last_scaled_ms: None,
        }
    }

    fn busy(cpus: f64) -> Usage {
        Usage {
            cpus,
            mem_bytes: 10 << 20,
        }
    }

    #[test]
    fn scales_to_the_target_within_bounds() {
        // Two instances at 100% of their 0.5 cpus, target 50%: four.
        let usage = [busy(0.5), busy(0.5)];
        assert_eq!(decide(&policy(), &sample(2, &usage), 0), Some(4));
        // Far above the target: capped at max.
        let usage = [busy(5.0), busy(5.0)];
        assert_eq!(decide(&policy(), &sample(2, &usage), 0), Some(10));
        // Idle: down to min.
        let usage = [busy(0.0), busy(0.0), busy(0.0)];
        assert_eq!(decide(&policy(), &sample(3, &usage), 0), Some(1));
        // Within 10% of the target: nothing.
        let usage = [busy(0.26), busy(0.26)];
        assert_eq!(decide(&policy(), &sample(2, &usage), 0), None);
    }

    #[test]
    fn cooldown_bounds_and_the_larger_need() {
        let usage = [busy(0.5), busy(0.5)];
        let mut s = sample(2, &usage);
        s.last_scaled_ms = Some(1_000);
        assert_eq!(decide(&policy(), &s, 30_000), None);
        assert_eq!(decide(&policy(), &s, 61_000), Some(4));
        // Unmeasured, below min: raised to min.
        let p = Policy { min: 3, ..policy() };
        assert_eq!(decide(&p, &sample(1, &[]), 0), Some(3));
        // Memory at target, CPU idle: memory keeps the count.
        let p = Policy {
            mem: Some(0.5),
            ..policy()
        };
        let usage = [Usage {
            cpus: 0.0,
            mem_bytes: 64 << 20,
        }];
        assert_eq!(decide(&p, &sample(1, &usage), 0), None);
    }

    #[test]
    fn usage_is_summed_per_task_from_cgroups_and_containers() {
        let process = |pid, cgroup: &str, container: Option<&str>, cpu, rss| Process {
            pid,
            cgroup: Some(cgroup.into()),
            container_id: container.map(Into::into),
            cpu_percent: Some(cpu),
            rss_bytes: Some(rss),
            ..Process::default()
        };
        let containers: HashMap<String, Container> = [(
            "c1".to_owned(),
            Container {
                id: "c1".into(),
                name: "strata-agent-0123456789ab-shop_db.9f".into(),
                ..Container::default()
            },
        )]
        .into();
        let processes = [
            process(
                1,
                "/strata-tasks/agent-0123456789ab/shop_web.1",
                None,
                50.0,
                10,
            ),
            process(
                2,
                "/strata-tasks/agent-0123456789ab/shop_web.1",
                None,
                25.0,
                5,
            ),
            process(3, "/docker/c1", Some("c1"), 100.0, 7),
            process(4, "/user.slice", None, 90.0, 1),
        ];
        let usage = usage_by_task(&processes, &containers);
        assert_eq!(usage.len(), 2);
        assert_eq!(
            usage["shop_web.1"],
            Usage {
                cpus: 0.75,
                mem_bytes: 15
            }
        );
        assert_eq!(
            usage["shop_db.9f"],
            Usage {
                cpus: 1.0,
                mem_bytes: 7
            }
        );
    }

    #[test]
    fn policies_come_from_labels() {
        let labels: BTreeMap<String, String> = [
            (LABEL_MIN, "2"),
            (LABEL_MAX, "6"),
            (LABEL_CPU, "70"),
            (LABEL_COOLDOWN, "30"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let p = Policy::from_labels(&labels)
            .expect("has a policy")
            .expect("valid");
        assert_eq!(
            (p.min, p.max, p.cpu, p.cooldown_ms),
            (2, 6, Some(0.7), 30_000)
        );
        assert!(Policy::from_labels(&BTreeMap::new()).is_none());
        let mut bad = labels.clone();
        bad.insert(LABEL_MAX.into(), "x".into());
        assert!(
            Policy::from_labels(&bad)
                .expect("has a policy")
                .expect_err("malformed")
                .contains(LABEL_MAX)
        );
    }
}
