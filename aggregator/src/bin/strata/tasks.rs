//! `strata get apps`, `strata scale` and `strata logs`: the apps as a table, a new instance
//! count (waiting for its deployment), and a task's output read from its sandbox on its
//! agent, once or followed.

use std::{io::Write as _, time::Duration};

use aggregator::apps::definition::absolute_id;
use serde_json::{Value, json};

use crate::{
    Failure,
    client::Client,
    wait::{self, Waited},
};

pub fn get_apps(client: &Client, json_output: bool) -> Result<(), Failure> {
    let apps = client.get("/v2/apps")?;
    if json_output {
        println!(
            "{}",
            serde_json::to_string_pretty(&apps["apps"]).unwrap_or_default()
        );
        return Ok(());
    }
    let rows: Vec<[String; 6]> = apps["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|app| {
            let running = app["tasksRunning"].as_u64().unwrap_or(0);
            let checked = app["healthChecks"]
                .as_array()
                .is_some_and(|c| !c.is_empty());
            let what = app["container"]["docker"]["image"]
                .as_str()
                .map(|i| format!("image {i}"))
                .or_else(|| app["cmd"].as_str().map(|c| format!("cmd {c}")))
                .unwrap_or_default();
            [
                app["id"].as_str().unwrap_or("?").to_owned(),
                format!("{running}/{}", app["instances"]),
                if checked {
                    app["tasksHealthy"].to_string()
                } else {
                    "-".into()
                },
                format!("{}", app["cpus"]),
                format!("{}", app["mem"]),
                what.chars().take(48).collect(),
            ]
        })
        .collect();
    let header = ["ID", "RUNNING", "HEALTHY", "CPUS", "MEM", "WHAT"].map(String::from);
    let widths: Vec<usize> = (0..6)
        .map(|c| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|r| r[c].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(())
}

pub fn scale(
    client: &Client,
    app: &str,
    instances: u32,
    wait: Option<Duration>,
) -> Result<(), Failure> {
    let id = absolute_id(app);
    let answer = client.put(&format!("/v2/apps{id}"), &json!({ "instances": instances }))?;
    println!(
        "{id}: scaling to {instances} (deployment {})",
        answer["deploymentId"].as_str().unwrap_or("?")
    );
    let Some(timeout) = wait else {
        return Ok(());
    };
    match wait::deployments(client, std::slice::from_ref(&id), timeout)? {
        Waited::Done => Ok(()),
        Waited::TimedOut => Err(Failure::Unfinished(format!(
            "{id}: not at {instances} after {} s; the deployment goes on",
            timeout.as_secs()
        ))),
    }
}

pub struct LogOptions {
    pub stderr: bool,
    pub follow: bool,
    pub tail_bytes: u64,
}

/// The tasks `target` names: one task id, or every task of an app (`/group/app`).
fn tasks_of(client: &Client, target: &str) -> Result<Vec<String>, Failure> {
    if !target.starts_with('/') {
        return Ok(vec![target.to_owned()]);
    }
    let tasks = client.get(&format!("/v2/apps{target}/tasks"))?;
    let ids: Vec<String> = tasks["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str().map(str::to_owned))
        .collect();
    if ids.is_empty() {
        return Err(Failure::Unfinished(format!("{target} has no tasks")));
    }
    Ok(ids)
}

fn read(
    client: &Client,
    task: &str,
    file: &str,
    offset: Option<u64>,
    length: u64,
) -> Result<Value, Failure> {
    let mut path = format!("/v2/tasks/{task}/files/{file}?length={length}");
    if let Some(offset) = offset {
        path.push_str(&format!("&offset={offset}"));
    }
    Ok(client.get(&path)?)
}

pub fn logs(client: &Client, target: &str, options: &LogOptions) -> Result<(), Failure> {
    let file = if options.stderr { "stderr" } else { "stdout" };
    let tasks = tasks_of(client, target)?;
    let several = tasks.len() > 1;
    let mut offsets: Vec<u64> = Vec::new();
    let mut out = std::io::stdout().lock();
    for task in &tasks {
        let chunk = read(client, task, file, None, options.tail_bytes)?;
        if several {
            let _ = writeln!(out, "==> {task} {file} <==");
        }
        let data = chunk["data"].as_str().unwrap_or("");
        let _ = out.write_all(data.as_bytes());
        offsets.push(chunk["next_offset"].as_u64().unwrap_or(0));
    }
    let _ = out.flush();
    if !options.follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
        for (task, offset) in tasks.iter().zip(offsets.iter_mut()) {
            let chunk = read(client, task, file, Some(*offset), 1 << 20)?;
            let data = chunk["data"].as_str().unwrap_or("");
            if !data.is_empty() {
                if several {
                    let _ = writeln!(out, "==> {task} {file} <==");
                }
                let _ = out.write_all(data.as_bytes());
                let _ = out.flush();
            }
            if let Some(next) = chunk["next_offset"].as_u64() {
                *offset = next;
            }
        }
    }
}
