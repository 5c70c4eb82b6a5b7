//! ZooKeeper: addresses, subtrees as data, and the sync engine that copies a subtree
//! between two clusters and keeps both in step.
//!
//! - [`url`]: `zk://` addresses.
//! - [`tree`]: a subtree as plain data and the differences of two (pure).
//! - [`read`]: reading a subtree, pipelined.
//! - [`copy`]: the initial copy: the writes that make one tree match another (pure), applied
//!   in `multi` batches within the server's request size limit.
//! - [`decide`]: what live sync does with one change under a conflict policy (pure).
//! - [`live`]: live sync through persistent recursive watches, one direction or both;
//!   [`sync_config`]: what it syncs; [`write`]: one node made like the other side's;
//!   [`metrics`]: what it counts.

pub mod copy;
pub mod decide;
pub mod live;
pub mod metrics;
pub mod read;
pub mod sync_config;
pub mod tree;
pub mod url;
pub mod write;

use zookeeper_client as zk;

/// A ZooKeeper call that failed, with what it was doing and where.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{doing} {path}: {source}")]
pub struct ZkError {
    pub doing: &'static str,
    pub path: String,
    #[source]
    pub source: zk::Error,
}

impl ZkError {
    pub fn new(doing: &'static str, path: &str, source: zk::Error) -> Self {
        Self {
            doing,
            path: path.to_owned(),
            source,
        }
    }
}

/// Connects to `url`'s servers with a session timeout fit for a long-running copier.
pub async fn connect(url: &url::ZkUrl) -> Result<zk::Client, ZkError> {
    zk::Client::connector()
        .with_session_timeout(std::time::Duration::from_secs(10))
        .connect(&url.servers)
        .await
        .map_err(|e| ZkError::new("connecting to", &url.to_string(), e))
}
