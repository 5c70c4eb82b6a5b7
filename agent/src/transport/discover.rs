//! Finding the leading aggregator through ZooKeeper (`--aggregator zk://HOST:PORT/PATH`), as
//! Mesos agents find their master: the contender with the lowest sequence among
//! `PATH/json.info_*` leads, and its MasterInfo JSON names the QUIC address agents report
//! to (`strata_quic`). During a migration between ZooKeeper clusters, `PATH/migration` may
//! say where agents look now (`agents_at`); the agent follows it, so agents move when the
//! migration moves them, and one still started with the old address finds the new cluster.
//!
//! The session lasts one lookup: the agent looks again whenever it reconnects. Where a
//! redirection led is remembered in the state directory and looked at first.

use std::{path::Path, time::Duration};

use proto::zk_url::{MIGRATION_RECORD, ZkUrl, lowest_contender, remember_move, remembered_move};
use zookeeper_client as zk;

/// How long one lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Redirections followed at most (one is all a migration makes).
const MAX_HOPS: usize = 3;

/// Why no leader was found.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("ZooKeeper at {url}: {source}")]
    Zk {
        url: String,
        #[source]
        source: zk::Error,
    },
    #[error("ZooKeeper at {0} did not answer in time")]
    Timeout(String),
    #[error("no aggregator leads at {0}")]
    NoLeader(String),
    #[error("the leader's znode at {0} names no strata_quic address")]
    NoQuic(String),
    #[error("{0}")]
    BadUrl(#[from] proto::zk_url::BadZkUrl),
}

/// The leader found: its QUIC address and the `zk://` address it was found through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub quic: String,
    pub via: ZkUrl,
}

/// Where agents look now, as `PATH/migration` says (its `agents_at`), if it says so.
pub fn redirect(record: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(record).ok()?;
    value.get("agents_at")?.as_str().map(str::to_owned)
}

/// The QUIC address a leader's MasterInfo JSON names.
pub fn quic_of(info: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(info).ok()?;
    value.get("strata_quic")?.as_str().map(str::to_owned)
}

/// Finds the leader at `url`, following the migration's redirection. Where a redirection
/// led is remembered in `state_dir` and looked at first next time, so the agent finds the
/// set once the old cluster is gone.
pub async fn leader(url: &ZkUrl, state_dir: &Path) -> Result<Found, DiscoverError> {
    let remembered = remembered_move(state_dir, url);
    let found = match remembered {
        Some(at) => match tokio::time::timeout(LOOKUP_TIMEOUT, lookup(at)).await {
            Ok(Ok(found)) => Ok(found),
            _ => look(url).await,
        },
        None => look(url).await,
    }?;
    if let Err(error) = remember_move(state_dir, url, &found.via) {
        tracing::warn!(%error, "cannot remember where the set is");
    }
    Ok(found)
}

async fn look(url: &ZkUrl) -> Result<Found, DiscoverError> {
    tokio::time::timeout(LOOKUP_TIMEOUT, lookup(url.clone()))
        .await
        .map_err(|_| DiscoverError::Timeout(url.to_string()))?
}

async fn lookup(mut url: ZkUrl) -> Result<Found, DiscoverError> {
    for _ in 0..MAX_HOPS {
        let failed = |url: &ZkUrl| {
            let url = url.to_string();
            move |source| DiscoverError::Zk { url, source }
        };
        let client = zk::Client::connector()
            .with_session_timeout(LOOKUP_TIMEOUT)
            .connect(&url.servers)
            .await
            .map_err(failed(&url))?;
        match client.get_data(&url.absolute(MIGRATION_RECORD)).await {
            Ok((record, _)) => {
                if let Some(next) = redirect(&record).filter(|n| *n != url.to_string()) {
                    url = next.parse()?;
                    continue;
                }
            }
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(failed(&url)(e)),
        }
        let children = client
            .list_children(&url.root)
            .await
            .map_err(failed(&url))?;
        let leader =
            lowest_contender(&children).ok_or_else(|| DiscoverError::NoLeader(url.to_string()))?;
        let (info, _) = client
            .get_data(&format!("{}/{leader}", url.root))
            .await
            .map_err(failed(&url))?;
        let quic = quic_of(&info).ok_or_else(|| DiscoverError::NoQuic(url.to_string()))?;
        return Ok(Found { quic, via: url });
    }
    Err(DiscoverError::NoLeader(url.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_contender_leads_and_names_its_quic_address() {
        let children = [
            "state".to_owned(),
            "json.info_0000000012".to_owned(),
            "json.info_0000000003".to_owned(),
            "json.info_garbage".to_owned(),
            "log_replicas".to_owned(),
        ];
        assert_eq!(
            lowest_contender(&children).map(String::as_str),
            Some("json.info_0000000003")
        );
        assert_eq!(lowest_contender(&children[..1]), None);
        let info = br#"{"id":"m","address":{"ip":"127.0.0.1","port":5050},"strata_quic":"127.0.0.1:7001"}"#;
        assert_eq!(quic_of(info).as_deref(), Some("127.0.0.1:7001"));
        assert_eq!(quic_of(b"{\"id\":\"mesos\"}"), None);
        assert_eq!(quic_of(b"not json"), None);
    }

    #[test]
    fn a_migration_record_redirects_agents() {
        let record = br#"{"masters_at":"zk://b:2181/s","agents_at":"zk://b:2181/s"}"#;
        assert_eq!(redirect(record).as_deref(), Some("zk://b:2181/s"));
        assert_eq!(redirect(br#"{"masters_at":"zk://b:2181/s"}"#), None);
        assert_eq!(redirect(b"garbage"), None);
    }
}
