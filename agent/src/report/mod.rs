//! Reports for the aggregator: the node's state in wire types ([`build`]), and the full or
//! delta report to send next ([`delta`]). Pure: snapshots in, reports out.

pub mod build;
pub mod delta;
