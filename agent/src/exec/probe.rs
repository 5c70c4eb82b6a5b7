//! One health check of a task, run once: an HTTP `GET` or a TCP connection to a port on
//! `127.0.0.1`, or a command (in the task's sandbox with its environment for a command task,
//! inside the container through the engine's exec API for a Docker task). A check that
//! outlives its timeout failed, and a command is killed then.

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    pin::pin,
    process::Stdio,
    time::Duration,
};

use bollard::{exec::StartExecOptions, models::ExecConfig};
use http_body_util::Empty;
use hyper::{
    Request,
    body::Bytes,
    header::{HOST, USER_AGENT},
};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, time::Instant};

use super::{docker, process::DEFAULT_PATH};

/// How often a command run through the engine is looked at, at first and at most.
const EXEC_POLL_FIRST: Duration = Duration::from_millis(10);
const EXEC_POLL_MAX: Duration = Duration::from_millis(500);

/// One way of checking a task, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// `GET http://127.0.0.1:port/path`: a 2xx or 3xx status is healthy.
    Http { port: u16, path: String },
    /// A TCP connection to `127.0.0.1:port` opens.
    Tcp { port: u16 },
    /// `line` exits with 0, run by the agent in `dir` with exactly `env` (plus a default
    /// `PATH`).
    Command {
        line: Vec<String>,
        env: BTreeMap<String, String>,
        dir: PathBuf,
    },
    /// `line` exits with 0 inside container `container`, with `env` added.
    Exec {
        container: String,
        line: Vec<String>,
        env: BTreeMap<String, String>,
    },
}

impl Probe {
    /// Runs the check once; why it failed, if it did. `timeout` of `None`: no limit.
    pub async fn run(&self, timeout: Option<Duration>) -> Result<(), String> {
        match self {
            Self::Http { port, path } => within(timeout, http(*port, path)).await,
            Self::Tcp { port } => within(timeout, tcp(*port)).await,
            Self::Command { line, env, dir } => command(line, env, dir, timeout).await,
            Self::Exec {
                container,
                line,
                env,
            } => exec(container, line, env, timeout).await,
        }
    }
}

async fn within(
    timeout: Option<Duration>,
    check: impl Future<Output = Result<(), String>>,
) -> Result<(), String> {
    match timeout {
        None => check.await,
        Some(limit) => tokio::time::timeout(limit, check)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {limit:?}"))),
    }
}

async fn connect(port: u16) -> Result<TcpStream, String> {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .map_err(|e| format!("connecting to port {port}: {e}"))
}

async fn tcp(port: u16) -> Result<(), String> {
    connect(port).await.map(drop)
}

async fn http(port: u16, path: &str) -> Result<(), String> {
    let stream = connect(port).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    let request = Request::get(path)
        .header(HOST, format!("127.0.0.1:{port}"))
        .header(USER_AGENT, "strata-agent health check")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("http request for {path}: {e}"))?;
    let mut response = pin!(sender.send_request(request));
    let mut connection = pin!(connection);
    // The connection is driven here until the answer comes; if it ends first (a server
    // closing after answering), the answer, if any, is already waiting.
    let response = tokio::select! {
        biased;
        response = &mut response => response,
        _ = &mut connection => response.await,
    };
    let status = response
        .map_err(|e| format!("http GET {path}: {e}"))?
        .status();
    if status.is_success() || status.is_redirection() {
        Ok(())
    } else {
        Err(format!("http GET {path}: status {status}"))
    }
}

/// Kills a process group when dropped, unless disarmed: a check command and whatever it
/// started, at the timeout or when the check loop is stopped meanwhile.
struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(group) = self.0.take() {
            // SAFETY: kill takes plain integers. The group's leader is not reaped yet when
            // this runs, so its id still names this group.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    }
}

async fn command(
    line: &[String],
    env: &BTreeMap<String, String>,
    dir: &Path,
    timeout: Option<Duration>,
) -> Result<(), String> {
    let (program, args) = line.split_first().ok_or("the check has no command")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting the check command: {e}"))?;
    let mut group = GroupKill(child.id().and_then(|id| i32::try_from(id).ok()));
    let status = match timeout {
        None => child.wait().await,
        Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => status,
            // Dropping `group` kills the command and its children before it is reaped.
            Err(_) => return Err(format!("the check command ran longer than {limit:?}")),
        },
    };
    group.0 = None;
    let status = status.map_err(|e| format!("waiting for the check command: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the check command ended with {status}"))
    }
}

