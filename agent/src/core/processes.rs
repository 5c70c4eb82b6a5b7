//! The process table: fed by exec and exit events and by procfs reads, bounded, with exited
//! processes kept visible for the retention window.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Serialize;

use super::events::{ExecEvent, ProcessDetails};
use crate::model::BootNanos;

/// A process on the node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Process {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: String,
    pub exe: Option<String>,
    pub cmdline: Vec<String>,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub cgroup_id: Option<u64>,
    pub cgroup: Option<String>,
    #[serde(skip)]
    pub cgroup_paths: Vec<String>,
    /// Fork time, nanoseconds since boot.
    pub start_ns: Option<BootNanos>,
    /// CPU used between the last two reads, in percent of one core.
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
    /// Inode of the process's network namespace.
    pub netns: Option<u64>,
    pub exited_at_ns: Option<BootNanos>,
    /// Whether procfs details (cmdline, user, cgroup) were read since the last exec.
    #[serde(skip)]
    pub details_read: bool,
    #[serde(skip)]
    cpu_sample: Option<(BootNanos, u64)>,
}

impl Process {
    fn new(pid: u32) -> Self {
        Self {
            pid,
            ppid: None,
            comm: String::new(),
            exe: None,
            cmdline: Vec::new(),
            uid: None,
            user: None,
            cgroup_id: None,
            cgroup: None,
            cgroup_paths: Vec::new(),
            start_ns: None,
            cpu_percent: None,
            rss_bytes: None,
            netns: None,
            exited_at_ns: None,
            details_read: false,
            cpu_sample: None,
        }
    }

    pub fn alive(&self) -> bool {
        self.exited_at_ns.is_none()
    }
}

/// The table is full: the process was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

/// Processes by pid. Exited processes are kept in exit order so that expiring them and
/// making room both cost O(1) per process, whatever the exec rate.
#[derive(Debug, Default)]
pub struct ProcessTable {
    processes: HashMap<u32, Process>,
    /// (exit time, pid) in exit order; entries whose process was since replaced are skipped.
    exited: VecDeque<(BootNanos, u32)>,
    /// Live processes whose procfs details are still to be read.
    needs_details: HashSet<u32>,
    capacity: usize,
}

impl ProcessTable {
    pub fn new(capacity: usize) -> Self {
        Self {
            processes: HashMap::new(),
            exited: VecDeque::new(),
            needs_details: HashSet::new(),
            capacity,
        }
    }

    /// Removes the oldest exited process that is still in the table, if any.
    fn evict_oldest_exited(&mut self) -> bool {
        while let Some((at, pid)) = self.exited.pop_front() {
            if self
                .processes
                .get(&pid)
                .is_some_and(|p| p.exited_at_ns == Some(at))
            {
                self.processes.remove(&pid);
                return true;
            }
        }
        false
    }

    fn mark_exited(&mut self, pid: u32, now: BootNanos) {
        if let Some(process) = self.processes.get_mut(&pid)
            && process.exited_at_ns.is_none()
        {
            process.exited_at_ns = Some(now);
            self.exited.push_back((now, pid));
            self.needs_details.remove(&pid);
        }
    }

    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.processes.get(&pid)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Process> {
        self.processes.values()
    }

    pub fn len(&self) -> usize {
        self.processes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
    }

    fn entry(&mut self, pid: u32) -> Result<&mut Process, TableFull> {
        if !self.processes.contains_key(&pid)
            && self.processes.len() >= self.capacity
            && !self.evict_oldest_exited()
        {
            return Err(TableFull);
        }
        Ok(self
            .processes
            .entry(pid)
            .or_insert_with(|| Process::new(pid)))
    }

    pub fn exec(&mut self, exec: ExecEvent) -> Result<(), TableFull> {
        let process = self.entry(exec.pid)?;
        if process.exited_at_ns.is_some() {
            // The pid was reused: a new process.
            *process = Process::new(exec.pid);
        }
        process.comm = exec.comm;
        process.exe = exec.filename.or(process.exe.take());
        process.ppid = exec.ppid.or(process.ppid);
        process.cgroup_id = exec.cgroup_id.or(process.cgroup_id);
        process.start_ns = exec.start.or(process.start_ns);
        process.cmdline.clear();
        process.details_read = false;
        self.needs_details.insert(exec.pid);
        Ok(())
    }

    pub fn exit(&mut self, pid: u32, now: BootNanos) {
        self.mark_exited(pid, now);
    }

