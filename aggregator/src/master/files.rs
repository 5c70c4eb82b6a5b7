//! Reading tasks' sandbox files through their agents (`strata logs`, `GET
//! /v2/tasks/{id}/files/{stdout|stderr}`): the master asks the task's agent over its control
//! stream and waits, bounded in time, for the answer that carries the same request number.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use proto::exec::{FileChunk, MAX_FILE_CHUNK};
use tokio::sync::oneshot;

use super::{Master, core::FileRefusal};

/// How long an agent has to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Reads waiting for their agents' answers.
#[derive(Debug, Default)]
pub struct FileReads {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<FileChunk>>>,
}

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("task {0} is not known")]
    UnknownTask(String),
    #[error("the agent {0} of this task is not connected")]
    AgentAway(String),
    #[error("the agent did not answer within {} s", ANSWER_WITHIN.as_secs())]
    NoAnswer,
    #[error("{0}")]
    Agent(String),
}

impl FileReads {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<FileChunk>>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Master {
    /// Reads up to `length` bytes of a task's `file` from `offset` (None: the last bytes).
    pub async fn read_file(
        &self,
        task_id: &str,
        file: &str,
        offset: Option<u64>,
        length: u64,
    ) -> Result<FileChunk, FileError> {
        let request = self.files.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.files.waiting().insert(request, tx);
        let asked =
            self.lock()
                .request_file(task_id, request, file, offset, length.min(MAX_FILE_CHUNK));
        if let Err(refusal) = asked {
            self.files.waiting().remove(&request);
            return Err(match refusal {
                FileRefusal::UnknownTask => FileError::UnknownTask(task_id.to_owned()),
                FileRefusal::AgentAway(agent) => FileError::AgentAway(agent),
            });
        }
        let answer = tokio::time::timeout(ANSWER_WITHIN, rx).await;
        self.files.waiting().remove(&request);
        match answer {
            Ok(Ok(chunk)) => match chunk.error {
                Some(error) => Err(FileError::Agent(error)),
                None => Ok(chunk),
            },
            _ => Err(FileError::NoAnswer),
        }
    }

    /// An agent's answer to a read; answers nobody waits for any more are dropped.
    pub fn file_data(&self, request: u64, chunk: FileChunk) {
        if let Some(waiter) = self.files.waiting().remove(&request) {
            let _ = waiter.send(chunk);
        }
    }
}
