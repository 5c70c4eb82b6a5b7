//! The app service's async shell: subscribes to the master as the framework
//! `strata-apps` (a fixed id, so a restarted aggregator fails over to it and keeps its
//! tasks), feeds offers and status updates to the [`AppsCore`], and carries its decisions
//! back: launches, declines, kills, acknowledgements, revive and suppress. It persists app
//! records in the master's store and publishes Marathon events to `/v2/events` watchers.
//!
//! The apps core and the master's core each sit behind their own mutex; this shell never
//! holds both at once.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast, mpsc};
use tracing::{info, warn};

use super::{
    LABEL_APP, LABEL_VERSION,
    core::{AppRecord, AppsCore, Decision, KnownTask},
    instances::Instance,
    placement::OfferView,
};
use crate::{
    master::{Master, store::Table},
    state::now_ms,
};

/// The app service's framework id at the master.
pub const FRAMEWORK_ID: &str = "strata-apps";

/// How long declined offers stay away (waiting apps are re-checked this often).
const DECLINE_SECONDS: f64 = 1.0;

/// Events kept for slow `/v2/events` readers before they miss some.
const EVENT_BACKLOG: usize = 4096;

/// A Marathon event as watchers get it.
#[derive(Debug)]
pub struct Event {
    /// Its type, for `event_type` filters.
    pub kind: String,
    /// The app it is about, if any.
    pub app_id: Option<String>,
    /// Its JSON line.
    pub json: String,
}

pub type Published = Arc<Event>;

/// The app service.
#[derive(Debug)]
pub struct AppService {
    core: Mutex<AppsCore>,
    pub master: Arc<Master>,
    wake: Notify,
    events: broadcast::Sender<Published>,
}

fn instance_of(record: &crate::master::core::TaskRecord, host: String) -> Option<KnownTask> {
    let app_id = record.spec.labels.get(LABEL_APP)?.clone();
    let version = record
        .spec
        .labels
        .get(LABEL_VERSION)
        .cloned()
        .unwrap_or_default();
    let running = record.state.as_str() == "TASK_RUNNING";
    Some(KnownTask {
        app_id,
        instance: Instance {
            task_id: record.spec.task_id.clone(),
            agent_id: record.agent_id.clone(),
            host,
            ports: record
                .spec
                .resources
                .range_values("ports")
                .into_iter()
                .map(|p| p as u16)
                .collect(),
            version,
            state: record.state.as_str().to_owned(),
            healthy: record.status["healthy"].as_bool(),
            staged_at_ms: (record.status["timestamp"].as_f64().unwrap_or(0.0) * 1000.0) as u64,
            started_at_ms: running.then(now_ms),
            killing: false,
        },
    })
}

impl AppService {
    /// Restores the apps from the master's store and tasks, and starts the service.
    pub fn start(master: Arc<Master>) -> Arc<Self> {
        let records: Vec<AppRecord> = master
            .take_recovered_apps()
            .into_iter()
            .filter_map(|v| match serde_json::from_value(v) {
                Ok(record) => Some(record),
                Err(err) => {
                    warn!(error = %err, "an app record is unreadable; skipped");
                    None
                }
            })
            .collect();
        let tasks: Vec<KnownTask> = {
            let core = master.lock();
            let hosts: std::collections::HashMap<&str, &str> = core
                .agents()
                .map(|a| (a.record.id.as_str(), a.record.hostname.as_str()))
                .collect();
            core.tasks()
                .0
                .into_iter()
                .filter(|t| t.spec.framework_id == FRAMEWORK_ID && !t.state.is_terminal())
                .filter_map(|t| {
                    instance_of(
                        t,
                        hosts
                            .get(t.agent_id.as_str())
                            .copied()
                            .unwrap_or("")
                            .to_owned(),
                    )
                })
                .collect()
        };
        let mut core = AppsCore::default();
        info!(
            apps = records.len(),
            tasks = tasks.len(),
            "app service state recovered"
        );
        core.restore(records, tasks);
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let service = Arc::new(Self {
            core: Mutex::new(core),
            master,
            wake: Notify::new(),
            events,
        });
        tokio::spawn(service.clone().run());
        service
    }

    /// The apps core, for one short call.
    pub fn lock(&self) -> MutexGuard<'_, AppsCore> {
        self.core
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// After an API change: queue what it changed for the store at once (so the API can
    /// answer once it is stored), ask for offers again and act soon.
    pub fn changed(&self) {
        let dirty = self.lock().take_dirty();
        self.persist(dirty);
        self.master.lock().revive(FRAMEWORK_ID);
        self.master.wake();
        self.wake.notify_one();
    }

    /// Marathon events from now on.
    pub fn watch(&self) -> broadcast::Receiver<Published> {
        self.events.subscribe()
    }

