//! App changes from the API, each a deployment: create, update (partial or whole, or back
//! to a stored version), restart, delete, killing tasks (optionally scaling down), and
//! cancelling a deployment (a rollback, or with `force` only forgetting it).

use serde_json::{Value, json};

use super::{
    core::{ApiError, AppsCore},
    definition::{self, AppDefinition, Invalid},
    deployments::Deployment,
    instances::App,
    views,
};

impl AppsCore {
    pub(super) fn locked(&self, app: &App, force: bool) -> Result<(), ApiError> {
        match &app.deployment {
            Some(id) if !force => Err(ApiError::Locked(vec![id.clone()])),
            _ => Ok(()),
        }
    }

    /// Starts a deployment for `id` (replacing any running one) and announces it.
    fn deploy(
        &mut self,
        id: &str,
        before: Option<AppDefinition>,
        rollback: Option<(AppDefinition, String)>,
        version: &str,
        now: u64,
    ) -> Value {
        let deployment_id = format!("{:032x}", rand::random::<u128>());
        let deployment_id = format!(
            "{}-{}-{}-{}-{}",
            &deployment_id[..8],
            &deployment_id[8..12],
            &deployment_id[12..16],
            &deployment_id[16..20],
            &deployment_id[20..]
        );
        let Some(app) = self.apps.get_mut(id) else {
            return json!({});
        };
        if let Some(previous) = app.deployment.replace(deployment_id.clone()) {
            self.deployments.remove(&previous);
        }
        let mut deployment =
            Deployment::new(deployment_id.clone(), app, before.as_ref(), version, now);
        deployment.rollback = rollback;
        let plan = views::plan(&deployment);
        let current = json!({ "actions": [{ "action": deployment.steps[0], "app": id }] });
        self.deployments.insert(deployment_id.clone(), deployment);
        self.dirty.insert(id.to_owned());
        self.emit(
            "deployment_info",
            now,
            json!({ "plan": plan, "currentStep": current }),
        );
        json!({ "deploymentId": deployment_id, "version": version })
    }

    /// `POST /v2/apps`: the app as created.
    pub fn create(&mut self, body: &Value, now: u64) -> Result<Value, ApiError> {
        let mut definition = definition::parse(body).map_err(ApiError::Invalid)?;
        definition.id = definition::absolute_id(&definition.id);
        definition.validate().map_err(ApiError::Invalid)?;
        if self.apps.contains_key(&definition.id) {
            return Err(ApiError::Conflict(format!(
                "An app with id [{}] already exists.",
                definition.id
            )));
        }
        let version = self.version(now);
        definition.version = Some(version.clone());
        let id = definition.id.clone();
        self.apps
            .insert(id.clone(), App::new(definition.clone(), &version));
        self.emit(
            "api_post_event",
            now,
            json!({ "clientIp": "", "uri": "/v2/apps", "appDefinition": definition.to_json() }),
        );
        self.deploy(&id, None, None, &version, now);
        Ok(self
            .apps
            .get(&id)
            .map_or_else(|| json!({}), |a| views::app(a, false)))
    }

    /// `PUT`/`PATCH /v2/apps/{id}`: a partial update merges `body` into the definition
    /// (Marathon's default for PUT); a missing app is created.
    pub fn update(
        &mut self,
        id: &str,
        body: &Value,
        partial: bool,
        force: bool,
        now: u64,
    ) -> Result<Value, ApiError> {
        let id = definition::absolute_id(id);
        if !self.apps.contains_key(&id) {
            let mut body = body.clone();
            body["id"] = json!(id);
            self.create(&body, now)?;
            let created = self.apps.get(&id);
            return Ok(json!({
                "deploymentId": created.and_then(|a| a.deployment.clone()),
                "version": created.map(|a| a.config_version.clone()),
            }));
        }
        let Some(app) = self.apps.get(&id) else {
            return Err(ApiError::NotFound(format!("App '{id}' does not exist")));
        };
        if app.deleting {
            return Err(ApiError::Locked(app.deployment.iter().cloned().collect()));
        }
        self.locked(app, force)?;
        let Some(fields) = body.as_object() else {
            return Err(ApiError::Invalid(Invalid::one(
                "/",
                "an app definition is a JSON object",
            )));
        };
        let mut merged = if partial {
            serde_json::to_value(&app.definition).unwrap_or_default()
        } else {
            json!({})
        };
        if let Some(version) = fields
            .get("version")
            .and_then(Value::as_str)
            .filter(|_| fields.len() == 1)
        {
            // {"version": v}: roll back to a stored version.
            let stored = app.versions.get(version).cloned().ok_or_else(|| {
                ApiError::NotFound(format!("App '{id}' has no version {version}"))
            })?;
            merged = serde_json::to_value(stored).unwrap_or_default();
        } else {
            for (key, value) in fields {
                merged[key.as_str()] = value.clone();
            }
        }
        merged["id"] = json!(id);
        merged["version"] = Value::Null;
        let mut definition = definition::parse(&merged).map_err(ApiError::Invalid)?;
        definition.id = id.clone();
        definition.validate().map_err(ApiError::Invalid)?;
        let version = self.version(now);
        definition.version = Some(version.clone());
        let Some(app) = self.apps.get_mut(&id) else {
            return Err(ApiError::NotFound(format!("App '{id}' does not exist")));
        };
        let before = app.definition.clone();
        let rollback = (before.clone(), app.config_version.clone());
        app.change(definition, &version);
        let shown = app.definition.to_json();
        self.emit(
            "api_post_event",
            now,
            json!({ "clientIp": "", "uri": format!("/v2/apps{id}"), "appDefinition": shown }),
        );
        Ok(self.deploy(&id, Some(before), Some(rollback), &version, now))
    }

