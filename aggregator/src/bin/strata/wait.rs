//! Waiting for deployments with progress: one line per app whenever its counts change, and,
//! when time runs out, why the apps still wait (the queue's reasons).

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::client::{ApiError, Client};

/// How a wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Waited {
    Done,
    TimedOut,
}

fn progress(app: &Value) -> String {
    let wanted = app["instances"].as_u64().unwrap_or(0);
    let mut line = format!(
        "{}: {}/{wanted} running",
        app["id"].as_str().unwrap_or("?"),
        app["tasksRunning"].as_u64().unwrap_or(0)
    );
    if app["healthChecks"]
        .as_array()
        .is_some_and(|c| !c.is_empty())
    {
        line.push_str(&format!(
            ", {} healthy",
            app["tasksHealthy"].as_u64().unwrap_or(0)
        ));
    }
    let staged = app["tasksStaged"].as_u64().unwrap_or(0);
    if staged > 0 {
        line.push_str(&format!(", {staged} starting"));
    }
    line
}

/// Why instances of `ids` are not placed, from `/v2/queue`.
fn stuck(client: &Client, ids: &[String]) -> Result<Vec<String>, ApiError> {
    let queue = client.get("/v2/queue")?;
    let mut lines = Vec::new();
    for item in queue["queue"].as_array().into_iter().flatten() {
        let id = item["app"]["id"].as_str().unwrap_or("");
        if !ids.iter().any(|i| i == id) {
            continue;
        }
        let summary = &item["processedOffersSummary"];
        let reasons: Vec<String> = summary["rejectSummaryLastOffers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["declined"].as_u64().unwrap_or(0) > 0)
            .map(|r| {
                format!(
                    "{} ({} of {} offers)",
                    r["reason"].as_str().unwrap_or("?"),
                    r["declined"],
                    r["processed"]
                )
            })
            .collect();
        lines.push(format!(
            "{id}: {} instance(s) not placed{}",
            item["count"],
            if reasons.is_empty() {
                ": no offers seen yet".to_owned()
            } else {
                format!(": {}", reasons.join(", "))
            }
        ));
    }
    Ok(lines)
}

/// Waits until no deployment touches `ids`, printing progress.
pub fn deployments(client: &Client, ids: &[String], timeout: Duration) -> Result<Waited, ApiError> {
    let deadline = Instant::now() + timeout;
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let deployments = client.get("/v2/deployments")?;
        let busy = deployments.as_array().into_iter().flatten().any(|d| {
            d["affectedApps"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| ids.iter().any(|i| Some(i.as_str()) == a.as_str()))
        });
        let apps = client.get("/v2/apps")?;
        for app in apps["apps"].as_array().into_iter().flatten() {
            let id = app["id"].as_str().unwrap_or("").to_owned();
            if !ids.contains(&id) {
                continue;
            }
            let line = progress(app);
            if shown.get(&id) != Some(&line) {
                eprintln!("  {line}");
                shown.insert(id, line);
            }
        }
        if !busy {
            return Ok(Waited::Done);
        }
        if Instant::now() >= deadline {
            for line in stuck(client, ids)? {
                eprintln!("  {line}");
            }
            return Ok(Waited::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
