//! strata's scheduling core, pure and deterministic: resources, the DRF allocator, offers,
//! filters, placement constraints. No I/O and no clock: time and events are passed in.
//!
//! - [`resources`]: scalar resources (cpus, mem, disk, gpus) and their arithmetic.
//! - [`drf`]: dominant resource fairness (Ghodsi et al., NSDI 2011): who gets the next
//!   allocation.

pub mod drf;
pub mod resources;
