//! The master's durable state in an embedded redb database in the data directory
//! (`master.redb`): frameworks, agents and tasks as JSON records, plus the master's id.
//!
//! Writes are queued and a writer thread commits them in batches (group commit), so the
//! master never waits on the disk. A crash loses at most the last batch; what it held is
//! rebuilt when agents re-register (they report their tasks with their specs) and
//! frameworks re-subscribe with their ids.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::mpsc::{self, Receiver, Sender},
};

use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::{Serialize, de::DeserializeOwned};
use tracing::warn;

const FRAMEWORKS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("frameworks");
const AGENTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("agents");
const TASKS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("tasks");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const APPS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("apps");

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 10_000;

/// Which table a record lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    Frameworks,
    Agents,
    Tasks,
    Meta,
    /// The app service's apps (records it owns; the master only keeps them).
    Apps,
}

impl Table {
    fn definition(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Self::Frameworks => FRAMEWORKS,
            Self::Agents => AGENTS,
            Self::Tasks => TASKS,
            Self::Meta => META,
            Self::Apps => APPS,
        }
    }
}

#[derive(Debug)]
enum Op {
    Put(Table, String, Vec<u8>),
    Delete(Table, String),
    Flush(mpsc::SyncSender<()>),
}

/// Why the store could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening {path}")]
    Open {
        path: String,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("reading the master's state")]
    Read(#[from] redb::Error),
    #[error("a stored record is corrupt")]
    Corrupt(#[from] serde_json::Error),
}

impl From<redb::TransactionError> for StoreError {
    fn from(e: redb::TransactionError) -> Self {
        Self::Read(e.into())
    }
}
impl From<redb::TableError> for StoreError {
    fn from(e: redb::TableError) -> Self {
        Self::Read(e.into())
    }
}
impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        Self::Read(e.into())
    }
}
impl From<redb::CommitError> for StoreError {
    fn from(e: redb::CommitError) -> Self {
        Self::Read(e.into())
    }
}

/// The handle writes are queued on.
#[derive(Debug, Clone)]
pub struct Store {
    ops: Sender<Op>,
}

/// Everything read back at start.
#[derive(Debug, Default)]
pub struct Recovered<F, A, T> {
    pub master_id: Option<String>,
    pub frameworks: Vec<F>,
    pub agents: Vec<A>,
    pub tasks: Vec<T>,
    pub apps: Vec<serde_json::Value>,
}

fn read_all<R: DeserializeOwned>(db: &Database, table: Table) -> Result<Vec<R>, StoreError> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(table.definition()) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        out.push(serde_json::from_slice(value.value())?);
    }
    Ok(out)
}

impl Store {
    /// Opens (or creates) the database at `path`, reads it back, and starts the writer.
    pub fn open<F, A, T>(path: &Path) -> Result<(Store, Recovered<F, A, T>), StoreError>
    where
        F: DeserializeOwned,
        A: DeserializeOwned,
        T: DeserializeOwned,
    {
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let master_id = {
            let txn = db.begin_read()?;
            match txn.open_table(META) {
                Ok(t) => t
                    .get("master_id")?
                    .and_then(|v| String::from_utf8(v.value().to_vec()).ok()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            }
        };
        let recovered = Recovered {
            master_id,
            frameworks: read_all(&db, Table::Frameworks)?,
            agents: read_all(&db, Table::Agents)?,
            tasks: read_all(&db, Table::Tasks)?,
            apps: read_all(&db, Table::Apps)?,
        };
        let (ops, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("master-store".into())
            .spawn(move || writer(&db, &rx))
            .map_err(|e| StoreError::Read(redb::Error::Io(e)))?;
        Ok((Store { ops }, recovered))
    }

    /// Queues a record write.
    pub fn put(&self, table: Table, key: &str, record: &impl Serialize) {
        let bytes = serde_json::to_vec(record).expect("records always serialize");
        let _ = self.ops.send(Op::Put(table, key.to_owned(), bytes));
    }

    /// Queues a record deletion.
    pub fn delete(&self, table: Table, key: &str) {
        let _ = self.ops.send(Op::Delete(table, key.to_owned()));
    }

    /// Waits until everything queued so far is committed.
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.ops.send(Op::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

fn writer(db: &Database, ops: &Receiver<Op>) {
    while let Ok(first) = ops.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match ops.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if let Err(err) = commit(db, &batch) {
            warn!(error = %crate::error_chain(&err), ops = batch.len(), "committing the master's state failed");
        }
        for op in batch {
            if let Op::Flush(done) = op {
                let _ = done.send(());
            }
        }
    }
}

fn commit(db: &Database, batch: &[Op]) -> Result<(), StoreError> {
    // Only the last write of a key in the batch matters (a task's STARTING and RUNNING
    // often share one); sorted keys also keep the B-tree's inserts local.
    let mut last: BTreeMap<(Table, &str), Option<&[u8]>> = BTreeMap::new();
    for op in batch {
        match op {
            Op::Put(table, key, value) => last.insert((*table, key), Some(value)),
            Op::Delete(table, key) => last.insert((*table, key), None),
            Op::Flush(_) => None,
        };
    }
    let txn = db.begin_write()?;
    let mut writes = last.into_iter().peekable();
    while let Some(&((table, _), _)) = writes.peek() {
        let mut open = txn.open_table(table.definition())?;
        while let Some(((_, key), value)) = writes.next_if(|((t, _), _)| *t == table) {
            match value {
                Some(value) => open.insert(key, value)?,
                None => open.remove(key)?,
            };
        }
    }
    txn.commit()?;
    Ok(())
}

impl Store {
    /// Records the master's id (raw bytes, read back by [`Store::open`]).
    pub fn put_master_id(&self, id: &str) {
        let _ = self.ops.send(Op::Put(
            Table::Meta,
            "master_id".into(),
            id.as_bytes().to_vec(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reopen_and_deletes_stick() {
        let dir = std::env::temp_dir().join(format!("strata-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("master.redb");
        let _ = std::fs::remove_file(&path);
        {
            let (store, recovered) = Store::open::<String, String, String>(&path).expect("opens");
            assert!(recovered.master_id.is_none());
            store.put_master_id("m1");
            store.put(Table::Frameworks, "f1", &"framework one".to_owned());
            store.put(Table::Tasks, "t1", &"task one".to_owned());
            store.put(Table::Tasks, "t2", &"task two".to_owned());
            store.delete(Table::Tasks, "t1");
            store.put(Table::Tasks, "t3", &"task three".to_owned());
            store.delete(Table::Tasks, "t3");
            store.put(Table::Tasks, "t3", &"task three again".to_owned());
            store.flush();
        }
        // The writer thread holds the database until its channel closes.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (_, recovered) = Store::open::<String, String, String>(&path).expect("reopens");
        assert_eq!(recovered.master_id.as_deref(), Some("m1"));
        assert_eq!(recovered.frameworks, ["framework one"]);
        assert_eq!(recovered.tasks, ["task two", "task three again"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
