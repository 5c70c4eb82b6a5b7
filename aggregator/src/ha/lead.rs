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

/// Enters the election with `info` and serves as a standby (HTTP on `http`, QUIC on
/// `endpoint`) until this contender leads.
pub async fn campaign(
    config: &HaConfig,
    client: zk::Client,
    info: &serde_json::Value,
    http: SocketAddr,
    endpoint: &Endpoint,
    standby: impl FnOnce(LeaderWatch) -> QuicStandby,
) -> anyhow::Result<Leadership> {
    let candidacy = Candidacy::enter(client.clone(), config.election_path(), info)
        .await
        .context("entering the leader election")?;
    let (sender, leader) = watch::channel::<Option<Leader>>(None);
    let follower = Candidacy::watching(client.clone(), config.election_path(), &candidacy.node);
    let follow = tokio::spawn(async move { follower.follow(&sender).await });
    let me = candidacy.node.clone();
    let leads = {
        let mut leader = leader.clone();
        async move {
            let _ = leader
                .wait_for(|l| l.as_ref().is_some_and(|l| l.node == me))
                .await;
        }
    };
    let quic = tokio::spawn(standby::serve_quic(
        endpoint.clone(),
        Arc::new(standby(leader.clone())),
    ));
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .with_context(|| format!("binding HTTP on {http}"))?;
    info!(%http, node = candidacy.node, "aggregator listening as a standby");
    axum::serve(listener, standby::router(leader.clone()))
        .with_graceful_shutdown(leads)
        .await
        .context("serving HTTP as a standby")?;
    quic.abort();
    info!(node = candidacy.node, "this aggregator leads");
    Ok(Leadership {
        candidacy,
        client,
        leader,
        follow,
    })
}
