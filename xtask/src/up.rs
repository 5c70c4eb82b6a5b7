//! `cargo xtask up`: builds the agent and runs it on this host, printing what it sees.

use std::process::Command;

use crate::{cmd, workspace_root};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds the agent observes before printing its view of the node.
    #[arg(long, default_value_t = 5)]
    duration: u64,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let root = workspace_root();
    cmd::build_release(&["agent"])?;
    eprintln!(
        "xtask: the agent observes this host for {}s, then prints what it saw",
        args.duration
    );
    cmd::run(
        Command::new(root.join("target/release/strata-agent")).args([
            "snapshot",
            "--duration",
            &args.duration.to_string(),
            "--format",
            "json",
        ]),
    )
}
