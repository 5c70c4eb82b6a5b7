//! Command tasks as processes. Each runs under a wrapper shell,
//! `/bin/sh -c WRAPPER strata-task PROGRAM ARGS...`, started in a session of its own (so it
//! outlives the agent) and moved into the task's cgroups before it executes. The wrapper
//! runs the task in the foreground, then writes its exit code to `exit_status` in the sandbox
//! (to a temporary file renamed into place), so how a task ended is known even when the
//! agent was down at the time. Kills spare the wrapper at first (SIGTERM goes to the task's
//! other processes) so it can still record the code.

use std::{
    collections::BTreeMap,
    fs::File,
    io,
    os::{fd::AsRawFd as _, unix::process::ExitStatusExt as _},
    path::Path,
    process::{ExitStatus, Stdio},
    time::Duration,
};

use tokio::{process::Child, time::Instant};

use super::{cgroups::TaskCgroup, status::Ended};

/// Runs the task (`$@`) and records its exit code atomically in `exit_status`.
const WRAPPER: &str = r#""$@"
code=$?
printf '%s\n' "$code" > exit_status.tmp && /bin/mv -f exit_status.tmp exit_status
exit "$code""#;
const EXIT_FILE: &str = "exit_status";
/// The `PATH` of tasks (and of their command health checks).
pub(super) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How often a re-adopted task (not the agent's child) is checked.
const ADOPTED_POLL: Duration = Duration::from_millis(500);
const KILL_POLL: Duration = Duration::from_millis(100);

/// A started wrapper.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    pub pid: i32,
    pub start_time: u64,
}

/// Starts `line` in `sandbox` (created if needed; `stdout` and `stderr` files there) with
/// exactly `env` (plus a default `PATH`), in `cgroup` when given.
pub fn spawn(
    line: &[String],
    env: &BTreeMap<String, String>,
    sandbox: &Path,
    cgroup: Option<&TaskCgroup>,
) -> io::Result<Spawned> {
    std::fs::create_dir_all(sandbox)?;
    for stale in [EXIT_FILE, "exit_status.tmp"] {
        match std::fs::remove_file(sandbox.join(stale)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
    }
    let stdout = File::create(sandbox.join("stdout"))?;
    let stderr = File::create(sandbox.join("stderr"))?;
    let procs = cgroup.map(TaskCgroup::open_procs).transpose()?;
    let fds: Vec<i32> = procs.iter().flatten().map(|f| f.as_raw_fd()).collect();
    let mut command = tokio::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(WRAPPER)
        .arg("strata-task")
        .args(line)
        .current_dir(sandbox)
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    // SAFETY: the closure runs in the forked child before exec and only calls the
    // async-signal-safe setsid and write on integers and a static buffer; it allocates
    // nothing (`fds` was built before the fork) and io::Error::last_os_error does not
    // allocate.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            for &fd in &fds {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    drop(procs);
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| io::Error::other("the wrapper exited before it was seen"))?;
    // The child is not reaped yet, so its pid is still its own even if it already exited.
    let stat = procfs::process::Process::new(pid).and_then(|p| p.stat());
    let start_time = stat.map_err(io::Error::other)?.starttime;
    Ok(Spawned {
        child,
        pid,
        start_time,
    })
}

/// The start time of `pid` (clock ticks after boot), unless it is gone or a zombie.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = procfs::process::Process::new(pid).ok()?.stat().ok()?;
    (stat.state != 'Z').then_some(stat.starttime)
}

/// Whether the process `pid` that started at `start` still runs.
pub fn alive(pid: i32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// Waits for the agent's own wrapper child, then concludes.
pub async fn watch_child(mut child: Child, sandbox: &Path, cgroup: Option<TaskCgroup>) -> Ended {
    let status = child.wait().await.ok();
    conclude(sandbox, cgroup, status).await
}

/// Polls a re-adopted wrapper (not the agent's child) until it is gone, then concludes.
pub async fn watch_adopted(
    pid: i32,
    start: u64,
    sandbox: &Path,
    cgroup: Option<TaskCgroup>,
) -> Ended {
    while alive(pid, start) {
        tokio::time::sleep(ADOPTED_POLL).await;
    }
    conclude(sandbox, cgroup, None).await
}

/// How a task whose wrapper is gone ended: the code in `exit_status`, else the wrapper's
/// own status when the agent saw it, else nothing. Checks for an OOM kill, then removes the
/// cgroup (killing anything left in it).
pub async fn conclude(
    sandbox: &Path,
    cgroup: Option<TaskCgroup>,
    wrapper: Option<ExitStatus>,
) -> Ended {
    let recorded = std::fs::read_to_string(sandbox.join(EXIT_FILE))
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok());
    let oom = cgroup.as_ref().is_some_and(TaskCgroup::oom_killed);
    if let Some(cgroup) = cgroup {
        cgroup.destroy().await;
    }
    match (recorded, wrapper) {
        (Some(code), _) => Ended::Exit {
            code: Some(code),
            signal: None,
            oom,
        },
        (None, Some(status)) => Ended::Exit {
            code: status.code().map(i64::from),
            signal: status.signal(),
            oom,
        },
        (None, None) if oom => Ended::Exit {
            code: None,
            signal: Some(libc::SIGKILL),
            oom,
        },
        (None, None) => Ended::Vanished,
    }
}

/// Live processes of session `sid` (the wrapper's session, when there is no cgroup).
fn session_members(sid: i32) -> Vec<i32> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.flatten()
        .filter_map(|p| p.stat().ok())
        .filter(|s| s.session == sid && s.state != 'Z')
        .map(|s| s.pid)
        .collect()
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: kill takes plain integers; a stale pid only makes it fail.
    unsafe { libc::kill(pid, signal) };
}

/// Kills the task of wrapper `pid`: SIGTERM to its processes but the wrapper, up to `grace`
/// for the wrapper to end, then SIGKILL to all (the wrapper included). Processes that appear
/// during the grace get their SIGTERM too: a kill that comes just after the launch can find
/// the wrapper alone, before it has started the task's program.
pub async fn kill(pid: i32, cgroup: Option<TaskCgroup>, grace: Duration) {
    let members = || match &cgroup {
        Some(cgroup) => cgroup.pids(),
        None => session_members(pid),
    };
    let deadline = Instant::now() + grace;
    let mut terminated = std::collections::BTreeSet::new();
    loop {
        for member in members() {
            if member != pid && terminated.insert(member) {
                signal(member, libc::SIGTERM);
            }
        }
        if start_time(pid).is_none() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(KILL_POLL.min(deadline - Instant::now())).await;
    }
    if start_time(pid).is_none() && members().is_empty() {
        return;
    }
    match &cgroup {
        Some(cgroup) => cgroup.kill_all(),
        None => {
            signal(-pid, libc::SIGKILL);
            members().into_iter().for_each(|m| signal(m, libc::SIGKILL));
        }
    }
}
