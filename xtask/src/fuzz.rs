//! `cargo xtask fuzz`: runs the `report` fuzz target (envelope, verification, decoding and
//! merge of arbitrary bytes) with cargo-fuzz on nightly, installing cargo-fuzz when missing.

use std::process::Command;

use crate::{cmd, workspace_root};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds to fuzz.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if !cmd::succeeds(Command::new("cargo").args(["fuzz", "--version"])) {
        eprintln!("xtask: installing cargo-fuzz");
        cmd::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    cmd::run(
        Command::new("cargo")
            .current_dir(workspace_root())
            .args(["+nightly", "fuzz", "run", "report", "--"])
            .arg(format!("-max_total_time={}", args.seconds)),
    )
}
