//! `cargo xtask bench`: builds the release binaries and runs every benchmark program:
//! - `agent-load`: the agent's CPU and memory idle, at 1,000 exec/s, and at 1,000 exec/s with
//!   1,000 connections/s;
//! - `report-size`: bytes of full and delta reports against Scope-style JSON;
//! - `aggregator-load`: the aggregator under 1,000 and 5,000 simulated agents over QUIC;
//! - the scheduler's `allocation` bench: allocation cycle time on the Mesos benchmark grid;
//! - `launch-rate`: the master end to end, 1,000 simulated agents over QUIC and a framework
//!   launching 50,000 tasks as fast as offers allow, and offer latency after REVIVE;
//! - `apps-scale`: the app service on 1,000 simulated agents, one app scaled from 0 to
//!   10,000 instances (time and the highest count ever alive) and a rolling upgrade of
//!   1,000 (time and the fewest running during it);
//! - `zk-bench`: the ZooKeeper sync engine on two real servers: live sync lag at 1,000
//!   writes/s, and initial copies of 10,000 and 100,000 znodes beside a kazoo copier;
//! - `failover-bench`: a highly available set without its leader: a SIGKILLed leader's
//!   successor serving, and a migration's planned hand-over to another ZooKeeper cluster.

use std::process::Command;

use crate::{cmd, workspace_root};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds each scenario is measured.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Simulated agent counts for the aggregator benchmark.
    #[arg(long, default_value = "1000,5000")]
    agents: String,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let root = workspace_root();
    cmd::build_release(&["agent", "aggregator", "tests"])?;
    let bin = root.join("target/release");
    let seconds = args.seconds.to_string();
    cmd::run(
        Command::new(bin.join("agent-load"))
            .arg("--agent")
            .arg(bin.join("strata-agent"))
            .args(["--seconds", &seconds]),
    )?;
    cmd::run(Command::new(bin.join("report-size")).args(["--seconds", "240"]))?;
    cmd::run(
        Command::new(bin.join("aggregator-load"))
            .arg("--aggregator")
            .arg(bin.join("strata-aggregator"))
            .args(["--agents", &args.agents, "--seconds", &seconds]),
    )?;
    cmd::run(&mut cmd::cargo(&[
        "bench",
        "-p",
        "scheduler",
        "--bench",
        "allocation",
    ]))?;
    cmd::run(
        Command::new(bin.join("launch-rate"))
            .arg("--aggregator")
            .arg(bin.join("strata-aggregator"))
            .args(["--agents", "1000", "--tasks", "50000"]),
    )?;
    cmd::run(
        Command::new(bin.join("apps-scale"))
            .arg("--aggregator")
            .arg(bin.join("strata-aggregator"))
            .args([
                "--agents",
                "1000",
                "--instances",
                "10000",
                "--upgrade",
                "1000",
            ]),
    )?;
    cmd::run(Command::new(bin.join("zk-bench")).args(["--sizes", "10000,100000"]))?;
    cmd::run(
        Command::new(bin.join("failover-bench"))
            .arg("--aggregator")
            .arg(bin.join("strata-aggregator")),
    )
}
