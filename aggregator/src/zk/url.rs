//! `zk://` addresses: the type lives in [`proto::zk_url`], shared with agents that find the
//! leader through ZooKeeper.

pub use proto::zk_url::{BadZkUrl, ZkUrl};
