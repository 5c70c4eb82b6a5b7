//! strata's per-node agent: collectors for processes, TCP connections, NAT, containers and
//! host facts (eBPF first, procfs when eBPF is unavailable), feeding a pure, bounded core
//! state that snapshots and reports are built from.
//!
//! - [`model`]: the agent's own types for what it sees.
//! - [`core`]: the pure state, fed by events, testable without root.
//! - [`collect`]: the sources (eBPF, procfs, conntrack, Docker, rtnetlink) and the async
//!   collector that drives them.
//! - [`exec`]: the agent as a Mesos-style executor (command and Docker tasks, status
//!   updates, checkpoints and recovery).
//! - [`report`]: the node's state as reports, full and delta.
//! - [`transport`]: the QUIC link to the aggregator (join, identity, reporting).
//! - [`governor`], [`run`]: `strata-agent run` under its CPU budget.
//! - [`cli`]: the `strata-agent` command line.

pub mod cli;
pub mod collect;
pub mod core;
pub mod exec;
pub mod governor;
pub mod model;
pub mod report;
pub mod run;
pub mod transport;

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
