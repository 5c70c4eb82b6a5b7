//! The `marathon` Python client (tests/python/marathon_driver.py, run by the project's
//! virtual environment) driven from a test: each call is a request line on its stdin and
//! waits for its answer; events from the client's event stream are collected.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Write as _},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Condvar, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

#[derive(Debug, Default)]
struct Inbox {
    answers: HashMap<u64, Value>,
    events: Vec<Value>,
}

/// The running client.
#[derive(Debug)]
pub struct Marathon {
    child: Child,
    stdin: ChildStdin,
    inbox: Arc<(Mutex<Inbox>, Condvar)>,
    next: u64,
}

impl Marathon {
    /// Starts the client against the app service at `http` (`HOST:PORT`).
    pub fn start(http: &str) -> Self {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new(root.join("../.venv/bin/python"))
            .arg(root.join("python/marathon_driver.py"))
            .arg(format!("http://{http}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the marathon client (run `cargo xtask setup`)");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let inbox: Arc<(Mutex<Inbox>, Condvar)> = Arc::default();
        let sink = inbox.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(message) = serde_json::from_str::<Value>(&line) else {
                    eprintln!("marathon client: {line}");
                    continue;
                };
                let (lock, ready) = &*sink;
                let mut inbox = lock
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match message["id"].as_u64() {
                    Some(id) => {
                        inbox.answers.insert(id, message);
                    }
                    None => inbox.events.push(message["event"].clone()),
                }
                ready.notify_all();
            }
        });
        Self {
            child,
            stdin,
            inbox,
            next: 0,
        }
    }

    /// Calls `method` of the client; Ok with its result, Err with the error it raised
    /// (`{"type", "status", "message", "details"}`).
    pub fn call(&mut self, method: &str, args: Value) -> Result<Value, Value> {
        self.next += 1;
        let id = self.next;
        let request = json!({ "id": id, "method": method, "args": args });
        writeln!(self.stdin, "{request}").expect("writing to the marathon client");
        self.stdin
            .flush()
            .expect("flushing the marathon client's stdin");
        let (lock, ready) = &*self.inbox;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut inbox = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(answer) = inbox.answers.remove(&id) {
                return match answer.get("error") {
                    Some(error) => Err(error.clone()),
                    None => Ok(answer["result"].clone()),
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the marathon client did not answer {request}"
            );
            inbox = ready
                .wait_timeout(inbox, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Like [`Marathon::call`], panicking with the client's error.
    pub fn ok(&mut self, method: &str, args: Value) -> Value {
        self.call(method, args.clone())
            .unwrap_or_else(|err| panic!("{method} {args}: {err}"))
    }

    /// Events the client's event stream yielded so far (`{"type", "data"}`).
    pub fn events(&self) -> Vec<Value> {
        self.inbox
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .events
            .clone()
    }
}

impl Drop for Marathon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
