//! `strata validate` and `strata apply`: a service file checked (every mistake as
//! `FILE:LINE: PATH: MESSAGE`), then compared with the cluster, the difference shown, and the cluster
//! converged to it through the app API, waiting for the deployments with progress.

use std::{path::Path, time::Duration};

use aggregator::services::{
    self, ServiceFile,
    diff::{self, Change},
    translate,
};
use serde_json::Value;

use crate::{
    Failure,
    client::Client,
    wait::{self, Waited},
};

/// Reads and checks `path`; on mistakes, prints each as `FILE:LINE: PATH: MESSAGE`.
pub fn load(path: &Path) -> Result<ServiceFile, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| Failure::Input(format!("reading {}: {err}", path.display())))?;
    services::load(&text).map_err(|mistakes| {
        for mistake in &mistakes {
            if mistake.path.is_empty() {
                eprintln!("{}:{}: {}", path.display(), mistake.line, mistake.message);
            } else {
                eprintln!(
                    "{}:{}: {}: {}",
                    path.display(),
                    mistake.line,
                    mistake.path,
                    mistake.message
                );
            }
        }
        Failure::Input(format!(
            "{}: {} mistake(s); nothing was applied",
            path.display(),
            mistakes.len()
        ))
    })
}

pub fn validate(path: &Path) -> Result<(), Failure> {
    let file = load(path)?;
    println!(
        "{}: valid, {} service(s) for cluster {}",
        path.display(),
        file.services.len(),
        file.cluster_name
    );
    Ok(())
}

pub struct Options {
    pub dry_run: bool,
    pub wait: bool,
    pub timeout: Duration,
}

pub fn apply(client: &Client, path: &Path, options: &Options) -> Result<(), Failure> {
    let file = load(path)?;
    let desired = translate::apps(&file);
    let current: Vec<Value> = client.get("/v2/apps")?["apps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let group = translate::group(&file.cluster_name);
    let changes = diff::changes(&desired, &current, &group, &file.cluster_name);
    for change in &changes {
        println!("{change}");
    }
    let moving: Vec<&Change> = changes
        .iter()
        .filter(|c| !matches!(c, Change::Unchanged { .. }))
        .collect();
    if moving.is_empty() {
        println!("cluster {}: up to date", file.cluster_name);
        return Ok(());
    }
    if options.dry_run {
        println!("dry run: {} change(s) not applied", moving.len());
        return Ok(());
    }
    for change in &moving {
        match change {
            Change::Create { app, .. } => client.post("/v2/apps", app).map(drop)?,
            Change::Update { id, app, .. } => client
                .put(&format!("/v2/apps{id}?partialUpdate=false"), app)
                .map(drop)?,
            Change::Delete { id } => client.delete(&format!("/v2/apps{id}")).map(drop)?,
            Change::Unchanged { .. } => {}
        }
    }
    println!(
        "cluster {}: {} change(s) applied",
        file.cluster_name,
        moving.len()
    );
    if !options.wait {
        return Ok(());
    }
    let ids: Vec<String> = moving.iter().map(|c| c.id().to_owned()).collect();
    eprintln!(
        "waiting for the deployments (at most {} s):",
        options.timeout.as_secs()
    );
    match wait::deployments(client, &ids, options.timeout)? {
        Waited::Done => {
            println!("cluster {}: converged", file.cluster_name);
            Ok(())
        }
        Waited::TimedOut => Err(Failure::Unfinished(format!(
            "cluster {}: not converged after {} s; the deployments go on (see /v2/deployments)",
            file.cluster_name,
            options.timeout.as_secs()
        ))),
    }
}
