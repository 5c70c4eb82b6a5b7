//! strata's aggregator: receives the agents' reports over QUIC, merges them into the live
//! topology served over REST, WebSocket and the web UI, and hosts the master (allocator,
//! Mesos v1 APIs), the app service and the ZooKeeper integration.
//!
//! - [`topology`]: the pure merge of reports into views.

pub mod topology;
