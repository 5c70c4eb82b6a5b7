//! `cargo xtask bench`: builds the release agent and the `agent-load` program and runs the
//! agent's cost benchmark (idle, 1,000 exec/s, 1,000 exec/s with 1,000 connections/s).

use std::process::Command;

use crate::{cmd, workspace_root};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let root = workspace_root();
    cmd::build_release(&["agent", "tests"])?;
    cmd::run(
        Command::new(root.join("target/release/agent-load"))
            .arg("--agent")
            .arg(root.join("target/release/strata-agent"))
            .args(["--seconds", &args.seconds.to_string()]),
    )
}
