//! strata's scheduling core, pure and deterministic: resources, the DRF allocator, offers,
//! filters, placement constraints. No I/O and no clock: time and events are passed in.
//!
//! - [`resources`]: scalars (cpus, mem, disk, gpus), ranges (ports) and sets, exactly.
//! - [`pools`]: resources by reservation role.
//! - [`drf`]: the reference model of dominant resource fairness (Ghodsi et al., NSDI 2011).
//! - [`sorter`]: the incremental weighted-DRF order the allocator uses.
//! - [`allocator`]: hierarchical DRF with Mesos's offers, filters, suppress and revive,
//!   timeouts and rescinds.
//! - [`constraints`]: Marathon-style placement constraints.

pub mod allocator;
pub mod constraints;
pub mod drf;
pub mod pools;
pub mod resources;
pub mod sorter;
