//! `cargo xtask up`: builds strata and runs it on this host: the aggregator (with its data in
//! `./strata-data`) and a local agent joined to it. Prints where to look; Ctrl-C stops both.

use std::{
    process::{Child, Command},
    thread,
    time::Duration,
};

use anyhow::{Context as _, bail};

use crate::{cmd, workspace_root};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// HTTP API address of the aggregator.
    #[arg(long, default_value = "127.0.0.1:5050")]
    http: String,
    /// QUIC address of the aggregator (UDP).
    #[arg(long, default_value = "127.0.0.1:5051")]
    quic: String,
}

/// Stops a child when dropped (on any early return).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let root = workspace_root();
    cmd::build_release(&["agent", "aggregator"])?;
    let bin = root.join("target/release");
    let data = root.join("strata-data");
    let mut aggregator = Running(
        Command::new(bin.join("strata-aggregator"))
            .arg("--data-dir")
            .arg(&data)
            .args(["--http", &args.http, "--quic", &args.quic])
            .spawn()
            .context("starting strata-aggregator")?,
    );
    thread::sleep(Duration::from_millis(500));
    if let Some(status) = aggregator.0.try_wait()? {
        bail!(
            "strata-aggregator exited at once ({status}); is {} or {} in use?",
            args.http,
            args.quic
        );
    }
    let token = cmd::output(
        Command::new(bin.join("strata-aggregator"))
            .arg("--data-dir")
            .arg(&data)
            .args(["token", "create"]),
    )?;
    let mut agent = Running(
        Command::new(bin.join("strata-agent"))
            .args([
                "run",
                "--aggregator",
                &args.quic,
                "--token",
                token.trim(),
                "--state-dir",
            ])
            .arg(data.join("agent"))
            .spawn()
            .context("starting strata-agent")?,
    );
    let http = &args.http;
    eprintln!(
        "\nstrata is running. Ctrl-C stops it.\n  topology:  http://{http}/api/topology\n  hosts:     http://{http}/api/topology/hosts\n  processes: http://{http}/api/topology/processes\n  agents:    http://{http}/api/agents\n  live diffs (WebSocket): ws://{http}/api/topology/containers/ws\n  metrics:   http://{http}/metrics\n"
    );
    loop {
        if let Some(status) = aggregator.0.try_wait()? {
            eprintln!("xtask: strata-aggregator exited ({status})");
            break;
        }
        if let Some(status) = agent.0.try_wait()? {
            eprintln!("xtask: strata-agent exited ({status})");
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}
