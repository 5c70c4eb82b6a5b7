//! The leader's `MasterInfo` kept on the cluster the masters are not on, while the sync runs,
//! so that Mesos clients still looking there find the leader.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tracing::{info, warn};
use zookeeper_client as zk;

use super::{checks, lock};
use crate::zk::url::ZkUrl;

/// The leader's MasterInfo znode on the other cluster.
#[derive(Debug)]
pub struct Advert {
    pub client: zk::Client,
    pub path: String,
}

/// Keeps `info` in an ephemeral sequential `json.info_` znode on `url` (re-created with a new
/// session after one ends), so Mesos clients looking there find this leader.
pub async fn advertise(url: ZkUrl, info: serde_json::Value, held: Arc<Mutex<Option<Advert>>>) {
    let data = serde_json::to_vec(&info).expect("MasterInfo serializes");
    loop {
        let client = match checks::connect(&url).await {
            Ok(client) => client,
            Err(err) => {
                warn!(error = err, "cannot advertise the leader; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mode = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        match client
            .create(&format!("{}/json.info_", url.root), &data, &mode)
            .await
        {
            Ok((_, sequence)) => {
                let path = format!("{}/json.info_{sequence}", url.root);
                info!(%url, path, "the leader's MasterInfo is advertised on the other cluster");
                let mut states = client.state_watcher();
                *lock(&held) = Some(Advert { client, path });
                while !states.changed().await.is_terminated() {}
                *lock(&held) = None;
            }
            Err(err) => {
                warn!(%url, error = %err, "cannot advertise the leader; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
