//! Running external commands with their command line echoed and failures explained.

use std::process::{Command, Output};

use anyhow::{Context as _, bail};

/// `cargo <args>` run in the workspace root.
pub fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new("cargo");
    command.current_dir(crate::workspace_root()).args(args);
    command
}

/// Builds the release binaries of `packages` (`--bins`) in the workspace.
pub fn build_release(packages: &[&str]) -> anyhow::Result<()> {
    let mut command = cargo(&["build", "--release", "--locked", "--bins"]);
    for package in packages {
        command.args(["--package", package]);
    }
    run(&mut command)
}

/// Runs `command`, inheriting stdio; fails with the command line when it exits non-zero.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: $ {}", describe(command));
    let status = command
        .status()
        .with_context(|| format!("starting {}", describe(command)))?;
    if !status.success() {
        bail!("{} failed with {status}", describe(command));
    }
    Ok(())
}

/// Runs `command` and returns its stdout; fails with its stderr when it exits non-zero.
pub fn output(command: &mut Command) -> anyhow::Result<String> {
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .output()
        .with_context(|| format!("starting {}", describe(command)))?;
    if !status.success() {
        bail!(
            "{} failed with {status}: {}",
            describe(command),
            String::from_utf8_lossy(&stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

/// Whether `command` runs and exits zero (quietly).
pub fn succeeds(command: &mut Command) -> bool {
    command.output().is_ok_and(|out| out.status.success())
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|arg| arg.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