    pub fn details(&mut self, details: ProcessDetails, now: BootNanos) -> Result<(), TableFull> {
        let process = self.entry(details.pid)?;
        if process.exited_at_ns.is_some() {
            *process = Process::new(details.pid);
        }
        process.ppid = details.ppid.or(process.ppid);
        if let Some(comm) = details.comm {
            process.comm = comm;
        }
        if let Some(cmdline) = details.cmdline {
            process.cmdline = cmdline;
            process.details_read = true;
        }
        process.exe = details.exe.or(process.exe.take());
        process.uid = details.uid.or(process.uid);
        process.user = details.user.or(process.user.take());
        process.cgroup = details.cgroup.or(process.cgroup.take());
        if !details.cgroup_paths.is_empty() {
            process.cgroup_paths = details.cgroup_paths;
        }
        process.start_ns = details.start.or(process.start_ns);
        process.rss_bytes = details.rss_bytes.or(process.rss_bytes);
        process.netns = details.netns.or(process.netns);
        if let Some(cpu_ns) = details.cpu_time_ns {
            if let Some((then, cpu_then)) = process.cpu_sample
                && now > then
            {
                let used = cpu_ns.saturating_sub(cpu_then) as f64;
                process.cpu_percent = Some(100.0 * used / (now - then) as f64);
            }
            process.cpu_sample = Some((now, cpu_ns));
        }
        if process.details_read {
            self.needs_details.remove(&details.pid);
        } else {
            self.needs_details.insert(details.pid);
        }
        Ok(())
    }

    /// A full scan saw exactly `live`: every other live process has exited.
    pub fn scan_complete(&mut self, live: &[u32], now: BootNanos) {
        let live: HashSet<u32> = live.iter().copied().collect();
        let gone: Vec<u32> = self
            .processes
            .values()
            .filter(|p| p.alive() && !live.contains(&p.pid))
            .map(|p| p.pid)
            .collect();
        for pid in gone {
            self.mark_exited(pid, now);
        }
    }

    /// Live processes whose procfs details have not been read yet, at most `limit`.
    pub fn needing_details(&self, limit: usize) -> Vec<u32> {
        self.needs_details.iter().copied().take(limit).collect()
    }

    /// Forgets processes that exited more than `retention` ago.
    pub fn expire(&mut self, now: BootNanos, retention: u64) {
        self.processes.retain(|_, p| {
            p.exited_at_ns
                .is_none_or(|at| now.saturating_sub(at) <= retention)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(pid: u32, comm: &str) -> ExecEvent {
        ExecEvent {
            pid,
            ppid: Some(1),
            comm: comm.into(),
            filename: Some(format!("/bin/{comm}")),
            cgroup_id: Some(7),
            start: Some(100),
        }
    }

    #[test]
    fn exec_then_exit_keeps_the_process_until_retention_ends() {
        let mut table = ProcessTable::new(8);
        table.exec(exec(10, "sleep")).expect("room");
        table.exit(10, 1_000);
        assert_eq!(table.get(10).and_then(|p| p.exited_at_ns), Some(1_000));
        table.expire(1_500, 1_000);
        assert!(table.get(10).is_some());
        table.expire(2_001, 1_000);
        assert!(table.get(10).is_none());
    }

    #[test]
    fn a_full_table_evicts_the_oldest_exited_process_and_refuses_when_none_exited() {
        let mut table = ProcessTable::new(2);
        table.exec(exec(1, "a")).expect("room");
        table.exec(exec(2, "b")).expect("room");
        assert_eq!(table.exec(exec(3, "c")), Err(TableFull));
        table.exit(1, 50);
        table.exec(exec(3, "c")).expect("room after eviction");
        assert!(table.get(1).is_none());
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn details_fill_in_and_cpu_percent_comes_from_two_reads() {
        let mut table = ProcessTable::new(8);
        let details = |cpu| ProcessDetails {
            pid: 5,
            cmdline: Some(vec!["sleep".into(), "9".into()]),
            cpu_time_ns: Some(cpu),
            rss_bytes: Some(4096),
            ..ProcessDetails::default()
        };
        table
            .details(details(1_000_000), 1_000_000_000)
            .expect("room");
        table
            .details(details(251_000_000), 2_000_000_000)
            .expect("room");
        let process = table.get(5).expect("present");
        assert_eq!(process.cmdline, ["sleep", "9"]);
        assert_eq!(process.cpu_percent, Some(25.0));
        assert!(process.details_read);
    }

    #[test]
    fn a_scan_marks_missing_processes_exited_and_a_reused_pid_starts_fresh() {
        let mut table = ProcessTable::new(8);
        table.exec(exec(1, "a")).expect("room");
        table.exec(exec(2, "b")).expect("room");
        table.scan_complete(&[2], 77);
        assert_eq!(table.get(1).and_then(|p| p.exited_at_ns), Some(77));
        assert!(table.get(2).is_some_and(Process::alive));
        table.exec(exec(1, "again")).expect("room");
        assert!(table.get(1).is_some_and(|p| p.alive() && p.comm == "again"));
        assert_eq!(table.needing_details(10).len(), 2);
    }
}
