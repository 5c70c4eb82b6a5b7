//! strata's aggregator: receives the agents' reports over QUIC, merges them into the live
//! topology served over REST and WebSocket, and hosts the master (DRF allocator, Mesos v1
//! scheduler and operator APIs, durable state).
//!
//! - [`topology`]: the pure merge of reports into views.
//! - [`ingest`]: the QUIC endpoint (enrollment and reports, mutual TLS).
//! - [`pki`], [`tokens`]: the certificate authority and join tokens in the data directory.
//! - [`master`]: the Mesos-style master and its HTTP APIs.
//! - [`apps`]: the Marathon-compatible app service, a framework of the master.
//! - [`services`]: declarative service files, as the `strata` client applies them.
//! - [`http`]: the REST and WebSocket API.
//! - [`zk`]: ZooKeeper addresses, subtrees, and the sync engine between two clusters.
//! - [`ha`]: several aggregators on one ZooKeeper ensemble: election, standbys, fencing.
//! - [`migration`]: moving a set of aggregators, its agents and frameworks from one
//!   ZooKeeper cluster to another, in six phases that can each be rolled back.
//! - [`state`], [`metrics`], [`links`]: what the tasks share; the agents connected now.

pub mod apps;
pub mod ha;
pub mod http;
pub mod ingest;
pub mod links;
pub mod master;
pub mod metrics;
pub mod migration;
pub mod pki;
pub mod services;
pub mod state;
pub mod tokens;
pub mod topology;
pub mod zk;

/// An error and its sources on one line, outermost first: `a: b: c`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
