//! `strata-agent`: parses the command line, sets up logging, runs the command.

use std::{io::Write as _, process::ExitCode, time::Duration};

use agent::{
    cli::{Cli, Command, LogFormat, OutputFormat, SnapshotArgs},
    collect::Collector,
    core::Snapshot,
};
use anyhow::Context as _;
use clap::Parser as _;
use tracing_subscriber::EnvFilter;

/// Exit code for a bad command line (EX_USAGE).
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let usage_error = err.use_stderr();
            let _ = err.print();
            return if usage_error {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("strata-agent: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Snapshot(args) => snapshot(args).await,
            Command::Run(args) => {
                let args = *args;
                let exec = args.exec_config();
                let link = agent::transport::client::LinkConfig {
                    aggregator: args.aggregator,
                    token: args.token,
                    state_dir: args.state_dir,
                    interval: Duration::from_secs_f64(args.report_interval.max(0.05)),
                    full_every: args.full_every,
                    executor: None,
                };
                let (collect, budget) = (args.collect.config(), args.cpu_budget);
                agent::run::run(collect, link, budget, args.scope, exec).await;
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("STRATA_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn snapshot(args: SnapshotArgs) -> anyhow::Result<()> {
    let duration = Duration::from_secs_f64(args.duration.max(0.0));
    let mut collector = Collector::start(args.collect.config()).await;
    tracing::info!("observing this node for {:.1}s", duration.as_secs_f64());
    collector.run_for(duration).await;
    let snapshot = collector.snapshot();
    let text = match args.format {
        OutputFormat::Json => {
            serde_json::to_string_pretty(&snapshot).context("encoding the snapshot")?
        }
        OutputFormat::Summary => summary(&snapshot),
    };
    match args.output {
        Some(path) => std::fs::write(&path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{text}").context("writing to stdout")?;
        }
    }
    Ok(())
}

/// A few lines for a human.
fn summary(snapshot: &Snapshot) -> String {
    let live = snapshot
        .processes
        .iter()
        .filter(|p| p.process.alive())
        .count();
    let open = snapshot
        .connections
        .iter()
        .filter(|c| c.connection.open())
        .count();
    let host = snapshot
        .host
        .as_ref()
        .map_or("unknown host".to_owned(), |h| {
            format!("{} ({}, {} CPUs)", h.hostname, h.kernel_release, h.cpus)
        });
    format!(
        "{host}\ncollection: {:?}\nprocesses: {live} running, {} seen\nconnections: {open} open, {} seen\ncontainers: {}\nevents lost: {}",
        snapshot.collection,
        snapshot.processes.len(),
        snapshot.connections.len(),
        snapshot.containers.len(),
        snapshot.dropped.lost(),
    )
}
