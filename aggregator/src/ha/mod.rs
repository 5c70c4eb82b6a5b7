//! High availability: several aggregators against one ZooKeeper ensemble
//! (`strata-aggregator --zk zk://HOST:PORT[,HOST:PORT...]/PATH`).
//!
//! - [`election`]: leader election with ephemeral sequential `PATH/json.info_*` znodes that
//!   hold Mesos's `MasterInfo` JSON, as Mesos masters write them, so Mesos-aware clients
//!   (pymesos's ZooKeeper detector) find the leader. The lowest sequence leads.
//! - [`standby`]: what a standby serves: `307` with a `Location` on the leader for API
//!   calls, and, on QUIC, joining agents plus a refusal that names the leader's QUIC address
//!   for report connections, so agents follow the leader.
//! - [`guard`]: `503` for app changes while the state cannot be stored.
//! - [`lead`]: entering the election and serving as a standby until this aggregator leads.
//! - [`shared_ca`]: the cluster CA every aggregator of the set serves and verifies with.
//!
//! The leader keeps the master's and the apps' state under `PATH/state`
//! ([`crate::master::store::zk_backend`]). Only `json.info_*` children of `PATH` are
//! contenders; the state's node sorts after them, so detectors that take the smallest child
//! find a master whenever one leads.
//!
//! A leader that loses its ZooKeeper session, or finds its writes fenced by a successor,
//! stops leading at once, as Mesos masters do, and starts over as a standby: the process
//! executes itself anew with the same arguments ([`restart`]), so nothing of the old
//! leadership lingers. A standby that loses its session does the same. Losing quorum for a
//! moment is not losing leadership: the leader keeps serving reads, refuses app changes
//! (`503`) while its writes are held, and commits them once quorum returns. A loss longer
//! than 1.4 session timeouts ends the session (the client gives up on it, as the servers
//! will), and the set elects again once quorum is back.

pub mod election;
pub mod guard;
pub mod lead;
pub mod shared_ca;
pub mod standby;

use std::time::Duration;

use crate::zk::{ZkError, url::ZkUrl};
use zookeeper_client as zk;

/// Starts this aggregator over as a standby: executes the same program with the same
/// arguments. Exits with 75 (EX_TEMPFAIL) if it cannot, for a supervisor to restart it.
pub fn restart(why: &str) -> ! {
    use std::os::unix::process::CommandExt as _;
    tracing::error!(
        reason = why,
        "leadership or the ZooKeeper session lost; starting over as a standby"
    );
    let error = match std::env::current_exe() {
        Ok(program) => std::process::Command::new(program)
            .args(std::env::args_os().skip(1))
            .exec(),
        Err(error) => error,
    };
    tracing::error!(%error, "cannot start over; exiting for a supervisor to restart this aggregator");
    std::process::exit(75)
}

/// Starts over on purpose (the set's masters moved): the contender znode is withdrawn
/// first, then [`restart`].
pub async fn start_over(why: &str) -> ! {
    election::withdraw().await;
    restart(why)
}

/// Where the aggregators of one set meet.
#[derive(Debug, Clone)]
pub struct HaConfig {
    pub url: ZkUrl,
    /// The ZooKeeper session timeout: how long a dead leader's znode outlives it.
    pub session_timeout: Duration,
}

impl HaConfig {
    /// The parent of the contenders' znodes.
    pub fn election_path(&self) -> &str {
        &self.url.root
    }

    /// Where the leader keeps the durable state.
    pub fn state_path(&self) -> String {
        self.url.absolute("/state")
    }

    /// Connects with the session timeout, retrying (with a message) while no server answers.
    pub async fn connect(&self) -> zk::Client {
        let mut attempt = 0u32;
        loop {
            let connected = zk::Client::connector()
                .with_session_timeout(self.session_timeout)
                .with_fail_eagerly()
                .connect(&self.url.servers)
                .await;
            match connected {
                Ok(client) => return client,
                Err(err) => {
                    attempt += 1;
                    let error = ZkError::new("connecting to", &self.url.to_string(), err);
                    tracing::warn!(%error, attempt, "ZooKeeper unreachable; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
