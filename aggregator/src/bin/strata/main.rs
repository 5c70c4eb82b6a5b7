//! `strata`: the command-line client of a strata cluster. It checks and applies service
//! files, shows and scales apps, and reads tasks' output, all through the aggregator's HTTP
//! API; `strata zk` copies, compares and syncs ZooKeeper subtrees, and `strata migrate` moves
//! a set from one ZooKeeper cluster to another, phase by phase.
//!
//! Exit codes: 0 done; 1 refused by the aggregator or not finished in time; 64 bad usage;
//! 65 an invalid service file; 69 the aggregator cannot be reached.

mod apply;
mod client;
mod migrate;
mod tasks;
mod wait;
mod zk;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};

use crate::client::{ApiError, Client};

/// The strata command-line client: apply service files, look at apps, scale them, read their
/// logs.
#[derive(Debug, Parser)]
#[command(name = "strata", version)]
struct Cli {
    /// The aggregator's HTTP address.
    #[arg(
        long,
        env = "STRATA_AGGREGATOR",
        default_value = "http://127.0.0.1:5050",
        global = true
    )]
    aggregator: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a service file: every mistake with its line and field path (exit 65 if any).
    Validate {
        /// The service file (config.yaml).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Show what a service file changes, then make the cluster match it: apps are created,
    /// updated (rolling) and deleted under /<cluster_name>. Applying the same file again
    /// changes nothing.
    Apply {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Only show the difference.
        #[arg(long)]
        dry_run: bool,
        /// Do not wait for the deployments to finish.
        #[arg(long)]
        no_wait: bool,
        /// Seconds to wait for the deployments before giving up (exit 1; they go on).
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Show the cluster's apps.
    Get {
        #[command(subcommand)]
        what: GetWhat,
    },
    /// Set an app's instance count and wait for it.
    Scale {
        /// The app id (`/shop/web`).
        app: String,
        instances: u32,
        #[arg(long)]
        no_wait: bool,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Print a task's output (stdout, or stderr), read from its sandbox on its agent.
    Logs {
        /// A task id, or an app id (`/shop/web`) for each of its tasks.
        target: String,
        /// Stderr instead of stdout.
        #[arg(long)]
        stderr: bool,
        /// Keep printing what the task writes.
        #[arg(short, long)]
        follow: bool,
        /// Bytes from the end to start with.
        #[arg(long, default_value_t = 64 * 1024)]
        tail_bytes: u64,
    },
    /// ZooKeeper: copy a subtree between clusters, compare two, or keep them in sync.
    #[command(subcommand)]
    Zk(zk::ZkCommand),
    /// Move the set to another ZooKeeper cluster, phase by phase, each one reversible.
    #[command(subcommand)]
    Migrate(migrate::MigrateCommand),
}

#[derive(Debug, Subcommand)]
enum GetWhat {
    /// Apps with their running and healthy counts.
    Apps {
        /// Print the apps as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Why a command failed, and its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{0}")]
    Unfinished(String),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Self::Input(_) => 65,
            Self::Api(ApiError::Unreachable { .. }) => 69,
            Self::Api(ApiError::Refused { .. }) | Self::Unfinished(_) => 1,
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let client = Client::new(&cli.aggregator);
    let wait = |no_wait: bool, timeout: u64| (!no_wait).then(|| Duration::from_secs(timeout));
    match cli.command {
        Command::Validate { file } => apply::validate(&file),
        Command::Apply {
            file,
            dry_run,
            no_wait,
            timeout,
        } => apply::apply(
            &client,
            &file,
            &apply::Options {
                dry_run,
                wait: !no_wait,
                timeout: Duration::from_secs(timeout),
            },
        ),
        Command::Get {
            what: GetWhat::Apps { json },
        } => tasks::get_apps(&client, json),
        Command::Scale {
            app,
            instances,
            no_wait,
            timeout,
        } => tasks::scale(&client, &app, instances, wait(no_wait, timeout)),
        Command::Logs {
            target,
            stderr,
            follow,
            tail_bytes,
        } => tasks::logs(
            &client,
            &target,
            &tasks::LogOptions {
                stderr,
                follow,
                tail_bytes,
            },
        ),
        Command::Zk(command) => zk::run(command),
        Command::Migrate(command) => migrate::run(&client, command),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let usage = err.use_stderr();
            let _ = err.print();
            return ExitCode::from(if usage { 64 } else { 0 });
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("strata: {err}");
            ExitCode::from(err.code())
        }
    }
}
