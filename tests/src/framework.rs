//! A pymesos framework (tests/python/mesos_framework.py, run by the project's virtual
//! environment) driven from a test: commands go to its stdin, its events are collected from
//! its stdout.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// The running framework.
#[derive(Debug)]
pub struct PyFramework {
    child: Child,
    stdin: ChildStdin,
    events: Arc<Mutex<Vec<Value>>>,
}

fn python() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
}

impl PyFramework {
    /// Starts the framework against the master at `master` (`HOST:PORT` or `zk://...`).
    pub fn start(master: &str) -> Self {
        Self::spawn(master, None)
    }

    /// Starts the framework as a failover of the framework `id`, whose tasks keep running.
    pub fn resume(master: &str, id: &str) -> Self {
        Self::spawn(master, Some(id))
    }

    fn spawn(master: &str, id: Option<&str>) -> Self {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/mesos_framework.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(master)
            .args(id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the pymesos framework (run `cargo xtask setup`)");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    sink.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(event);
                } else {
                    eprintln!("framework: {line}");
                }
            }
        });
        Self {
            child,
            stdin,
            events,
        }
    }

    /// Sends one command.
    pub fn send(&mut self, command: Value) {
        writeln!(self.stdin, "{command}").expect("writing to the framework");
        self.stdin.flush().expect("flushing the framework's stdin");
    }

    /// Queues tasks: `(id, node, shell command)`.
    pub fn launch(&mut self, tasks: &[Value]) {
        self.send(json!({ "cmd": "launch", "tasks": tasks }));
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The states task `id` went through, in order.
    pub fn states(&self, id: &str) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["event"] == "update" && e["id"] == id)
            .filter_map(|e| e["state"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until `done` holds over the events; panics with the events after `timeout`.
    pub fn wait(&self, what: &str, timeout: Duration, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            if Instant::now() > deadline {
                let tail: Vec<String> = self
                    .events()
                    .iter()
                    .rev()
                    .take(40)
                    .map(Value::to_string)
                    .collect();
                panic!(
                    "framework: {what} did not happen within {timeout:?}; last events:\n{}",
                    tail.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every task in `ids` has been seen in `state`.
    pub fn wait_states(&self, ids: &[String], state: &str, timeout: Duration) {
        self.wait(
            &format!("{} tasks reaching {state}", ids.len()),
            timeout,
            |f| ids.iter().all(|id| f.states(id).iter().any(|s| s == state)),
        );
    }
}

impl Drop for PyFramework {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
