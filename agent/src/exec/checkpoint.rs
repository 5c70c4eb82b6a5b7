//! Checkpoints: one JSON file per task in `<state-dir>/tasks/`, written whole to a temporary
//! file and renamed over the old one, so a reader (the next agent) sees either the previous
//! or the new record, never a torn one. The rename protects against the agent dying; it does
//! not fsync, so a power loss may lose the latest change.

use std::{
    io,
    path::{Path, PathBuf},
};

use tracing::warn;

use super::{naming::file_name, table::TaskRecord};

/// The checkpoint directory of an agent.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
}

impl Checkpoints {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("tasks"),
        }
    }

    fn path(&self, task_id: &str) -> PathBuf {
        self.dir.join(format!("{}.json", file_name(task_id)))
    }

    /// Writes `record` atomically.
    pub fn store(&self, record: &TaskRecord) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(&record.spec.task_id);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &path)
    }

    /// Deletes the checkpoint of `task_id` (absent is fine).
    pub fn delete(&self, task_id: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(task_id)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }

    /// Every readable checkpoint; unreadable ones are logged and left in place.
    pub fn load(&self) -> Vec<TaskRecord> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let read = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()));
            match read {
                Ok(record) => records.push(record),
                Err(error) => warn!(path = %path.display(), error, "unreadable task checkpoint"),
            }
        }
        records
    }
}

#[cfg(test)]
mod tests {
    use proto::exec::{CommandSpec, ResourceSpec, TaskKind, TaskState};

    use super::*;
    use crate::exec::{
        status::{Change, Stamp},
        table::Runtime,
    };

    #[test]
    fn records_survive_a_round_trip_and_deletion() {
        let dir = std::env::temp_dir().join(format!("strata-ckpt-{}", std::process::id()));
        // A run of long ago with the same process id may have left its records.
        let _ = std::fs::remove_dir_all(&dir);
        let checkpoints = Checkpoints::new(&dir);
        let spec = proto::exec::TaskSpec {
            task_id: "web/1".into(),
            framework_id: "f".into(),
            name: "web".into(),
            kind: TaskKind::Command(CommandSpec::default()),
            resources: ResourceSpec::default(),
            kill_grace_ms: 5,
            labels: Default::default(),
            health_check: None,
        };
        let status = Change::new(TaskState::TaskRunning).for_task(&spec, Stamp::now());
        let record = TaskRecord {
            spec,
            runtime: Runtime::Process {
                pid: 42,
                start_time: 7,
            },
            status,
            acked: false,
            killing: true,
            killed_unhealthy: Some(3),
        };
        checkpoints.store(&record).expect("stored");
        checkpoints.store(&record).expect("stored again");
        assert_eq!(checkpoints.load(), vec![record]);
        checkpoints.delete("web/1").expect("deleted");
        checkpoints.delete("web/1").expect("deleting twice is fine");
        assert!(checkpoints.load().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