async fn exec(
    container: &str,
    line: &[String],
    env: &BTreeMap<String, String>,
    timeout: Option<Duration>,
) -> Result<(), String> {
    let chain = |e: &dyn std::error::Error| crate::error_chain(e);
    let deadline = timeout.map(|limit| Instant::now() + limit);
    let engine = docker::engine().await.map_err(|e| chain(&e))?;
    let config = ExecConfig {
        cmd: Some(line.to_vec()),
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        ..ExecConfig::default()
    };
    let created = engine
        .create_exec(container, config)
        .await
        .map_err(|e| format!("creating the check in the container: {}", chain(&e)))?;
    let detached = StartExecOptions {
        detach: true,
        ..StartExecOptions::default()
    };
    engine
        .start_exec(&created.id, Some(detached))
        .await
        .map_err(|e| format!("starting the check in the container: {}", chain(&e)))?;
    let mut poll = EXEC_POLL_FIRST;
    loop {
        let inspected = engine
            .inspect_exec(&created.id)
            .await
            .map_err(|e| format!("inspecting the check in the container: {}", chain(&e)))?;
        if inspected.running != Some(true)
            && let Some(code) = inspected.exit_code
        {
            return match code {
                0 => Ok(()),
                code => Err(format!("the check command exited with status {code}")),
            };
        }
        if let Some(deadline) = deadline
            && Instant::now() >= deadline
        {
            // The engine cannot kill an exec; its process is on this host.
            if let Some(pid) = inspected.pid.and_then(|p| i32::try_from(p).ok())
                && pid > 0
            {
                // SAFETY: kill takes plain integers; the engine still reports the process as
                // running, so the pid is its own.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let limit = timeout.unwrap_or_default();
            return Err(format!("the check command ran longer than {limit:?}"));
        }
        let pause = deadline.map_or(poll, |d| poll.min(d - Instant::now()));
        tokio::time::sleep(pause).await;
        poll = (poll * 2).min(EXEC_POLL_MAX);
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    fn shell(script: &str) -> Probe {
        Probe::Command {
            line: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: [("WANTED".to_owned(), "yes".to_owned())].into(),
            dir: std::env::temp_dir(),
        }
    }

    #[tokio::test]
    async fn commands_pass_on_zero_and_are_killed_at_the_timeout() {
        let limit = Some(Duration::from_secs(5));
        assert_eq!(shell("test \"$WANTED\" = yes").run(limit).await, Ok(()));
        let failed = shell("exit 3").run(limit).await.expect_err("fails");
        assert!(failed.contains("exit status: 3"), "{failed}");
        let marker = std::env::temp_dir().join(format!("strata-probe-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let script = format!("sleep 1 && touch {}", marker.display());
        let began = Instant::now();
        let slow = shell(&script).run(Some(Duration::from_millis(200))).await;
        assert!(slow.expect_err("times out").contains("longer than"));
        assert!(began.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(!marker.exists(), "the command's children were killed too");
        let missing = Probe::Command {
            line: vec!["/nonexistent/check".into()],
            env: BTreeMap::new(),
            dir: std::env::temp_dir(),
        };
        assert!(missing.run(limit).await.is_err());
    }

    #[tokio::test]
    async fn tcp_and_http_checks_need_an_answer() {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("a port");
        let port = listener.local_addr().expect("address").port();
        let limit = Some(Duration::from_secs(2));
        assert_eq!(Probe::Tcp { port }.run(limit).await, Ok(()));
        // A server answering each connection with the next status.
        let server = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("a port");
        let server_port = server.local_addr().expect("address").port();
        let serving = tokio::spawn(async move {
            for status in ["200 OK", "302 Found", "503 Service Unavailable"] {
                let (mut stream, _) = server.accept().await.expect("a connection");
                let mut request = [0u8; 1024];
                let read = stream.read(&mut request).await.expect("a request");
                let head = String::from_utf8_lossy(&request[..read]).into_owned();
                assert!(head.starts_with("GET /health HTTP/1.1\r\n"), "{head}");
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                stream.write_all(answer.as_bytes()).await.expect("answered");
            }
        });
        let health = Probe::Http {
            port: server_port,
            path: "/health".into(),
        };
        assert_eq!(health.run(limit).await, Ok(()));
        assert_eq!(health.run(limit).await, Ok(()), "a redirection is healthy");
        let unavailable = health.run(limit).await.expect_err("a 503 is not");
        assert!(unavailable.contains("503"), "{unavailable}");
        serving.await.expect("served");
        // Accepts and never answers: the HTTP check times out.
        let http = Probe::Http {
            port,
            path: "/".into(),
        };
        let silent = http.run(Some(Duration::from_millis(200))).await;
        assert!(silent.expect_err("no answer").contains("no answer"));
        drop(listener);
        assert!(Probe::Tcp { port }.run(limit).await.is_err());
    }
}
