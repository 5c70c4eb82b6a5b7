//! Running `strata-agent snapshot` as a real process and reading what it printed.

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use serde_json::Value;

/// The agent binary: `STRATA_AGENT_BIN` (set by `cargo xtask test`), else the debug build.
pub fn binary() -> PathBuf {
    crate::binary("STRATA_AGENT_BIN", "strata-agent")
}

/// A running `strata-agent snapshot`.
#[derive(Debug)]
pub struct AgentRun {
    child: Child,
    output: PathBuf,
    logs: mpsc::Receiver<String>,
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
        let mut child = Command::new(&binary)
            .args(["snapshot", "--duration", &duration.to_string(), "--output"])
            .arg(&output)
            .args(args)
            .env("STRATA_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, logs) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[agent] {line}");
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let run = Self {
            child,
            output,
            logs,
        };
        run.wait_for_log("observing this node", Duration::from_secs(60));
        run
    }

    /// Waits for a log line containing `needle`; panics after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("the agent did not log {needle:?} within {timeout:?}"),
            }
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
