//! Task cgroups: CPU and memory limits, the processes of a task, OOM kills.
//!
//! Detected once at start-up. Pure v2 (`<mount>/cgroup.controllers` lists `cpu` and
//! `memory`, the fleet's usual case) or v1 controllers (`<mount>/cpu`, `<mount>/memory`, as on
//! hybrid hosts where the v2 hierarchy at `<mount>/unified` has neither controller). A task's
//! cgroup is `strata-tasks/<agent scope>/<task>` (under each v1 controller, or once in v2), so
//! two agents on a host never share one. Without root or controllers, tasks run unlimited
//! after one warning.

use std::{
    fs::{File, OpenOptions},
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use tracing::warn;

use super::naming::file_name;

const TOP: &str = proto::exec::TASK_CGROUP_ROOT;
const PERIOD_US: u64 = 100_000;
const MIN_QUOTA_US: u64 = 1000;

/// How the agent limits tasks on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroups {
    /// cgroup v2: the agent's directory `<mount>/strata-tasks/<scope>`.
    V2 { base: PathBuf },
    /// cgroup v1: the agent's directories under the cpu and memory controllers.
    V1 { cpu: PathBuf, memory: PathBuf },
    /// No limits.
    Off,
}

fn controllers(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path.join("cgroup.controllers")).unwrap_or_default();
    text.split_whitespace().map(str::to_owned).collect()
}

fn enable_controllers(dir: &Path) -> io::Result<()> {
    std::fs::write(dir.join("cgroup.subtree_control"), "+cpu +memory")
}

impl Cgroups {
    /// Detects the cgroup layout under `mount` (normally `/sys/fs/cgroup`) and prepares the
    /// agent's directories; warns once and returns [`Cgroups::Off`] when it cannot.
    pub fn detect(mount: &Path, scope: &str) -> Self {
        match Self::try_detect(mount, scope) {
            Ok(cgroups) => cgroups,
            Err(why) => {
                warn!(why, "tasks run without cpu and memory limits");
                Self::Off
            }
        }
    }

    fn try_detect(mount: &Path, scope: &str) -> Result<Self, String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("the agent is not root".into());
        }
        let with_both = |dir: &Path| {
            let found = controllers(dir);
            found.iter().any(|c| c == "cpu") && found.iter().any(|c| c == "memory")
        };
        let unified = [mount.to_path_buf(), mount.join("unified")];
        if let Some(root) = unified.into_iter().find(|dir| with_both(dir)) {
            let failed =
                |e: io::Error| format!("preparing cgroup v2 under {}: {e}", root.display());
            let top = root.join(TOP);
            let base = top.join(scope);
            enable_controllers(&root).map_err(failed)?;
            std::fs::create_dir_all(&base).map_err(failed)?;
            enable_controllers(&top).map_err(failed)?;
            enable_controllers(&base).map_err(failed)?;
            return Ok(Self::V2 { base });
        }
        let (cpu, memory) = (mount.join("cpu"), mount.join("memory"));
        if cpu.join("cpu.cfs_quota_us").exists() && memory.join("memory.limit_in_bytes").exists() {
            let (cpu, memory) = (cpu.join(TOP).join(scope), memory.join(TOP).join(scope));
            for dir in [&cpu, &memory] {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            return Ok(Self::V1 { cpu, memory });
        }
        Err(format!(
            "no cpu and memory cgroup controllers under {}",
            mount.display()
        ))
    }

    /// The cgroup of `task_id`, whether or not it exists; `None` when cgroups are off.
    pub fn task(&self, task_id: &str) -> Option<TaskCgroup> {
        let name = file_name(task_id);
        match self {
            Self::V2 { base } => Some(TaskCgroup {
                dirs: vec![base.join(name)],
                v2: true,
            }),
            Self::V1 { cpu, memory } => Some(TaskCgroup {
                dirs: vec![memory.join(&name), cpu.join(name)],
                v2: false,
            }),
            Self::Off => None,
        }
    }

    /// Creates the cgroup of `task_id` with a CPU quota for `cpus` (unlimited at 0) and a
    /// memory limit of `mem_mb` (unlimited at 0).
    pub fn create(&self, task_id: &str, cpus: f64, mem_mb: f64) -> io::Result<Option<TaskCgroup>> {
        let Some(cgroup) = self.task(task_id) else {
            return Ok(None);
        };
        for dir in &cgroup.dirs {
            std::fs::create_dir_all(dir)?;
        }
        let quota = (cpus > 0.0).then(|| ((cpus * PERIOD_US as f64) as u64).max(MIN_QUOTA_US));
        let bytes = (mem_mb > 0.0).then_some((mem_mb * 1024.0 * 1024.0) as u64);
        let write = |dir: &Path, file: &str, value: String| {
            std::fs::write(dir.join(file), value)
                .map_err(|e| io::Error::new(e.kind(), format!("writing {file}: {e}")))
        };
        if cgroup.v2 {
            let dir = &cgroup.dirs[0];
            let cpu_max = quota.map_or("max".to_owned(), |q| q.to_string());
            write(dir, "cpu.max", format!("{cpu_max} {PERIOD_US}"))?;
            write(
                dir,
                "memory.max",
                bytes.map_or("max".into(), |b| b.to_string()),
            )?;
        } else {
            let (memory, cpu) = (&cgroup.dirs[0], &cgroup.dirs[1]);
            write(cpu, "cpu.cfs_period_us", PERIOD_US.to_string())?;
            let quota = quota.map_or("-1".to_owned(), |q| q.to_string());
            write(cpu, "cpu.cfs_quota_us", quota)?;
            write(
                memory,
                "memory.limit_in_bytes",
                bytes.map_or("-1".into(), |b| b.to_string()),
            )?;
        }
        Ok(Some(cgroup))
    }
}

