//! An aggregator and agents as real processes: the aggregator with its own data directory,
//! agents joined with a token, each optionally in a network namespace and with its own
//! hostname (a UTS namespace), as on separate machines.

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::binary;

/// Lines a child process wrote to stderr, echoed to the test's output.
#[derive(Debug, Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<String>>>);

impl Logs {
    /// Reads `stderr` line by line in a thread, echoing each line with `prefix`.
    pub fn follow(&self, prefix: String, stderr: impl std::io::Read + Send + 'static) {
        let lines = self.0.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{prefix}] {line}");
                lines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
            }
        });
    }

    /// Starts `command` with stdout discarded and stderr followed under `prefix`.
    pub fn spawn(&self, command: &mut Command, prefix: &str) -> Child {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .env("STRATA_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {program}: {err}"));
        self.follow(
            prefix.to_owned(),
            child.stderr.take().expect("stderr is piped"),
        );
        child
    }

    /// Whether a line containing every one of `needles` was logged.
    pub fn contains(&self, needles: &[&str]) -> bool {
        let lines = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lines
            .iter()
            .any(|line| needles.iter().all(|n| line.contains(n)))
    }

    /// Waits for such a line; panics after `timeout`.
    pub fn wait_for(&self, needles: &[&str], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.contains(needles) {
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?} within {timeout:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A free address on `ip` (TCP for HTTP, UDP for QUIC).
pub fn free_addr(ip: &str, udp: bool) -> SocketAddr {
    if udp {
        std::net::UdpSocket::bind((ip, 0))
            .and_then(|s| s.local_addr())
            .expect("free UDP port")
    } else {
        std::net::TcpListener::bind((ip, 0))
            .and_then(|s| s.local_addr())
            .expect("free TCP port")
    }
}

/// A running `strata-aggregator`.
#[derive(Debug)]
pub struct Aggregator {
    child: Child,
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub quic: SocketAddr,
    pub logs: Logs,
    args: Vec<String>,
}

impl Aggregator {
    /// Starts it with HTTP on a free loopback port and QUIC on a free port of `quic_ip`, and
    /// waits until it listens. A port taken between choosing and binding (other tests pick
    /// ports too) means another try with new ports.
    pub fn start(data_dir: &Path, quic_ip: &str, args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        for _ in 0..5 {
            let (http, quic) = (free_addr("127.0.0.1", false), free_addr(quic_ip, true));
            let logs = Logs::default();
            let mut child = Self::spawn(data_dir, http, quic, &args, &logs);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if logs.contains(&["aggregator listening"]) {
                    return Self {
                        child,
                        data_dir: data_dir.to_owned(),
                        http,
                        quic,
                        logs,
                        args,
                    };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // exited (a port was taken): try new ports
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the aggregator did not listen within 30 s");
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("the aggregator exited at start five times (see its log above)");
    }

    fn spawn(
        data_dir: &Path,
        http: SocketAddr,
        quic: SocketAddr,
        args: &[String],
        logs: &Logs,
    ) -> Child {
        let binary = binary("STRATA_AGGREGATOR_BIN", "strata-aggregator");
        logs.spawn(
            Command::new(&binary)
                .arg("--data-dir")
                .arg(data_dir)
                .args(["--http", &http.to_string(), "--quic", &quic.to_string()])
                .args(args),
            "aggregator",
        )
    }

    /// Kills it (SIGKILL: nothing is flushed).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills it (SIGKILL: nothing is flushed) and starts it again on the same data directory.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.logs = Logs::default();
        self.child = Self::spawn(&self.data_dir, self.http, self.quic, &self.args, &self.logs);
        self.logs
            .wait_for(&["aggregator listening"], Duration::from_secs(30));
    }

    /// A new join token.
    pub fn token(&self) -> String {
        let binary = binary("STRATA_AGGREGATOR_BIN", "strata-aggregator");
        let output = Command::new(binary)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["token", "create"])
            .output()
            .expect("running token create");
        assert!(
            output.status.success(),
            "token create: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// `GET path` on the API, as JSON.
    pub fn get(&self, path: &str) -> Value {
        let url = format!("http://{}{path}", self.http);
        let mut response = ureq::get(&url)
            .call()
            .unwrap_or_else(|err| panic!("GET {url}: {err}"));
        response
            .body_mut()
            .read_json()
            .unwrap_or_else(|err| panic!("GET {url} is not JSON: {err}"))
    }

    /// Polls `GET path` until `accept` holds; panics with the last answer after `timeout`.
    pub fn wait_for(
        &self,
        path: &str,
        timeout: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        poll(&format!("GET {path}"), timeout, || self.get(path), accept)
    }

    /// One operator API call (`POST /api/v1/operator {"type": call}`), when it answers JSON.
    pub fn try_operator(&self, call: &str) -> Option<Value> {
        let url = format!("http://{}/api/v1/operator", self.http);
        ureq::post(&url)
            .send_json(serde_json::json!({ "type": call }))
            .ok()?
            .body_mut()
            .read_json()
            .ok()
    }

    /// One operator API call; panics when it does not answer JSON.
    pub fn operator(&self, call: &str) -> Value {
        self.try_operator(call)
            .unwrap_or_else(|| panic!("operator call {call} did not answer JSON"))
    }

    /// Polls the operator API's GET_TASKS until `accept` holds (a failed call counts as
    /// `null`, so a restarting aggregator is waited for).
    pub fn wait_for_tasks(&self, timeout: Duration, accept: impl Fn(&Value) -> bool) -> Value {
        let fetch = || self.try_operator("GET_TASKS").unwrap_or(Value::Null);
        poll("GET_TASKS", timeout, fetch, accept)
    }
}

/// Fetches until `accept` holds; panics with the last answer after `timeout`.
fn poll(
    what: &str,
    timeout: Duration,
    fetch: impl Fn() -> Value,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let answer = fetch();
        if accept(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never matched within {timeout:?}: {answer:#}"
        );
        thread::sleep(Duration::from_millis(250));
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills, when dropped (also when a test fails), every process working in a directory
/// under its path: tasks that agents ran in their sandboxes there outlive the agents by
/// design, and would hold ports and CPU into the next test.
#[derive(Debug)]
pub struct TaskReaper(pub PathBuf);

impl Drop for TaskReaper {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            if std::fs::read_link(entry.path().join("cwd"))
                .is_ok_and(|cwd| cwd.starts_with(&self.0))
            {
                // SAFETY: kill(2) takes no pointers.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// A running `strata-agent run`.
#[derive(Debug)]
pub struct Agent {
    child: Child,
    pub logs: Logs,
}

impl Agent {
    /// Starts an agent reporting to `aggregator`, in `netns` when given, with `hostname` in
    /// its own UTS namespace when given.
    pub fn start(
        netns: Option<&str>,
        hostname: Option<&str>,
        aggregator: SocketAddr,
        token: &str,
        state_dir: &Path,
        args: &[&str],
    ) -> Self {
        Self::start_to(
            netns,
            hostname,
            &aggregator.to_string(),
            token,
            state_dir,
            args,
        )
    }

    /// As [`Agent::start`], with `--aggregator` as given (several, comma-separated, for a
    /// highly available set).
    pub fn start_to(
        netns: Option<&str>,
        hostname: Option<&str>,
        aggregators: &str,
        token: &str,
        state_dir: &Path,
        args: &[&str],
    ) -> Self {
        let agent = crate::agent::binary();
        let mut command = Command::new("unshare");
        command.args([
            "--uts",
            "--",
            "sh",
            "-c",
            r#"[ -n "$0" ] && hostname "$0"; exec "$@""#,
        ]);
        command.arg(hostname.unwrap_or(""));
        if let Some(ns) = netns {
            command.args(["ip", "netns", "exec", ns]);
        }
        command
            .arg(&agent)
            .args([
                "run",
                "--aggregator",
                aggregators,
                "--token",
                token,
                "--state-dir",
            ])
            .arg(state_dir)
            .args(args);
        let logs = Logs::default();
        let child = logs.spawn(&mut command, hostname.or(netns).unwrap_or("agent"));
        Self { child, logs }
    }
}

impl Agent {
    /// Agent `n` of a small app cluster in `dir`: hostname `node-n`, attribute `rack:rn`,
    /// 4 cpus, 4 GiB, ports `31n00-31n99`, procfs polling, its own work directory
    /// `dir/work-n` (sandboxes under `sandboxes/<framework>/<task>`).
    pub fn numbered(aggregator: &Aggregator, token: &str, dir: &Path, n: u32) -> Self {
        Self::numbered_to(
            &aggregator.quic.to_string(),
            Some(&format!("node-{n}")),
            &format!("rack:r{n}"),
            token,
            dir,
            n,
        )
    }

    /// As [`Agent::numbered`], reporting to `aggregators` (`--aggregator` as given: several,
    /// or `zk://...`) with `attributes` and the host's name.
    pub fn numbered_to(
        aggregators: &str,
        hostname: Option<&str>,
        attributes: &str,
        token: &str,
        dir: &Path,
        n: u32,
    ) -> Self {
        let resources = format!(
            "cpus:4;mem:4096;disk:1000;ports:[{}-{}]",
            31000 + n * 100,
            31099 + n * 100
        );
        let work = dir.join(format!("work-{n}"));
        Self::start_to(
            None,
            hostname,
            aggregators,
            token,
            &dir.join(format!("agent-{n}")),
            &[
                "--no-ebpf",
                "--resources",
                &resources,
                "--attributes",
                attributes,
                "--work-dir",
                &work.display().to_string(),
            ],
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that shows redirects instead of following them.
pub fn no_redirects() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

/// Whether the aggregator serving HTTP at `http` says it leads: its `/v2/leader` names its
/// own port (a standby's names the leader's).
pub fn leads(http: SocketAddr) -> bool {
    let url = format!("http://{http}/v2/leader");
    let Ok(mut response) = no_redirects().get(&url).call() else {
        return false;
    };
    let named: Value = response.body_mut().read_json().unwrap_or_default();
    named["leader"]
        .as_str()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        == Some(http.port())
}

/// The aggregator of `aggregators` (those `alive`) that says it leads.
pub fn leader_of(aggregators: &[Aggregator], alive: &[bool]) -> Option<usize> {
    (0..aggregators.len())
        .filter(|&i| alive[i])
        .find(|&i| leads(aggregators[i].http))
}

/// Waits for [`leader_of`] to name one.
pub fn wait_for_leader(aggregators: &[Aggregator], alive: &[bool], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(leader) = leader_of(aggregators, alive) {
            return leader;
        }
        assert!(
            Instant::now() < deadline,
            "no aggregator led within {timeout:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the `strata` client against `aggregator`, echoing what it printed.
pub fn strata(aggregator: &Aggregator, args: &[&str]) -> std::process::Output {
    let output = Command::new(binary("STRATA_CLI_BIN", "strata"))
        .arg("--aggregator")
        .arg(format!("http://{}", aggregator.http))
        .args(args)
        .output()
        .expect("running strata");
    eprintln!(
        "$ strata {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
