//! What an app needs next, decided from its instances alone (pure): how many instances to
//! launch and which to kill, so that
//! - scaling never overshoots: launched plus running instances, and killed ones that have
//!   not ended yet, never exceed the target;
//! - a rolling upgrade or restart keeps at least `ceil(instances * minimumHealthCapacity)`
//!   ready instances (running and, with health checks, healthy) and never runs more than
//!   `instances * (1 + maximumOverCapacity)` in all, killed ones that have not ended
//!   included;
//! - a deleted app loses every instance.

use super::instances::{App, Instance};

/// The next actions for one app.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Instances of the configuration version to launch now.
    pub launch: u32,
    /// Instances to kill now.
    pub kill: Vec<String>,
}

/// Youngest first, as Marathon's default `killSelection`; instances not yet running first.
fn kill_order<'a>(
    instances: impl Iterator<Item = &'a Instance>,
    checked: bool,
) -> Vec<&'a Instance> {
    let mut list: Vec<&Instance> = instances.collect();
    list.sort_by_key(|i| (i.ready(checked), std::cmp::Reverse(i.staged_at_ms)));
    list
}

/// Decides `app`'s next step.
pub fn plan(app: &App) -> Plan {
    let checked = app.checked();
    if app.deleting {
        return Plan {
            launch: 0,
            kill: app.active().map(|i| i.task_id.clone()).collect(),
        };
    }
    let target = app.target() as usize;
    // Killed but not yet ended: still alive on their agents, so they still count against
    // the target and the ceiling.
    let dying = app.instances.values().filter(|i| i.killing).count();
    let (new, old): (Vec<&Instance>, Vec<&Instance>) =
        app.active().partition(|i| i.version == app.config_version);
    let mut kill = Vec::new();
    if old.is_empty() {
        if new.len() > target {
            kill.extend(
                kill_order(new.iter().copied(), checked)
                    .into_iter()
                    .take(new.len() - target)
                    .map(|i| i.task_id.clone()),
            );
        }
        return Plan {
            launch: target.saturating_sub(new.len() + dying) as u32,
            kill,
        };
    }
    let strategy = &app.definition.upgrade_strategy;
    let min_ready = (target as f64 * strategy.minimum_health_capacity).ceil() as usize;
    let max_total = target + (target as f64 * strategy.maximum_over_capacity).floor() as usize;
    let ready_new = new.iter().filter(|i| i.ready(checked)).count();
    let ready_old = old.iter().filter(|i| i.ready(checked)).count();
    // Old instances that are not ready add nothing to capacity: they go at once. Ready ones
    // go while the ready count stays at or above the minimum.
    let mut killable_ready = (ready_old + ready_new).saturating_sub(min_ready);
    for instance in kill_order(old.iter().copied(), checked) {
        if !instance.ready(checked) {
            kill.push(instance.task_id.clone());
        } else if killable_ready > 0 {
            killable_ready -= 1;
            kill.push(instance.task_id.clone());
        }
    }
    // Old instances killed now are alive until they end: they count like the dying ones.
    let room = max_total.saturating_sub(old.len() + new.len() + dying);
    let launch = room.min(target.saturating_sub(new.len()));
    if launch == 0 && kill.is_empty() && dying == 0 && new.len() == ready_new && new.len() < target
    {
        // No room over capacity and no spare capacity (minimumHealthCapacity 1 with
        // maximumOverCapacity 0): replace one old instance at a time, as Marathon does; its
        // replacement starts once it has ended, so the ceiling holds.
        if let Some(first) = kill_order(old.iter().copied(), checked).first() {
            kill.push(first.task_id.clone());
        }
    }
    Plan {
        launch: launch as u32,
        kill,
    }
}

