//! The ZooKeeper backend, for aggregators that run highly available. Under the state path
//! (`PATH/state` of `--zk zk://.../PATH`) each table is a znode and each record a child of
//! it named by its percent-encoded key; `epoch` is the fencing node.
//!
//! A new leader sets `epoch` before it reads the state, and every batch it commits is one or
//! more `multi` transactions (at most [`BATCH_OPS`] operations and [`BATCH_BYTES`] each, within
//! the server's request limit) that start with a version check of `epoch`. A deposed leader
//! whose session has not yet expired therefore cannot write after its successor has read:
//! its check fails and the store is fenced. Records are versioned by ZooKeeper itself (each
//! znode's `version`); the backend knows which keys exist, so it creates or sets without
//! asking first, and corrects itself if a transaction says otherwise.

use std::collections::HashSet;

use futures_util::future::join_all;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tracing::error;
use zookeeper_client as zk;

use super::{Backend, CommitError, MASTER_ID_KEY, RawState, StoreError, Table, Writes};
use crate::zk::ZkError;

/// Most operations in one `multi` (the copier's bound too).
const BATCH_OPS: usize = 1000;
/// Most payload bytes in one `multi`, well within `jute.maxbuffer` (1 MiB by default).
const BATCH_BYTES: usize = 512 * 1024;
/// The largest record kept: a larger one would exceed the server's request limit.
const MAX_RECORD: usize = 900 * 1024;
/// Reads in flight while the state is read back.
const READS_IN_FLIGHT: usize = 2000;

/// Key characters kept as they are in znode names; the rest are percent-encoded (`/` and
/// `.` above all).
const KEY_CHARS: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// The master's state in ZooKeeper, written by the leader.
#[derive(Debug)]
pub struct ZkBackend {
    client: zk::Client,
    root: String,
    /// The version of `epoch` this leader set: its writes require it still.
    epoch_version: i32,
    existing: HashSet<(Table, String)>,
    runtime: tokio::runtime::Handle,
}

fn node_name(key: &str) -> String {
    utf8_percent_encode(key, KEY_CHARS).to_string()
}

fn open_acl() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

impl ZkBackend {
    /// Takes the state at `root` over for `leader` (fencing earlier leaders), then reads it.
    /// Runs on the tokio runtime that later commits will use.
    pub async fn open(
        client: zk::Client,
        root: &str,
        leader: &str,
    ) -> Result<(Self, RawState), StoreError> {
        for table in Table::ALL {
            let path = format!("{root}/{}", table.name());
            client
                .mkdir(&path, &open_acl())
                .await
                .map_err(|e| ZkError::new("creating", &path, e))?;
        }
        let epoch = format!("{root}/epoch");
        let stat = match client.set_data(&epoch, leader.as_bytes(), None).await {
            Ok(stat) => stat,
            Err(zk::Error::NoNode) => {
                match client.create(&epoch, leader.as_bytes(), &open_acl()).await {
                    Ok((stat, _)) => stat,
                    Err(zk::Error::NodeExists) => client
                        .set_data(&epoch, leader.as_bytes(), None)
                        .await
                        .map_err(|e| ZkError::new("fencing at", &epoch, e))?,
                    Err(e) => return Err(ZkError::new("creating", &epoch, e).into()),
                }
            }
            Err(e) => return Err(ZkError::new("fencing at", &epoch, e).into()),
        };
        let mut backend = Self {
            client,
            root: root.to_owned(),
            epoch_version: stat.version,
            existing: HashSet::new(),
            runtime: tokio::runtime::Handle::current(),
        };
        let state = backend.read_all().await?;
        Ok((backend, state))
    }

    fn path(&self, table: Table, key: &str) -> String {
        format!("{}/{}/{}", self.root, table.name(), node_name(key))
    }

    async fn read_all(&mut self) -> Result<RawState, StoreError> {
        let mut state = RawState::default();
        for table in Table::ALL {
            let dir = format!("{}/{}", self.root, table.name());
            let names = self
                .client
                .list_children(&dir)
                .await
                .map_err(|e| ZkError::new("listing", &dir, e))?;
            let mut records = Vec::with_capacity(names.len());
            for chunk in names.chunks(READS_IN_FLIGHT) {
                let paths: Vec<String> = chunk.iter().map(|n| format!("{dir}/{n}")).collect();
                let reads = join_all(paths.iter().map(|p| self.client.get_data(p))).await;
                for ((name, path), read) in chunk.iter().zip(&paths).zip(reads) {
                    let data = match read {
                        Ok((data, _)) => data,
                        Err(zk::Error::NoNode) => continue,
                        Err(e) => return Err(ZkError::new("reading", path, e).into()),
                    };
                    let key = percent_encoding::percent_decode_str(name)
                        .decode_utf8_lossy()
                        .into_owned();
                    if table == Table::Meta && key == MASTER_ID_KEY {
                        state.master_id = String::from_utf8(data.clone()).ok();
                    }
                    self.existing.insert((table, key));
                    records.push(data);
                }
            }
            if table != Table::Meta {
                state.tables.insert(table, records);
            }
        }
        Ok(state)
    }

