//! Deployments: one per app at a time, a list of Marathon steps (`StartApplication`,
//! `ScaleApplication`, `RestartApplication`, `StopApplication`), finished when the app has
//! converged. Cancelling rolls back to the definition before the deployment; a forced
//! cancel just forgets the deployment.

use serde_json::Value;

use super::{definition::AppDefinition, instances::App};

/// A change being carried out.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub id: String,
    pub app_id: String,
    pub version: String,
    pub steps: Vec<&'static str>,
    /// 1-based, as Marathon shows it.
    pub current_step: usize,
    /// The app before and after (Marathon JSON), for the plan in events.
    pub original: Option<Value>,
    pub target: Option<Value>,
    /// What a cancel restores: the definition and its configuration version.
    pub rollback: Option<(AppDefinition, String)>,
    pub started_ms: u64,
}

/// The steps of a change from `before` (None: a new app) to `after` (None: deleted).
pub fn steps(before: Option<&AppDefinition>, after: Option<&AppDefinition>) -> Vec<&'static str> {
    match (before, after) {
        (None, Some(_)) => vec!["StartApplication", "ScaleApplication"],
        (Some(_), None) => vec!["StopApplication"],
        (Some(b), Some(a)) if b.needs_restart(a) => vec!["RestartApplication"],
        _ => vec!["ScaleApplication"],
    }
}

impl Deployment {
    pub fn new(
        id: String,
        app: &App,
        before: Option<&AppDefinition>,
        version: &str,
        now: u64,
    ) -> Self {
        let after = (!app.deleting).then_some(&app.definition);
        Self {
            id,
            app_id: app.definition.id.clone(),
            version: version.to_owned(),
            steps: steps(before, after),
            current_step: 1,
            original: before.map(AppDefinition::to_json),
            target: after.map(AppDefinition::to_json),
            rollback: None,
            started_ms: now,
        }
    }
}
