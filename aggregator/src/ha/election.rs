//! Leader election in Mesos's layout: each aggregator creates an ephemeral sequential
//! `json.info_` znode holding its `MasterInfo` JSON under the election path; the smallest
//! sequence leads. Every contender watches the children and publishes who leads now.

use tokio::sync::watch;
use tracing::info;
use zookeeper_client as zk;

use crate::zk::ZkError;

pub use proto::zk_url::CONTENDER_PREFIX;

/// The pause before asking again while ZooKeeper is unreachable.
const RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Whether a ZooKeeper error ends this contender's session for good.
pub fn terminal(error: &zk::Error) -> bool {
    matches!(
        error,
        zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed
    )
}

/// The current leader, as its znode says.
#[derive(Debug, Clone, PartialEq)]
pub struct Leader {
    /// The leader's znode name (`json.info_0000000003`).
    pub node: String,
    /// Its `MasterInfo` JSON.
    pub info: serde_json::Value,
}

impl Leader {
    /// `host:port` of the leader's HTTP API.
    pub fn http(&self) -> Option<String> {
        let address = self.info.get("address")?;
        let host = address
            .get("ip")
            .or_else(|| address.get("hostname"))?
            .as_str()?;
        let port = address.get("port")?.as_u64()?;
        Some(if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        })
    }

    /// `hostname:port` of the leader's HTTP API, as Marathon's `/v2/leader` names it.
    pub fn named(&self) -> Option<String> {
        let address = self.info.get("address")?;
        let host = address.get("hostname")?.as_str()?;
        Some(format!("{host}:{}", address.get("port")?.as_u64()?))
    }

    /// The leader's QUIC address for agents.
    pub fn quic(&self) -> Option<String> {
        Some(self.info.get("strata_quic")?.as_str()?.to_owned())
    }
}

/// The contender with the smallest sequence among `children` (shared with agents).
pub use proto::zk_url::lowest_contender as lowest;

/// A contender's place in the election.
#[derive(Debug)]
pub struct Candidacy {
    client: zk::Client,
    path: String,
    /// This contender's znode name.
    pub node: String,
}

/// This process's contender znode, to withdraw before it starts over on purpose.
static ENTERED: std::sync::Mutex<Option<(zk::Client, String)>> = std::sync::Mutex::new(None);

fn lock_entered() -> std::sync::MutexGuard<'static, Option<(zk::Client, String)>> {
    ENTERED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Deletes this process's contender znode (within a second), so that a planned restart
/// leaves no stale contender behind for a session timeout: the others, or this process
/// once started again, lead at once.
pub async fn withdraw() {
    let entered = lock_entered().take();
    if let Some((client, path)) = entered {
        let deleted = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            client.delete(&path, None),
        )
        .await;
        if !matches!(deleted, Ok(Ok(()))) {
            tracing::warn!(path, "the contender znode stays until its session ends");
        }
    }
}

impl Candidacy {
    /// Enters the election under `path` with `info`.
    pub async fn enter(
        client: zk::Client,
        path: &str,
        info: &serde_json::Value,
    ) -> Result<Self, ZkError> {
        let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        client
            .mkdir(path, &open)
            .await
            .map_err(|e| ZkError::new("creating", path, e))?;
        let ephemeral = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        let prefix = format!("{path}/{CONTENDER_PREFIX}");
        let data = serde_json::to_vec(info).expect("JSON always serializes");
        let (_, sequence) = client
            .create(&prefix, &data, &ephemeral)
            .await
            .map_err(|e| ZkError::new("entering the election at", path, e))?;
        let node = format!("{CONTENDER_PREFIX}{sequence}");
        info!(node, path, "entered the leader election");
        *lock_entered() = Some((client.clone(), format!("{path}/{node}")));
        Ok(Self {
            client,
            path: path.to_owned(),
            node,
        })
    }

    /// The same contender, for a task that follows the election.
    pub fn watching(client: zk::Client, path: &str, node: &str) -> Self {
        Self {
            client,
            path: path.to_owned(),
            node: node.to_owned(),
        }
    }

    /// Replaces this contender's `MasterInfo` (the leader's, once it knows its state).
    pub async fn publish(&self, info: &serde_json::Value) -> Result<(), ZkError> {
        let path = format!("{}/{}", self.path, self.node);
        let data = serde_json::to_vec(info).expect("JSON always serializes");
        self.client
            .set_data(&path, &data, None)
            .await
            .map(drop)
            .map_err(|e| ZkError::new("publishing", &path, e))
    }

    /// Follows the election: publishes each new leader on `leader` until this contender's
    /// znode is gone (its session ended) or ZooKeeper fails for good; returns why.
    pub async fn follow(&self, leader: &watch::Sender<Option<Leader>>) -> ZkError {
        loop {
            let (children, watcher) = match self.client.list_and_watch_children(&self.path).await {
                Ok(listed) => listed,
                Err(e) if terminal(&e) => {
                    return ZkError::new("watching the election at", &self.path, e);
                }
                Err(_) => {
                    // Disconnected (no quorum, a server restarting): the session, and with
                    // it this contender's znode, lives on; ask again.
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            if !children.contains(&self.node) {
                return ZkError::new("watching the election at", &self.path, zk::Error::NoNode);
            }
            if let Some(lowest) = lowest(&children) {
                let path = format!("{}/{lowest}", self.path);
                match self.client.get_and_watch_data(&path).await {
                    Ok((data, _, data_watch)) => {
                        let info = serde_json::from_slice(&data).unwrap_or_default();
                        let now = Leader {
                            node: lowest.clone(),
                            info,
                        };
                        leader.send_if_modified(|was| {
                            let changed = was.as_ref() != Some(&now);
                            if changed {
                                info!(leader = now.node, http = now.http(), "leader elected");
                                *was = Some(now);
                            }
                            changed
                        });
                        // Either the children or the leader's data changing re-reads both.
                        tokio::select! {
                            _ = watcher.changed() => {}
                            _ = data_watch.changed() => {}
                        }
                        continue;
                    }
                    Err(zk::Error::NoNode) => continue,
                    Err(e) if terminal(&e) => return ZkError::new("reading", &path, e),
                    Err(_) => tokio::time::sleep(RETRY).await,
                }
            }
            watcher.changed().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_sequence_leads_and_other_children_are_ignored() {
        let children: Vec<String> = [
            "state",
            "json.info_0000000012",
            "json.info_0000000003",
            "log_replicas",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(
            lowest(&children).map(String::as_str),
            Some("json.info_0000000003")
        );
        assert_eq!(lowest(&["state".to_owned()]), None);
    }

    #[test]
    fn the_leader_is_reached_at_its_address() {
        let leader = Leader {
            node: "json.info_0000000001".into(),
            info: serde_json::json!({
                "address": {"hostname": "node-1", "ip": "127.0.0.1", "port": 5050},
                "strata_quic": "127.0.0.1:5051",
            }),
        };
        assert_eq!(leader.http().as_deref(), Some("127.0.0.1:5050"));
        assert_eq!(leader.named().as_deref(), Some("node-1:5050"));
        assert_eq!(leader.quic().as_deref(), Some("127.0.0.1:5051"));
    }
}