/// Whether `app` has converged: every instance of the configuration version, as many as
/// wanted, all ready.
pub fn converged(app: &App) -> bool {
    let checked = app.checked();
    let instances: Vec<&Instance> = app.active().collect();
    instances.len() == app.target() as usize
        && instances
            .iter()
            .all(|i| i.version == app.config_version && i.ready(checked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::definition::{AppDefinition, HealthCheck, UpgradeStrategy};

    fn app(instances: u32) -> App {
        let definition = AppDefinition {
            id: "/a".into(),
            cmd: Some("x".into()),
            instances,
            ..AppDefinition::default()
        };
        App::new(definition, "v1")
    }

    fn add(app: &mut App, n: usize, version: &str, state: &str) {
        for _ in 0..n {
            let id = (app.instances.len()..)
                .map(|k| format!("t{k}"))
                .find(|id| !app.instances.contains_key(id))
                .expect("a free id");
            app.instances.insert(
                id.clone(),
                Instance {
                    task_id: id,
                    agent_id: "a".into(),
                    host: "h".into(),
                    ports: vec![],
                    version: version.into(),
                    state: state.into(),
                    healthy: None,
                    staged_at_ms: app.instances.len() as u64,
                    started_at_ms: None,
                    killing: false,
                },
            );
        }
    }

    #[test]
    fn scaling_launches_the_difference_and_never_overshoots() {
        let mut a = app(5);
        assert_eq!(plan(&a).launch, 5);
        add(&mut a, 3, "v1", "TASK_STAGING");
        assert_eq!(
            plan(&a),
            Plan {
                launch: 2,
                kill: vec![]
            }
        );
        a.definition.instances = 1;
        let p = plan(&a);
        assert_eq!((p.launch, p.kill.len()), (0, 2));
        assert_eq!(
            p.kill,
            vec!["t2".to_owned(), "t1".to_owned()],
            "youngest first"
        );
    }

    #[test]
    fn a_rolling_upgrade_keeps_the_minimum_ready_and_the_maximum_total() {
        let mut a = app(4);
        add(&mut a, 4, "v1", "TASK_RUNNING");
        let mut changed = a.definition.clone();
        changed.cmd = Some("y".into());
        changed.upgrade_strategy = UpgradeStrategy {
            minimum_health_capacity: 0.5,
            maximum_over_capacity: 0.25,
        };
        a.change(changed, "v2");
        let p = plan(&a);
        // 2 of 4 must stay ready: 2 old go; at most 5 alive: 1 new starts beside the 4.
        assert_eq!((p.launch, p.kill.len()), (1, 2));
        for id in &p.kill {
            a.instances.get_mut(id).expect("instance").killing = true;
        }
        add(&mut a, 1, "v2", "TASK_STAGING");
        assert_eq!(
            plan(&a),
            Plan::default(),
            "the killed ones are still alive: no room"
        );
        a.instances.retain(|_, i| !i.killing);
        let p = plan(&a);
        assert_eq!((p.launch, p.kill.len()), (2, 0), "their room is taken");
        add(&mut a, 2, "v2", "TASK_STAGING");
        assert_eq!(plan(&a), Plan::default(), "waits for new ones to be ready");
        for i in a.instances.values_mut().filter(|i| i.version == "v2") {
            i.state = "TASK_RUNNING".into();
        }
        let p = plan(&a);
        assert_eq!((p.launch, p.kill.len()), (0, 2), "the last old ones go");
        for id in &p.kill {
            a.instances.get_mut(id).expect("instance").killing = true;
        }
        a.instances.retain(|_, i| !i.killing);
        assert_eq!(plan(&a).launch, 1);
    }

    #[test]
    fn full_capacity_without_room_replaces_one_at_a_time_and_health_gates_progress() {
        let mut a = app(2);
        a.definition.health_checks = vec![HealthCheck::default()];
        add(&mut a, 2, "v1", "TASK_RUNNING");
        for i in a.instances.values_mut() {
            i.healthy = Some(true);
        }
        let mut changed = a.definition.clone();
        changed.cmd = Some("y".into());
        changed.upgrade_strategy.maximum_over_capacity = 0.0;
        a.change(changed, "v2");
        let p = plan(&a);
        assert_eq!((p.launch, p.kill.len()), (0, 1), "one goes first");
        a.instances.get_mut(&p.kill[0]).expect("instance").killing = true;
        assert_eq!(
            plan(&a),
            Plan::default(),
            "its replacement waits for its end"
        );
        a.instances.retain(|_, i| !i.killing);
        assert_eq!(plan(&a).launch, 1);
        add(&mut a, 1, "v2", "TASK_RUNNING");
        assert_eq!(plan(&a), Plan::default(), "the new one is not healthy yet");
        assert!(!converged(&a));
    }

    #[test]
    fn deleting_kills_everything() {
        let mut a = app(2);
        add(&mut a, 2, "v1", "TASK_RUNNING");
        a.deleting = true;
        assert_eq!(plan(&a).kill.len(), 2);
    }
}
