//! The app service: long-running apps through Marathon's REST API, run as a framework of
//! the master on the same allocator.
//!
//! - [`definition`], [`validate`]: app definitions, Marathon's defaults and rules.
//! - [`instances`], [`plan`], [`deployments`]: what each app runs and needs next (pure).
//! - [`placement`]: fitting instances into offers, and their Mesos `TaskInfo`.
//! - [`core`], [`changes`]: the state machine tying them together (pure): offers,
//!   updates and steps; changes from the API.
//! - [`views`]: Marathon's JSON.
//! - [`service`]: the async shell, a framework of the master.
//! - [`autoscale`], [`autoscaler`]: scale policies from labels, decided on the usage the
//!   agents report (pure), and their async shell.
//! - [`api`]: Marathon's REST API and event stream.
//! - [`discovery`]: apps' ready endpoints, answered or watched.

pub mod api;
pub mod autoscale;
pub mod autoscaler;
pub mod changes;
pub mod core;
pub mod definition;
pub mod deployments;
pub mod discovery;
pub mod instances;
pub mod placement;
pub mod plan;
pub mod service;
pub mod validate;
pub mod views;

/// Task labels naming the app and configuration version a task belongs to, so the service
/// finds its instances again after a restart.
pub const LABEL_APP: &str = "strata.app";
pub const LABEL_VERSION: &str = "strata.version";
