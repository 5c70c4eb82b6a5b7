//! Frameworks: subscription (new, or failover with a known id), the stream closing,
//! `failover_timeout`, teardown, suppress and revive.

use proto::exec::MasterMessage;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;
use tracing::info;

use super::{CallError, Core, Framework, FrameworkRecord, Stream};
use crate::master::{events, store::Table};

impl Core {
    /// Subscribes a framework (a known id fails over: it keeps its tasks). Returns its id;
    /// the SUBSCRIBED event is already on `events`.
    pub fn subscribe(
        &mut self,
        info: &Value,
        stream_id: String,
        events_tx: UnboundedSender<Value>,
        now: u64,
    ) -> Result<String, CallError> {
        if !info.is_object() {
            return Err(CallError::Invalid(
                "subscribe.framework_info is missing".into(),
            ));
        }
        let requested = info["id"]["value"].as_str().filter(|s| !s.is_empty());
        let role = info["roles"][0]
            .as_str()
            .or_else(|| info["role"].as_str())
            .unwrap_or("*")
            .to_owned();
        let id = match requested {
            Some(id) => id.to_owned(),
            None => {
                self.next_framework += 1;
                format!("{}-{:04}", self.master_id, self.next_framework - 1)
            }
        };
        if self.frameworks.get(&id).is_some_and(|f| f.record.removed) {
            return Err(CallError::Invalid(format!(
                "framework {id} was removed (torn down or failed over too late); subscribe without an id"
            )));
        }
        let mut info = info.clone();
        info["id"] = json!({ "value": id });
        let capabilities = info["capabilities"].as_array().cloned().unwrap_or_default();
        let partition_aware = capabilities
            .iter()
            .any(|c| c["type"].as_str() == Some("PARTITION_AWARE"));
        let failover_timeout_ms =
            (info["failover_timeout"].as_f64().unwrap_or(0.0).max(0.0) * 1000.0) as u64;
        let sequence = self
            .frameworks
            .get(&id)
            .map_or(self.next_framework, |f| f.record.sequence);
        let registered_ms = self
            .frameworks
            .get(&id)
            .map_or(now, |f| f.record.registered_ms);
        let record = FrameworkRecord {
            id: id.clone(),
            info,
            role: role.clone(),
            failover_timeout_ms,
            registered_ms,
            sequence,
            partition_aware,
            removed: false,
        };
        if let Some(store) = self.store() {
            store.put(Table::Frameworks, &id, &record);
        }
        let failover = self.frameworks.contains_key(&id);
        if let Some(old) = self.frameworks.get(&id).and_then(|f| f.stream.as_ref()) {
            let _ = old
                .events
                .send(events::error("framework failed over to a new subscription"));
        }
        let _ = events_tx.send(events::subscribed(
            &id,
            self.config.heartbeat_seconds,
            self.master_info.clone(),
        ));
        self.frameworks.insert(
            id.clone(),
            Framework {
                record,
                stream: Some(Stream {
                    id: stream_id,
                    events: events_tx,
                }),
                disconnected_ms: None,
            },
        );
        self.allocator.add_framework(&id, &role, true);
        info!(framework_id = %id, %role, failover, "framework subscribed");
        Ok(id)
    }

    /// Checks that a call comes from the framework's current subscription.
    pub fn check_stream(&self, framework: &str, stream_id: Option<&str>) -> Result<(), CallError> {
        let Some(stream) = self
            .frameworks
            .get(framework)
            .and_then(|f| f.stream.as_ref())
        else {
            return Err(CallError::NotSubscribed(framework.to_owned()));
        };
        match stream_id {
            Some(id) if id == stream.id => Ok(()),
            Some(_) => Err(CallError::WrongStream(framework.to_owned())),
            None => Err(CallError::Invalid(
                "calls other than SUBSCRIBE need the Mesos-Stream-Id header".into(),
            )),
        }
    }

    /// The framework's event stream ended (it disconnected).
    pub fn stream_closed(&mut self, framework: &str, stream_id: &str, now: u64) {
        let Some(fw) = self.frameworks.get_mut(framework) else {
            return;
        };
        if fw.stream.as_ref().is_none_or(|s| s.id != stream_id) {
            return;
        }
        fw.stream = None;
        fw.disconnected_ms = Some(now);
        info!(
            framework_id = framework,
            failover_timeout_ms = fw.record.failover_timeout_ms,
            "framework disconnected"
        );
        let rescinded = self.allocator.set_framework_active(framework, false);
        self.counters.offers_rescinded += rescinded.len() as u64;
    }

    /// Removes frameworks whose failover timeout passed. Recovered frameworks get at least
    /// the agent timeout after the master starts to come back.
    pub(super) fn expire_frameworks(&mut self, now: u64) {
        let due: Vec<String> = self
            .frameworks
            .values()
            .filter(|f| !f.record.removed)
            .filter_map(|f| {
                let since = f.disconnected_ms?;
                let mut timeout = f.record.failover_timeout_ms;
                if since == self.started_ms {
                    timeout = timeout.max(self.config.agent_timeout_ms);
                }
                (now.saturating_sub(since) >= timeout).then(|| f.record.id.clone())
            })
            .collect();
        for id in due {
            info!(framework_id = %id, "framework did not fail over in time: removing it");
            self.remove_framework(&id);
        }
    }

    /// Removes a framework: its offers are rescinded and its tasks killed.
    pub fn remove_framework(&mut self, id: &str) {
        let Some(fw) = self.frameworks.get_mut(id) else {
            return;
        };
        fw.record.removed = true;
        // Dropping the sender ends the framework's event stream.
        fw.stream = None;
        let record = fw.record.clone();
        if let Some(store) = self.store() {
            store.put(Table::Frameworks, id, &record);
        }
        let rescinded = self.allocator.remove_framework(id);
        self.counters.offers_rescinded += rescinded.len() as u64;
        let agents: std::collections::BTreeSet<String> = self
            .tasks
            .values()
            .filter(|t| t.record.spec.framework_id == id)
            .map(|t| t.record.agent_id.clone())
            .collect();
        for agent in agents {
            self.tell(
                &agent,
                MasterMessage::ShutdownFramework {
                    framework_id: id.to_owned(),
                },
            );
        }
    }

    /// TEARDOWN.
    pub fn teardown(&mut self, framework: &str) {
        info!(framework_id = framework, "framework tore itself down");
        self.remove_framework(framework);
    }

    pub fn suppress(&mut self, framework: &str) {
        self.allocator.suppress(framework);
    }

    pub fn revive(&mut self, framework: &str) {
        self.allocator.revive(framework);
    }

    /// Frameworks, for the operator API.
    pub fn frameworks(&self) -> impl Iterator<Item = &Framework> {
        self.frameworks.values()
    }
}
