//! The `strata-agent` command line.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};

use proto::exec::{AttributeValue, ResourceSpec};

use crate::{collect::Config, exec::resources};

/// Agent attributes by name.
pub type Attributes = std::collections::BTreeMap<String, AttributeValue>;

fn parse_resources(text: &str) -> Result<ResourceSpec, resources::ParseError> {
    resources::parse_resources(text)
}

fn parse_attributes(text: &str) -> Result<Attributes, resources::ParseError> {
    resources::parse_attributes(text)
}

/// `--aggregator`: one or more `HOST:PORT`, or one `zk://` address that parses.
fn parse_aggregators(text: &str) -> Result<String, String> {
    if text.trim_start().starts_with("zk://") {
        text.trim()
            .parse::<proto::zk_url::ZkUrl>()
            .map_err(|e| e.to_string())?;
    } else if crate::transport::client::addresses(text).is_empty() {
        return Err("no aggregator address: give HOST:PORT[,HOST:PORT...] or zk://...".into());
    }
    Ok(text.to_owned())
}

/// strata's node agent: sees the processes, TCP connections (NAT resolved), containers and
/// resources of this host, with eBPF when it can and procfs when it cannot.
#[derive(Debug, Parser)]
#[command(name = "strata-agent", version)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Observe this node for a while, then print what was seen (processes, containers,
    /// connections with bytes and NAT-resolved destinations, host facts, dropped events).
    Snapshot(SnapshotArgs),
    /// Observe continuously and report to an aggregator (joining it first with a token).
    Run(Box<RunArgs>),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The aggregator's QUIC address, HOST:PORT; for a highly available set, every
    /// aggregator's, comma-separated (the agent joins through the first that accepts its
    /// token and follows the leader the others name); or zk://HOST:PORT[,HOST:PORT...]/PATH
    /// to find the leader through the set's ZooKeeper, as Mesos agents do (looked up again
    /// at every reconnect, following a migration to another ZooKeeper cluster).
    #[arg(long, env = "STRATA_AGGREGATOR", value_parser = parse_aggregators)]
    pub aggregator: String,
    /// Join token from `strata-aggregator token create`; needed only on the first start.
    #[arg(long, env = "STRATA_TOKEN")]
    pub token: Option<proto::token::JoinToken>,
    /// Where the agent keeps its identity (client certificate) after joining.
    #[arg(long, default_value = "/var/lib/strata-agent")]
    pub state_dir: PathBuf,
    /// Percent of one CPU core the agent may use; beyond it, scans are stretched.
    #[arg(long, default_value_t = 5.0)]
    pub cpu_budget: f64,
    /// Seconds between reports.
    #[arg(long, default_value_t = 1.0)]
    pub report_interval: f64,
    /// Every Nth report is a full one (the others are deltas; the aggregator also asks for a
    /// full report whenever it misses one).
    #[arg(long, default_value_t = 120)]
    pub full_every: u64,
    /// What to report: the whole host, or only the agent's own network namespace.
    #[arg(long, value_enum, default_value_t = crate::run::Scope::Host)]
    pub scope: crate::run::Scope,
    /// Resources offered, Mesos syntax (`cpus:4;mem:2048;disk:10000;ports:[31000-32000]`);
    /// each one named replaces the detected amount.
    #[arg(long, value_parser = parse_resources)]
    pub resources: Option<ResourceSpec>,
    /// Attributes of this agent (`rack:a;zone:eu;level:3`); numbers are numbers.
    #[arg(long, value_parser = parse_attributes)]
    pub attributes: Option<Attributes>,
    /// Where task sandboxes go (default: `<state-dir>/work`).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    #[command(flatten)]
    pub collect: CollectArgs,
}

#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    /// Seconds to observe before printing.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    pub format: OutputFormat,
    /// Write the snapshot to this file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub collect: CollectArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The full snapshot as pretty-printed JSON.
    Json,
    /// A short human-readable summary.
    Summary,
}

/// How to collect.
#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// Do not use eBPF: poll procfs instead (what happens anyway when eBPF is unavailable).
    #[arg(long)]
    pub no_ebpf: bool,
    /// Do not follow conntrack (NAT-translated connections keep their dialled address).
    #[arg(long)]
    pub no_conntrack: bool,
    /// Do not watch the Docker engine.
    #[arg(long)]
    pub no_docker: bool,
    /// Seconds between full procfs scans of process CPU and memory (and, without eBPF, of
    /// sockets).
    #[arg(long, default_value_t = 5.0)]
    pub scan_interval: f64,
}

impl RunArgs {
    /// The executor's configuration: detected resources with the overrides.
    pub fn exec_config(&self) -> crate::exec::ExecConfig {
        crate::exec::ExecConfig::detect(
            &self.state_dir,
            self.work_dir.clone(),
            &self.resources.clone().unwrap_or_default(),
            self.attributes.clone().unwrap_or_default(),
        )
    }
}

impl CollectArgs {
    pub fn config(&self) -> Config {
        Config {
            ebpf: !self.no_ebpf,
            conntrack: !self.no_conntrack,
            docker: !self.no_docker,
            scan_interval: Duration::from_secs_f64(self.scan_interval.max(0.1)),
            ..Config::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn run_takes_resources_and_attributes() {
        let cli = Cli::try_parse_from([
            "strata-agent",
            "run",
            "--aggregator",
            "a:1",
            "--resources",
            "cpus:4;ports:[31000-32000,33000-33100]",
            "--attributes",
            "rack:a;level:3",
        ])
        .expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("run expected");
        };
        let resources = args.resources.expect("resources");
        assert_eq!(resources.scalar("cpus"), 4.0);
        assert_eq!(resources.ranges["ports"].len(), 2);
        assert_eq!(
            args.attributes.expect("attributes")["level"],
            AttributeValue::Number(3.0)
        );
        let bad = Cli::try_parse_from([
            "strata-agent",
            "run",
            "--aggregator",
            "a:1",
            "--resources",
            "cpus:x",
        ])
        .expect_err("bad resources");
        assert!(bad.to_string().contains("bad piece `cpus:x`"), "{bad}");
    }

    #[test]
    fn aggregator_addresses_are_checked_at_start() {
        let parse = |aggregator: &str| {
            Cli::try_parse_from(["strata-agent", "run", "--aggregator", aggregator])
                .map(drop)
                .map_err(|e| e.to_string())
        };
        parse("a:1,b:2").expect("a list");
        parse("zk://z1:2181,z2:2181/strata").expect("a zk address");
        let empty = parse(" , ").expect_err("no address");
        assert!(empty.contains("no aggregator address"), "{empty}");
        let bad = parse("zk://z1/strata").expect_err("a zk address without a port");
        assert!(bad.contains("every server needs a port"), "{bad}");
    }
}
