//! The embedded backend: one redb database in the data directory (`master.redb`), a table
//! per [`Table`], each batch one transaction.

use std::path::Path;

use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::{Backend, CommitError, MASTER_ID_KEY, RawState, StoreError, Table, Writes};

fn definition(table: Table) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(table.name())
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

/// The master's state in a redb database.
#[derive(Debug)]
pub struct RedbBackend {
    db: Database,
}

impl RedbBackend {
    /// Opens (or creates) the database at `path` and reads every record back.
    pub fn open(path: &Path) -> Result<(Self, RawState), StoreError> {
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let mut state = RawState::default();
        let txn = db.begin_read()?;
        for table in Table::ALL {
            let open = match txn.open_table(definition(table)) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut records = Vec::new();
            for entry in open.iter()? {
                let (key, value) = entry?;
                match table {
                    Table::Meta if key.value() == MASTER_ID_KEY => {
                        state.master_id = String::from_utf8(value.value().to_vec()).ok();
                    }
                    Table::Meta => {}
                    _ => records.push(value.value().to_vec()),
                }
            }
            state.tables.insert(table, records);
        }
        drop(txn);
        Ok((Self { db }, state))
    }

    fn write(&self, writes: &Writes) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        // Sorted by table, then key: the B-tree's inserts stay local.
        let mut writes = writes.iter().peekable();
        while let Some(&((table, _), _)) = writes.peek() {
            let table = *table;
            let mut open = txn.open_table(definition(table))?;
            while let Some(((_, key), value)) = writes.next_if(|((t, _), _)| *t == table) {
                match value {
                    Some(value) => open.insert(key.as_str(), value.as_slice())?,
                    None => open.remove(key.as_str())?,
                };
            }
        }
        txn.commit()?;
        Ok(())
    }
}

impl Backend for RedbBackend {
    fn commit(&mut self, writes: &mut Writes) -> Result<(), CommitError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.write(writes)
            .map_err(|e| CommitError::Retry(crate::error_chain(&e)))?;
        writes.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;

    #[test]
    fn records_survive_a_reopen_and_deletes_stick() {
        let dir = std::env::temp_dir().join(format!(
            "strata-store-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("master.redb");
        {
            let (backend, state) = RedbBackend::open(&path).expect("opens");
            assert!(state.master_id.is_none());
            let store = Store::start(backend, "redb").expect("starts");
            store.put_master_id("m1");
            store.put(Table::Frameworks, "f1", &"framework one".to_owned());
            store.put(Table::Tasks, "t1", &"task one".to_owned());
            store.put(Table::Tasks, "t2", &"task two".to_owned());
            store.delete(Table::Tasks, "t1");
            store.put(Table::Tasks, "t3", &"task three".to_owned());
            store.delete(Table::Tasks, "t3");
            store.put(Table::Tasks, "t3", &"task three again".to_owned());
            assert!(store.flush());
            assert!(store.healthy());
        }
        // The writer thread holds the database until its channel closes.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (_, state) = RedbBackend::open(&path).expect("reopens");
        let recovered = state.decode::<String, String, String>().expect("decodes");
        assert_eq!(recovered.master_id.as_deref(), Some("m1"));
        assert_eq!(recovered.frameworks, ["framework one"]);
        assert_eq!(recovered.tasks, ["task two", "task three again"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_sealed_store_keeps_what_came_before_and_writes_nothing_after() {
        let dir = std::env::temp_dir().join(format!(
            "strata-seal-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("master.redb");
        {
            let (backend, _) = RedbBackend::open(&path).expect("opens");
            let store = Store::start(backend, "redb").expect("starts");
            store.put(Table::Tasks, "before", &"kept".to_owned());
            assert!(store.seal());
            assert!(!store.healthy(), "a sealed store takes no more changes");
            store.put(Table::Tasks, "after", &"dropped".to_owned());
            assert!(!store.flush(), "nothing is committed after the seal");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (_, state) = RedbBackend::open(&path).expect("reopens");
        let recovered = state.decode::<String, String, String>().expect("decodes");
        assert_eq!(recovered.tasks, ["kept"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
