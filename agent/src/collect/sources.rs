//! The long-running sources that push events: conntrack and the Docker engine. Each says once
//! when it cannot run and lets the rest of the agent go on.

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{
    conntrack::{self, ConntrackEvent, ConntrackEvents},
    docker::DockerClient,
};
use crate::core::Event;

/// Pause before reconnecting to a source that went away.
const RECONNECT_DELAY: Duration = Duration::from_secs(5);
/// How often the NAT table is replaced by a fresh dump, which drops the mappings of
/// connections that ended elsewhere (forwarded traffic).
const NAT_RESYNC_INTERVAL: Duration = Duration::from_secs(60);

/// Follows conntrack: subscribes, then dumps (so nothing in between is missed), then applies
/// live events; re-dumps after the kernel reports lost events and every minute.
pub async fn conntrack(events: mpsc::Sender<Vec<Event>>) {
    let mut subscription = match ConntrackEvents::subscribe() {
        Ok(subscription) => subscription,
        Err(err) => {
            return warn!(
                error = %crate::error_chain(&err),
                "conntrack unavailable: NAT-translated connections will show the dialled address"
            );
        }
    };
    let mut resync = tokio::time::interval(NAT_RESYNC_INTERVAL);
    loop {
        let next = tokio::select! {
            next = subscription.next_batch() => next,
            _ = resync.tick() => {
                // The first tick is immediate: the initial dump, after subscribing.
                if !resync_nat(&events).await {
                    return;
                }
                continue;
            }
        };
        let batch = match next {
            Ok(batch) => batch,
            Err(err) => {
                warn!(error = %crate::error_chain(&err), "conntrack events failed; re-dumping");
                tokio::time::sleep(RECONNECT_DELAY).await;
                if !resync_nat(&events).await {
                    return;
                }
                continue;
            }
        };
        let mut overrun = false;
        let mapped: Vec<Event> = batch
            .into_iter()
            .map(|event| match event {
                ConntrackEvent::New(mapping) => Event::NatAdded(mapping),
                ConntrackEvent::Destroyed(mapping) => Event::NatRemoved(mapping),
                ConntrackEvent::Overrun => {
                    overrun = true;
                    Event::ConntrackOverrun
                }
            })
            .collect();
        if !mapped.is_empty() && events.send(mapped).await.is_err() {
            return;
        }
        if overrun && !resync_nat(&events).await {
            return;
        }
    }
}

/// Sends a full conntrack dump; false when the collector is gone.
async fn resync_nat(events: &mpsc::Sender<Vec<Event>>) -> bool {
    match tokio::task::spawn_blocking(conntrack::dump_nat).await {
        Ok(Ok(mappings)) => events.send(vec![Event::NatResync(mappings)]).await.is_ok(),
        Ok(Err(err)) => {
            warn!(error = %crate::error_chain(&err), "conntrack dump failed");
            true
        }
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// Watches the Docker engine: subscribes to its events, lists every container, then keeps
/// each one current. A host without Docker is normal: said once, then nothing.
pub async fn docker(events: mpsc::Sender<Vec<Event>>) {
    let client = match DockerClient::connect().await {
        Ok(Some(client)) => client,
        Ok(None) => return info!("no Docker engine on this host; containers will not be shown"),
        Err(err) => {
            return warn!(error = %crate::error_chain(&err), "Docker engine unusable; containers will not be shown");
        }
    };
    info!(api_version = %client.api_version(), "watching the Docker engine");
    loop {
        let mut changes = Box::pin(client.changes());
        match client.containers().await {
            Ok(containers) => {
                if events
                    .send(vec![Event::ContainersResync(containers)])
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(err) => warn!(error = %crate::error_chain(&err), "listing containers failed"),
        }
        while let Some(change) = changes.next().await {
            let event = match change {
                Ok(change) if change.removed => Event::ContainerRemoved { id: change.id },
                Ok(change) => match client.container(&change.id).await {
                    Ok(Some(container)) => Event::ContainerUpdated(container),
                    Ok(None) => Event::ContainerRemoved { id: change.id },
                    Err(err) => {
                        warn!(error = %crate::error_chain(&err), id = %change.id, "inspecting a container failed");
                        continue;
                    }
                },
                Err(err) => {
                    warn!(error = %crate::error_chain(&err), "Docker event stream failed; resyncing");
                    break;
                }
            };
            if events.send(vec![event]).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}
