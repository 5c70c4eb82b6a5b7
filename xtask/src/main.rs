//! strata's developer tasks, run as `cargo xtask <task>`: set-up of a fresh Debian machine,
//! running the system, running every test, and the load benchmark.
//!
//! Each task that needs tools calls [`setup::run`] first, so the README's two commands are
//! all a new machine needs.

mod bench;
mod cmd;
mod codegen;
mod fuzz;
mod setup;
mod test;
mod up;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "strata developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what building and testing strata needs (idempotent; Debian, as root).
    Setup,
    /// Regenerate the FlatBuffers code of `proto` from its schema.
    Codegen,
    /// Build strata and run it on this host: the aggregator and a local agent joined to it.
    Up(up::Args),
    /// Run every check and test: formatting, lints, unit tests and privileged end-to-end
    /// tests against the kernel and a Docker engine.
    Test(test::Args),
    /// Run every benchmark program: agent cost, report size, aggregator under load.
    Bench(bench::Args),
    /// Fuzz the report decoder and merge.
    Fuzz(fuzz::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::run(),
        Task::Codegen => setup::run().and_then(|()| codegen::run()),
        Task::Up(args) => setup::run().and_then(|()| up::run(&args)),
        Task::Test(args) => setup::run().and_then(|()| test::run(&args)),
        Task::Bench(args) => setup::run().and_then(|()| bench::run(&args)),
        Task::Fuzz(args) => setup::run().and_then(|()| fuzz::run(&args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
