//! An aggregator's way to leadership: enter the election, serve as a standby until this
//! contender leads, then hand over to the caller, which opens the state and serves as the
//! leader. [`Leadership::lost`] resolves when leadership ends for good.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use quinn::Endpoint;
use tokio::{sync::watch, task::JoinHandle};
use tracing::info;
use zookeeper_client as zk;

use super::{
    HaConfig,
    election::{Candidacy, Leader},
    standby::{self, LeaderWatch, QuicStandby},
};
use crate::zk::ZkError;

/// This aggregator leads.
#[derive(Debug)]
pub struct Leadership {
    pub candidacy: Candidacy,
    pub client: zk::Client,
    pub leader: LeaderWatch,
    follow: JoinHandle<ZkError>,
}

impl Leadership {
    /// Resolves with the reason once this aggregator no longer leads (its session ended or
    /// its znode is gone).
    pub async fn lost(&mut self) -> String {
        match (&mut self.follow).await {
            Ok(error) => crate::error_chain(&error),
            Err(join) => format!("the election watch stopped: {join}"),
        }
    }
}

/// Serves the standby's HTTP API on `http` until `leading` resolves; starts at once, before
/// ZooKeeper answers, and lasts until the new leader's own API is about to bind, so callers
/// get `503` rather than a refused connection meanwhile.
pub async fn serve_standby_http(
    http: SocketAddr,
    leader: LeaderWatch,
    leading: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .with_context(|| format!("binding HTTP on {http}"))?;
    info!(%http, "aggregator listening as a standby");
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, standby::router(leader, http))
            .with_graceful_shutdown(leading)
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "serving HTTP as a standby failed");
        }
    }))
}

/// Enters the election with `info`, publishes who leads on `sender` and serves QUIC as a
/// standby on `endpoint` until this contender leads.
pub async fn campaign(
    config: &HaConfig,
    client: zk::Client,
    info: &serde_json::Value,
    sender: watch::Sender<Option<Leader>>,
    endpoint: &Endpoint,
    standby: impl FnOnce(LeaderWatch) -> QuicStandby,
) -> anyhow::Result<Leadership> {
    let candidacy = Candidacy::enter(client.clone(), config.election_path(), info)
        .await
        .context("entering the leader election")?;
    let leader = sender.subscribe();
    let follower = Candidacy::watching(client.clone(), config.election_path(), &candidacy.node);
    let (ended, mut session_ended) = tokio::sync::oneshot::channel();
    let follow = tokio::spawn(async move {
        let why = follower.follow(&sender).await;
        let _ = ended.send(crate::error_chain(&why));
        why
    });
    let me = candidacy.node.clone();
    let leads = {
        let mut leader = leader.clone();
        async move {
            tokio::select! {
                _ = leader.wait_for(|l| l.as_ref().is_some_and(|l| l.node == me)) => {}
                // A standby whose session ended starts over.
                why = &mut session_ended => super::restart(&why.unwrap_or_default()),
            }
        }
    };
    let quic = tokio::spawn(standby::serve_quic(
        endpoint.clone(),
        Arc::new(standby(leader.clone())),
    ));
    leads.await;
    quic.abort();
    info!(node = candidacy.node, "this aggregator leads");
    Ok(Leadership {
        candidacy,
        client,
        leader,
        follow,
    })
}
