//! `cargo xtask test`: every check CI runs, in order: formatting, lints (host crates and the
//! eBPF crate), the workspace's unit tests, and the privileged end-to-end tests of the `tests`
//! crate against the real kernel and Docker engine.

use std::process::Command;

use crate::{cmd, workspace_root};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only run tests whose name contains this filter (skips formatting and lints).
    filter: Option<String>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let root = workspace_root();
    let cargo = cmd::cargo;
    if args.filter.is_none() {
        cmd::run(&mut cargo(&["fmt", "--all", "--check"]))?;
        cmd::run(&mut cargo(&[
            "clippy",
            "--workspace",
            "--exclude",
            "agent-ebpf",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]))?;
        cmd::run(
            Command::new("cargo")
                .current_dir(root.join("agent-ebpf"))
                .args([
                    "+nightly",
                    "clippy",
                    "--locked",
                    "--release",
                    "--target",
                    "bpfel-unknown-none",
                ])
                .args(["-Z", "build-std=core", "--", "-D", "warnings"]),
        )?;
    }
    // The end-to-end tests start the real binaries.
    cmd::run(&mut cargo(&[
        "build",
        "--locked",
        "--package",
        "agent",
        "--package",
        "aggregator",
        "--bins",
    ]))?;
    let mut test = cargo(&["test", "--workspace", "--exclude", "agent-ebpf", "--locked"]);
    test.env("STRATA_AGENT_BIN", root.join("target/debug/strata-agent"));
    test.env(
        "STRATA_AGGREGATOR_BIN",
        root.join("target/debug/strata-aggregator"),
    );
    test.env("STRATA_CLI_BIN", root.join("target/debug/strata"));
    if let Some(filter) = &args.filter {
        test.args(["--", filter]);
    }
    cmd::run(&mut test)
}