/// One task's cgroup directories (v1: memory then cpu; v2: one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCgroup {
    pub dirs: Vec<PathBuf>,
    v2: bool,
}

impl TaskCgroup {
    /// The `cgroup.procs` files, opened for writing: a child writes `0` to each before it
    /// executes, which moves it in.
    pub fn open_procs(&self) -> io::Result<Vec<File>> {
        let open = |dir: &PathBuf| {
            OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
        };
        self.dirs.iter().map(open).collect()
    }

    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|d| d.exists())
    }

    /// The processes in the cgroup(s).
    pub fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs
            .iter()
            .filter_map(|dir| std::fs::read_to_string(dir.join("cgroup.procs")).ok())
            .flat_map(|text| {
                let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
                pids
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Whether the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_killed(&self) -> bool {
        let dir = &self.dirs[0];
        let (file, keys) = if self.v2 {
            ("memory.events", &["oom_kill"][..])
        } else {
            ("memory.oom_control", &["oom_kill", "under_oom"][..])
        };
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        text.lines().any(|line| {
            let mut words = line.split_whitespace();
            let (Some(key), Some(value)) = (words.next(), words.next()) else {
                return false;
            };
            keys.contains(&key) && value.parse::<u64>().is_ok_and(|n| n > 0)
        })
    }

    /// Sends `signal` to every process in the cgroup but `except`.
    pub fn signal(&self, signal: i32, except: Option<i32>) {
        for pid in self.pids() {
            if Some(pid) != except {
                // SAFETY: kill takes plain integers; a stale pid only makes it fail.
                unsafe { libc::kill(pid, signal) };
            }
        }
    }

    /// Kills every process in the cgroup (v2: `cgroup.kill` when the kernel has it).
    pub fn kill_all(&self) {
        if self.v2 && std::fs::write(self.dirs[0].join("cgroup.kill"), "1").is_ok() {
            return;
        }
        self.signal(libc::SIGKILL, None);
    }

    /// Kills what is left and removes the directories, retrying for about a second while
    /// the last processes exit.
    pub async fn destroy(&self) {
        for _ in 0..40 {
            self.kill_all();
            let left: Vec<&PathBuf> = self
                .dirs
                .iter()
                .filter(|d| std::fs::remove_dir(d).is_err() && d.exists())
                .collect();
            if left.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        warn!(cgroup = %self.dirs[0].display(), "cannot remove a task cgroup");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_cgroups_are_scoped_per_agent_and_task() {
        let v1 = Cgroups::V1 {
            cpu: "/c/cpu/strata-tasks/agent-1".into(),
            memory: "/c/memory/strata-tasks/agent-1".into(),
        };
        let task = v1.task("web.1").expect("on");
        assert_eq!(
            task.dirs,
            [
                PathBuf::from("/c/memory/strata-tasks/agent-1/web.1"),
                PathBuf::from("/c/cpu/strata-tasks/agent-1/web.1")
            ]
        );
        assert_eq!(Cgroups::Off.task("x"), None);
        let missing = Cgroups::V2 {
            base: "/nonexistent".into(),
        };
        let task = missing.task("a").expect("on");
        assert!(!task.exists() && task.pids().is_empty() && !task.oom_killed());
    }
}