    fn subscribe(&self) -> mpsc::UnboundedReceiver<Value> {
        let (tx, rx) = mpsc::unbounded_channel();
        let info = json!({
            "id": { "value": FRAMEWORK_ID },
            "name": "strata-apps",
            "user": "root",
            "failover_timeout": 7.0 * 24.0 * 3600.0,
            "roles": ["*"],
            "capabilities": [{ "type": "PARTITION_AWARE" }],
        });
        let now = now_ms();
        let mut master = self.master.lock();
        match master.subscribe(&info, format!("{:032x}", rand::random::<u128>()), tx, now) {
            Ok(_) => master.reconcile(FRAMEWORK_ID, &json!({ "tasks": [] }), now),
            Err(err) => warn!(error = %err, "the app service could not subscribe to the master"),
        }
        rx
    }

    async fn run(self: Arc<Self>) {
        let mut events = self.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut suppressed = false;
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => {
                        self.handle(&event);
                        while let Ok(event) = events.try_recv() {
                            self.handle(&event);
                        }
                    }
                    None => {
                        warn!("the app service's event stream closed; subscribing again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        events = self.subscribe();
                    }
                },
                _ = self.wake.notified() => {}
                _ = tick.tick() => {}
            }
            self.step(&mut suppressed);
        }
    }

    fn handle(&self, event: &Value) {
        let now = now_ms();
        match event["type"].as_str() {
            Some("OFFERS") => {
                let offers: Vec<OfferView> = event["offers"]["offers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(OfferView::from_json)
                    .collect();
                let decisions = self.lock().offers(offers, now);
                let mut master = self.master.lock();
                for decision in decisions {
                    match decision {
                        Decision::Accept { offer_id, tasks } => {
                            let accept = json!({
                                "offer_ids": [{ "value": offer_id }],
                                "operations": [{ "type": "LAUNCH", "launch": { "task_infos": tasks } }],
                                "filters": { "refuse_seconds": DECLINE_SECONDS },
                            });
                            if let Err(err) = master.accept(FRAMEWORK_ID, &accept, now) {
                                warn!(error = %err, "the master refused the app service's launch");
                            }
                        }
                        Decision::Decline { offer_id } => {
                            let decline = json!({
                                "offer_ids": [{ "value": offer_id }],
                                "filters": { "refuse_seconds": DECLINE_SECONDS },
                            });
                            master.decline(FRAMEWORK_ID, &decline, now);
                        }
                    }
                }
                drop(master);
                self.master.wake();
            }
            Some("UPDATE") => {
                let status = &event["update"]["status"];
                self.lock().status(status, now);
                if let Some(uuid) = status["uuid"].as_str() {
                    let ack = json!({ "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": uuid });
                    let _ = self.master.lock().acknowledge(FRAMEWORK_ID, &ack);
                }
            }
            Some("ERROR") => {
                warn!(message = %event["error"]["message"], "the master sent the app service an error")
            }
            _ => {}
        }
    }

    fn persist(&self, dirty: Vec<(String, Option<AppRecord>)>) {
        let store = self.master.store();
        for (id, record) in dirty {
            match record {
                Some(record) => store.put(Table::Apps, &id, &record),
                None => store.delete(Table::Apps, &id),
            }
        }
    }

    /// Kills, revive or suppress, persistence and events after a round of changes.
    fn step(&self, suppressed: &mut bool) {
        let now = now_ms();
        let (kills, wants, dirty, events) = {
            let mut core = self.lock();
            let kills = core.step(now);
            (
                kills,
                core.wants_offers(),
                core.take_dirty(),
                core.take_events(),
            )
        };
        {
            let mut master = self.master.lock();
            for kill in kills {
                let mut call = json!({ "task_id": { "value": kill.task_id }, "agent_id": { "value": kill.agent_id } });
                if let Some(grace) = kill.grace_ms {
                    call["kill_policy"] =
                        json!({ "grace_period": { "nanoseconds": grace * 1_000_000 } });
                }
                if let Err(err) = master.kill(FRAMEWORK_ID, &call, now) {
                    warn!(error = %err, "the master refused the app service's kill");
                }
            }
            if wants && *suppressed {
                master.revive(FRAMEWORK_ID);
            } else if !wants && !*suppressed {
                master.suppress(FRAMEWORK_ID);
            }
        }
        if wants && *suppressed {
            self.master.wake();
        }
        *suppressed = !wants;
        self.persist(dirty);
        for event in events {
            let published = Event {
                kind: event["eventType"].as_str().unwrap_or("").to_owned(),
                app_id: event["appId"].as_str().map(str::to_owned),
                json: event.to_string(),
            };
            let _ = self.events.send(Arc::new(published));
        }
    }
}
