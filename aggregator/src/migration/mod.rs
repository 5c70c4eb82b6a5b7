//! Moving a highly available set from one ZooKeeper cluster to another without stopping it,
//! in six phases, each started, validated and rolled back on its own (`/api/v1/migration`,
//! `strata migrate`).
//!
//! - [`record`]: the phases and their rules (pure), and the record kept on both clusters.
//! - [`checks`]: what the phases check on the clusters (a fit target, open sessions).
//! - [`controller`]: the leader's shell: the sync, the hand-over of the leadership, the
//!   agents' move; `validate.rs`: what each phase's validation checks.
//! - [`stored`]: the record on a cluster; [`advert`]: the leader's `MasterInfo` on the
//!   other cluster; [`fence`]: the source fenced and unfenced, the target cleared.
//! - [`api`]: the HTTP API.
//!
//! Where the masters are is the record's `masters_at`: an aggregator reads it from the
//! cluster it was started with and elects where it says, and every aggregator follows it
//! when it changes ([`follow`]), so a restarted aggregator continues where the set is.

pub mod advert;
pub mod api;
pub mod checks;
pub mod controller;
pub mod fence;
pub mod record;
pub mod stored;
mod validate;

use std::time::Duration;

use zookeeper_client as zk;

use crate::zk::url::ZkUrl;

/// Why a migration request failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    Rule(#[from] record::RuleError),
    #[error("{0}")]
    BadRequest(String),
    /// A check the phase needs did not pass.
    #[error("{0}")]
    Check(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("this aggregator is not on ZooKeeper: run the set with --zk to migrate it")]
    NotOnZooKeeper,
}

/// Resolves once the record at `home` says the masters are elsewhere: with where.
pub async fn follow(client: zk::Client, home: ZkUrl) -> ZkUrl {
    loop {
        if let Ok(at) = stored::masters_at(&client, &home).await
            && at != home
        {
            return at;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A cluster that failed a request, as an error that says what was being done.
pub(crate) fn zk_error(doing: &str, err: impl std::fmt::Display) -> MigrationError {
    MigrationError::Unavailable(format!("{doing}: {err}"))
}

/// "N path(s) differ between the clusters: " and the first five.
pub(crate) fn paths_differ(paths: &[String]) -> String {
    let first: Vec<&str> = paths.iter().take(5).map(String::as_str).collect();
    format!(
        "{} path(s) differ between the clusters: {}",
        paths.len(),
        first.join(", ")
    )
}

/// The lock's value, also after a panic elsewhere (the values stay consistent).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A `zk://` address from a record or a request.
pub(crate) fn parse(url: &str) -> Result<ZkUrl, MigrationError> {
    url.parse()
        .map_err(|e: crate::zk::url::BadZkUrl| MigrationError::BadRequest(e.to_string()))
}
