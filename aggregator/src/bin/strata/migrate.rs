//! `strata migrate`: drive a migration of the set between ZooKeeper clusters through the
//! leader's `/api/v1/migration`, phase by phase, with progress: each phase is started, then
//! validated (retried until its condition holds or the timeout passes).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    Failure,
    client::{ApiError, Client},
};

#[derive(Debug, clap::Subcommand)]
pub enum MigrateCommand {
    /// Show the six phases, what each does and where each stands.
    Plan,
    /// Start the next phase (or --phase N) and validate it; --through N goes on to phase N.
    Start {
        /// zk://HOST:PORT[,HOST:PORT...]/PATH to move the set to (needed for phase 1).
        #[arg(long)]
        target: Option<String>,
        /// The phase to start (default: the next one).
        #[arg(long)]
        phase: Option<u8>,
        /// Go on through this phase (default: only the one started).
        #[arg(long)]
        through: Option<u8>,
        /// Seconds each phase may take to validate (a drain waits for clients to leave).
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Check the current phase (or --phase N) again.
    Validate {
        #[arg(long)]
        phase: Option<u8>,
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Show where the migration stands.
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Roll the current phase (or --phase N, the last one under way) back.
    Rollback {
        #[arg(long)]
        phase: Option<u8>,
        /// Seconds to wait for the set's leader when the rollback moves it.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

const STATUS: &str = "/api/v1/migration/status";

pub fn run(client: &Client, command: MigrateCommand) -> Result<(), Failure> {
    match command {
        MigrateCommand::Plan => {
            let phases = client.get("/api/v1/migration/phases")?;
            for phase in phases.as_array().into_iter().flatten() {
                println!(
                    "{} {:<14} {:<11} {}",
                    phase["id"],
                    phase["name"].as_str().unwrap_or(""),
                    phase["state"].as_str().unwrap_or(""),
                    phase["description"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        MigrateCommand::Status { json } => {
            let status = client.get(STATUS)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).unwrap_or_default()
                );
            } else {
                print_status(&status);
            }
            Ok(())
        }
        MigrateCommand::Start {
            target,
            phase,
            through,
            timeout,
        } => {
            let timeout = Duration::from_secs(timeout);
            let status = client.get(STATUS)?;
            let first = match phase {
                Some(id) => id,
                None => {
                    if status["complete"] == true && target.is_none() {
                        println!(
                            "the migration is complete: the set runs on {} (give --target to start another)",
                            status["masters_at"].as_str().unwrap_or("")
                        );
                        return Ok(());
                    }
                    next_phase(&status)
                }
            };
            for id in first..=through.unwrap_or(first).max(first) {
                let body = match (&target, id) {
                    (Some(target), 1) => json!({ "target": target }),
                    _ => json!({}),
                };
                // A phase started earlier (by a run that timed out validating it) is
                // validated, not started again.
                let started = id == first
                    && status["complete"] != true
                    && status["phases"][usize::from(id).saturating_sub(1)]["state"] == "started";
                if started {
                    println!("phase {id}: already started; validating it");
                } else {
                    let answer =
                        client.post(&format!("/api/v1/migration/phases/{id}/start"), &body)?;
                    report(id, "started", &answer);
                    await_leader(client, &answer, timeout)?;
                }
                validate(client, id, timeout)?;
            }
            Ok(())
        }
        MigrateCommand::Validate { phase, timeout } => {
            let id = phase.map_or_else(|| current_phase(client), Ok)?;
            validate(client, id, Duration::from_secs(timeout))
        }
        MigrateCommand::Rollback { phase, timeout } => {
            let id = phase.map_or_else(|| current_phase(client), Ok)?;
            let answer = client.post(
                &format!("/api/v1/migration/phases/{id}/rollback"),
                &json!({}),
            )?;
            report(id, "rolled back", &answer);
            await_leader(client, &answer, Duration::from_secs(timeout))
        }
    }
}

fn current_phase(client: &Client) -> Result<u8, Failure> {
    let status = client.get(STATUS)?;
    status["current_phase"]
        .as_u64()
        .map(|id| id as u8)
        .ok_or_else(|| Failure::Input("no phase is under way".into()))
}

/// The phase after the last validated one (1 when none is, or the last migration is
/// complete).
fn next_phase(status: &Value) -> u8 {
    if status["complete"] == true {
        return 1;
    }
    let validated = status["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["state"] == "validated")
        .filter_map(|p| p["id"].as_u64())
        .max()
        .unwrap_or(0);
    (validated + 1) as u8
}

fn report(id: u8, what: &str, answer: &Value) {
    let phase = &answer["phase"];
    println!(
        "phase {id} {}: {what}: {}",
        phase["name"].as_str().unwrap_or(""),
        phase["message"].as_str().unwrap_or("")
    );
}

/// After a phase that moves the leadership, waits until a leader answers again.
fn await_leader(client: &Client, answer: &Value, timeout: Duration) -> Result<(), Failure> {
    let Some(why) = answer["restarting"].as_str() else {
        return Ok(());
    };
    println!("  {why}; waiting for the set to elect its leader there");
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    loop {
        match client.get(STATUS) {
            Ok(status) if status["masters_at"] == answer["migration"]["masters_at"] => {
                println!(
                    "  a leader answers again after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Ok(_) | Err(ApiError::Unreachable { .. } | ApiError::Refused { .. }) => {}
        }
        if started.elapsed() > timeout {
            return Err(Failure::Unfinished(format!(
                "no leader answered within {timeout:?}; the set goes on electing"
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Validates phase `id`, trying again while its check does not pass yet.
fn validate(client: &Client, id: u8, timeout: Duration) -> Result<(), Failure> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        match client.post(
            &format!("/api/v1/migration/phases/{id}/validate"),
            &json!({}),
        ) {
            Ok(answer) => {
                report(id, "validated", &answer);
                return Ok(());
            }
            Err(ApiError::Refused {
                status: 422 | 503,
                message,
                ..
            }) => {
                if message != last {
                    println!("  not yet: {message}");
                    last = message;
                }
            }
            Err(other) => return Err(other.into()),
        }
        if started.elapsed() > timeout {
            return Err(Failure::Unfinished(format!(
                "phase {id} did not validate within {timeout:?}: {last}"
            )));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn print_status(status: &Value) {
    if status["active"] != true {
        println!("no migration under way");
        return;
    }
    println!(
        "{} -> {}\n  masters at {}\n  agents at {}\n  sync {}{}",
        status["source"].as_str().unwrap_or(""),
        status["target"].as_str().unwrap_or(""),
        status["masters_at"].as_str().unwrap_or(""),
        status["agents_at"]
            .as_str()
            .unwrap_or("(where they were told)"),
        if status["sync"].is_null() {
            "stopped"
        } else {
            "running"
        },
        if status["fenced"] == true {
            ", source fenced"
        } else {
            ""
        },
    );
    for phase in status["phases"].as_array().into_iter().flatten() {
        println!(
            "  {} {:<14} {:<11} {}",
            phase["id"],
            phase["name"].as_str().unwrap_or(""),
            phase["state"].as_str().unwrap_or(""),
            phase["message"].as_str().unwrap_or("")
        );
    }
}
