//! Running `strata-agent snapshot` as a real process and reading what it printed.

use std::{
    path::PathBuf,
    process::{Child, Command},
    time::Duration,
};

use serde_json::Value;

use crate::cluster::Logs;

/// The agent binary: `STRATA_AGENT_BIN` (set by `cargo xtask test`), else the debug build.
pub fn binary() -> PathBuf {
    crate::binary("STRATA_AGENT_BIN", "strata-agent")
}

/// A running `strata-agent snapshot`.
#[derive(Debug)]
pub struct AgentRun {
    child: Child,
    output: PathBuf,
    pub logs: Logs,
}

impl AgentRun {
    /// Starts the agent observing for `duration` seconds with extra `args`, and waits until
    /// it is collecting (its start-up scan is done and its probes are attached).
    pub fn start(duration: f64, args: &[&str]) -> Self {
        let output = std::env::temp_dir().join(format!(
            "strata-snapshot-{}-{}.json",
            std::process::id(),
            rand_suffix()
        ));
        let binary = binary();
        assert!(
            binary.exists(),
            "{} is missing: run `cargo xtask test`",
            binary.display()
        );
        let logs = Logs::default();
        let child = logs.spawn(
            Command::new(&binary)
                .args(["snapshot", "--duration", &duration.to_string(), "--output"])
                .arg(&output)
                .args(args),
            "agent",
        );
        logs.wait_for(&["observing this node"], Duration::from_secs(60));
        Self {
            child,
            output,
            logs,
        }
    }

    /// Waits for the agent to finish and returns its snapshot.
    pub fn finish(mut self) -> Value {
        let status = self.child.wait().expect("waiting for the agent");
        assert!(status.success(), "the agent exited with {status}");
        let text = std::fs::read_to_string(&self.output).expect("the agent wrote its snapshot");
        let _ = std::fs::remove_file(&self.output);
        serde_json::from_str(&text).expect("the snapshot is JSON")
    }
}

impl Drop for AgentRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Entries of the snapshot's `key` array matching `predicate`.
pub fn find<'a>(
    snapshot: &'a Value,
    key: &str,
    predicate: impl Fn(&Value) -> bool,
) -> Vec<&'a Value> {
    snapshot[key]
        .as_array()
        .map(|items| items.iter().filter(|v| predicate(v)).collect())
        .unwrap_or_default()
}
