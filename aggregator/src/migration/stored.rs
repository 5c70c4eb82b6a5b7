//! The migration record on a cluster: read, written, deleted, and where it says the set's
//! masters are.

use zookeeper_client as zk;

use super::record::Record;
use crate::zk::url::ZkUrl;

/// The record's path under the set's root.
pub use proto::zk_url::MIGRATION_RECORD as RECORD;

/// The record at `url`, if there is one.
pub async fn read_record(client: &zk::Client, url: &ZkUrl) -> Result<Option<Record>, String> {
    match client.get_data(&url.absolute(RECORD)).await {
        Ok((bytes, _)) => Record::from_json(&bytes)
            .map(Some)
            .map_err(|e| format!("the migration record at {url} is unreadable: {e}")),
        Err(zk::Error::NoNode) => Ok(None),
        Err(e) => Err(format!("reading the migration record at {url}: {e}")),
    }
}

/// Writes (or creates) the record at `url`.
pub async fn write_record(client: &zk::Client, url: &ZkUrl, record: &Record) -> Result<(), String> {
    let path = url.absolute(RECORD);
    let bytes = record.to_json();
    match client.set_data(&path, &bytes, None).await {
        Ok(_) => Ok(()),
        Err(zk::Error::NoNode) => {
            let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
            client
                .mkdir(&url.root, &open)
                .await
                .map_err(|e| format!("creating {} at {url}: {e}", url.root))?;
            client
                .create(&path, &bytes, &open)
                .await
                .map(|_| ())
                .map_err(|e| format!("writing the migration record at {url}: {e}"))
        }
        Err(e) => Err(format!("writing the migration record at {url}: {e}")),
    }
}

/// Deletes the record at `url`.
pub async fn delete_record(client: &zk::Client, url: &ZkUrl) -> Result<(), String> {
    match client.delete(&url.absolute(RECORD), None).await {
        Ok(()) | Err(zk::Error::NoNode) => Ok(()),
        Err(e) => Err(format!("deleting the migration record at {url}: {e}")),
    }
}

/// Where the set's masters are, as the record at `url` says: `url` itself without one.
pub async fn masters_at(client: &zk::Client, url: &ZkUrl) -> Result<ZkUrl, String> {
    match read_record(client, url).await? {
        Some(record) => record
            .masters_at
            .parse()
            .map_err(|e: crate::zk::url::BadZkUrl| e.to_string()),
        None => Ok(url.clone()),
    }
}