    async fn commit_async(&mut self, writes: &mut Writes) -> Result<(), CommitError> {
        // Deletes of absent keys are done already; oversized records are refused for good.
        writes.retain(|(table, key), value| match value {
            None => self.existing.contains(&(*table, key.clone())),
            Some(data) if data.len() > MAX_RECORD => {
                error!(
                    table = table.name(),
                    key,
                    bytes = data.len(),
                    "a record over the ZooKeeper size limit is not stored"
                );
                false
            }
            Some(_) => true,
        });
        let keys: Vec<(Table, String)> = writes.keys().cloned().collect();
        let mut batches: Vec<Vec<&(Table, String)>> = Vec::new();
        let mut bytes = 0;
        for key in &keys {
            let size = writes[key].as_ref().map_or(0, Vec::len) + key.1.len() + 64;
            match batches.last_mut() {
                Some(batch) if batch.len() < BATCH_OPS && bytes + size <= BATCH_BYTES => {
                    batch.push(key);
                }
                _ => {
                    batches.push(vec![key]);
                    bytes = 0;
                }
            }
            bytes += size;
        }
        let epoch = format!("{}/epoch", self.root);
        let mut commits = Vec::with_capacity(batches.len());
        for batch in &batches {
            let mut multi = self.client.new_multi_writer();
            let mut add = || -> Result<(), zk::Error> {
                multi.add_check_version(&epoch, self.epoch_version)?;
                for key in batch {
                    let path = self.path(key.0, &key.1);
                    match &writes[*key] {
                        Some(data) if self.existing.contains(*key) => {
                            multi.add_set_data(&path, data, None)?;
                        }
                        Some(data) => multi.add_create(&path, data, &open_acl())?,
                        None => multi.add_delete(&path, None)?,
                    }
                }
                Ok(())
            };
            add().map_err(|e| CommitError::Retry(format!("batching a write: {e}")))?;
            commits.push(multi.commit());
        }
        let results = join_all(commits).await;
        let mut first_error = None;
        for (batch, result) in batches.iter().zip(results) {
            match result {
                Ok(_) => {
                    for key in batch {
                        match writes.remove(*key) {
                            Some(Some(_)) => self.existing.insert((*key).clone()),
                            _ => self.existing.remove(*key),
                        };
                    }
                }
                Err(zk::MultiWriteError::OperationFailed { index: 0, source }) => {
                    return Err(CommitError::Fenced(format!(
                        "{epoch} is not at version {} any more ({source}): a new leader took over",
                        self.epoch_version
                    )));
                }
                Err(zk::MultiWriteError::OperationFailed { index, source }) => {
                    // What this backend believed of one key was wrong: learn and retry.
                    let key = batch[index - 1];
                    match source {
                        zk::Error::NodeExists => {
                            self.existing.insert(key.clone());
                        }
                        zk::Error::NoNode if writes[key].is_none() => {
                            self.existing.remove(key);
                            writes.remove(key);
                        }
                        zk::Error::NoNode => {
                            self.existing.remove(key);
                        }
                        _ => {}
                    }
                    first_error.get_or_insert_with(|| {
                        format!("writing {}: {source}", self.path(key.0, &key.1))
                    });
                }
                Err(zk::MultiWriteError::RequestFailed { source }) => {
                    if matches!(source, zk::Error::SessionExpired | zk::Error::ClientClosed) {
                        return Err(CommitError::Fenced(format!(
                            "the leader's ZooKeeper session ended: {source}"
                        )));
                    }
                    first_error.get_or_insert_with(|| format!("writing to ZooKeeper: {source}"));
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(why) => Err(CommitError::Retry(why)),
        }
    }
}

impl Backend for ZkBackend {
    fn commit(&mut self, writes: &mut Writes) -> Result<(), CommitError> {
        if writes.is_empty() {
            return Ok(());
        }
        let runtime = self.runtime.clone();
        runtime.block_on(self.commit_async(writes))
    }
}

#[cfg(test)]
mod tests {
    use super::node_name;

    #[test]
    fn keys_become_single_znode_names() {
        assert_eq!(node_name("abc-1_2"), "abc-1_2");
        assert_eq!(node_name("/group/app"), "%2Fgroup%2Fapp");
        assert_eq!(node_name(".."), "%2E%2E");
        assert_eq!(node_name("a b"), "a%20b");
    }
}