    /// `POST /v2/apps/{id}/restart`: new tasks for the same definition, rolled like an upgrade.
    pub fn restart(&mut self, id: &str, force: bool, now: u64) -> Result<Value, ApiError> {
        let id = definition::absolute_id(id);
        let app = self
            .apps
            .get(&id)
            .ok_or_else(|| ApiError::NotFound(format!("App '{id}' does not exist")))?;
        self.locked(app, force)?;
        let version = self.version(now);
        let Some(app) = self.apps.get_mut(&id) else {
            return Err(ApiError::NotFound(format!("App '{id}' does not exist")));
        };
        let before = app.definition.clone();
        let rollback = (before.clone(), app.config_version.clone());
        app.config_version = version.clone();
        app.definition.version = Some(version.clone());
        app.versions.insert(version.clone(), app.definition.clone());
        // Same definition, new configuration version: `steps` sees no change, so the step
        // is named here.
        let answer = self.deploy(&id, Some(before), Some(rollback), &version, now);
        let deployment = self.apps.get(&id).and_then(|a| a.deployment.clone());
        if let Some(d) = deployment.and_then(|d| self.deployments.get_mut(&d)) {
            d.steps = vec!["RestartApplication"];
        }
        Ok(answer)
    }

    /// `DELETE /v2/apps/{id}`: every instance is killed, then the app is gone.
    pub fn delete(&mut self, id: &str, force: bool, now: u64) -> Result<Value, ApiError> {
        let id = definition::absolute_id(id);
        let app = self
            .apps
            .get(&id)
            .ok_or_else(|| ApiError::NotFound(format!("App '{id}' does not exist")))?;
        self.locked(app, force)?;
        let before = app.definition.clone();
        let version = self.version(now);
        if let Some(app) = self.apps.get_mut(&id) {
            app.deleting = true;
        }
        Ok(self.deploy(&id, Some(before), None, &version, now))
    }

    /// Kills tasks of `id` (all of them when `only` is None); with `scale`, the app's
    /// instance count drops by as many.
    pub fn kill(
        &mut self,
        id: &str,
        only: Option<&[String]>,
        scale: bool,
        now: u64,
    ) -> Result<(Vec<Value>, Option<Value>), ApiError> {
        let id = definition::absolute_id(id);
        let app = self
            .apps
            .get_mut(&id)
            .ok_or_else(|| ApiError::NotFound(format!("App '{id}' does not exist")))?;
        let chosen: Vec<String> = app
            .active()
            .filter(|i| only.is_none_or(|ids| ids.contains(&i.task_id)))
            .map(|i| i.task_id.clone())
            .collect();
        if let Some(ids) = only
            && chosen.is_empty()
        {
            return Err(ApiError::NotFound(format!(
                "Task '{}' does not exist",
                ids.join(", ")
            )));
        }
        let mut killed = Vec::new();
        for task_id in &chosen {
            if let Some(instance) = app.instances.get_mut(task_id) {
                instance.killing = true;
            }
            if let Some(instance) = app.instances.get(task_id) {
                killed.push(views::task(app, instance));
            }
        }
        let change = if scale {
            let instances = app.definition.instances.saturating_sub(chosen.len() as u32);
            // Killed tasks are already on their way out; the scale-down must not kill more.
            Some(self.update(&id, &json!({ "instances": instances }), true, true, now)?)
        } else {
            None
        };
        Ok((killed, change))
    }

    /// `DELETE /v2/deployments/{id}`: rolls back (a new deployment), or with `force` only
    /// forgets it.
    pub fn cancel_deployment(
        &mut self,
        deployment_id: &str,
        force: bool,
        now: u64,
    ) -> Result<Option<Value>, ApiError> {
        let deployment = self.deployments.remove(deployment_id).ok_or_else(|| {
            ApiError::NotFound(format!("DeploymentPlan {deployment_id} does not exist"))
        })?;
        self.emit(
            "deployment_failed",
            now,
            json!({ "id": deployment_id, "plan": views::plan(&deployment) }),
        );
        let Some(app) = self.apps.get_mut(&deployment.app_id) else {
            return Ok(None);
        };
        app.deployment = None;
        if force {
            return Ok(None);
        }
        let id = deployment.app_id.clone();
        let before = app.definition.clone();
        match deployment.rollback {
            Some((definition, config_version)) => {
                app.deleting = false;
                app.definition = definition;
                app.config_version = config_version;
            }
            // A new app rolled back is removed.
            None => app.deleting = true,
        }
        let version = self.version(now);
        Ok(Some(self.deploy(&id, Some(before), None, &version, now)))
    }
}
