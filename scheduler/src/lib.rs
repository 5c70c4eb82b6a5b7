//! strata's scheduling core, pure and deterministic: resources, the DRF allocator, offers,
//! filters, placement constraints. No I/O and no clock: time and events are passed in.
