//! The QUIC link to the aggregator: TLS trust and identity, enrollment, reporting.

pub mod client;
pub mod discover;
pub mod identity;
pub mod tls;
