//! What the migration does to the clusters' trees: the target's copy cleared (phase 2
//! rolled back), the source fenced and given back its ACLs (phase 6 and its rollback), and
//! the target's tree copied back to the source before the sync starts again.

use zookeeper_client as zk;

use super::{MigrationError, checks, record::SavedAcl, stored::RECORD, zk_error};
use crate::zk::{
    copy,
    read::{acl_entries, read_tree, zk_acl},
    url::ZkUrl,
    write,
};

/// The ACL permission bits that let a client change a node (write, create, delete).
pub const WRITES: u32 = 2 | 4 | 8;
const READ: u32 = 1;
const ADMIN: u32 = 16;

/// Deletes everything but the record under `url`'s root; how many nodes went.
pub async fn clear(url: &ZkUrl) -> Result<usize, MigrationError> {
    let client = checks::connect(url)
        .await
        .map_err(MigrationError::Unavailable)?;
    let tree = read_tree(&client, url)
        .await
        .map_err(|e| zk_error("reading the target", e))?;
    let children = client
        .list_children(&url.root)
        .await
        .map_err(|e| zk_error("listing the target", e))?;
    for child in children.iter().filter(|c| format!("/{c}") != RECORD) {
        write::put(&client, &format!("{}/{child}", url.root), None, None)
            .await
            .map_err(|e| zk_error("clearing the target", e))?;
    }
    Ok(tree.nodes.len().saturating_sub(2))
}

/// The ACLs of the set's znodes on `source` that the fence changes.
pub async fn source_acls(source: &ZkUrl) -> Result<Vec<SavedAcl>, MigrationError> {
    let client = checks::connect(source)
        .await
        .map_err(MigrationError::Unavailable)?;
    let state = source.absolute("/state");
    let mut paths = vec![source.root.clone(), state.clone()];
    if let Ok(children) = client.list_children(&state).await {
        paths.extend(children.into_iter().map(|c| format!("{state}/{c}")));
    }
    let mut saved = Vec::new();
    for path in paths {
        match client.get_acl(&path).await {
            Ok((acl, _)) => saved.push(SavedAcl {
                path,
                acl: acl_entries(&acl),
            }),
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(zk_error("reading an ACL", e)),
        }
    }
    Ok(saved)
}

/// The nodes of `saved` on `source` made read-only, its epoch advanced first, so that a
/// leader that still writes there is fenced.
pub async fn fence(source: &ZkUrl, saved: &[SavedAcl]) -> Result<(), MigrationError> {
    let client = checks::connect(source)
        .await
        .map_err(MigrationError::Unavailable)?;
    let epoch = source.absolute("/state/epoch");
    let _ = client
        .set_data(&epoch, b"fenced by the migration's cut-over", None)
        .await;
    // Read-only, keeping ADMIN so that a rollback can give the ACLs back.
    let fenced = zk_acl(&[crate::zk::tree::AclEntry {
        perms: READ | ADMIN,
        scheme: "world".into(),
        id: "anyone".into(),
    }]);
    let read_only = zk::Acls::new(&fenced);
    for entry in saved {
        match client.set_acl(&entry.path, &read_only, None).await {
            Ok(_) | Err(zk::Error::NoNode) => {}
            Err(e) => return Err(zk_error("fencing the source", e)),
        }
    }
    Ok(())
}

pub async fn unfence(source: &ZkUrl, saved: &[SavedAcl]) -> Result<(), MigrationError> {
    let client = checks::connect(source)
        .await
        .map_err(MigrationError::Unavailable)?;
    for entry in saved {
        let acl = zk_acl(&entry.acl);
        client
            .set_acl(&entry.path, &zk::Acls::new(&acl), None)
            .await
            .map_err(|e| zk_error("unfencing the source", e))?;
    }
    Ok(())
}

/// Makes `to`'s subtree what `from`'s is (the record aside), for a sync that starts again.
pub async fn copy_back(from: &ZkUrl, to: &ZkUrl) -> Result<(), MigrationError> {
    let from_client = checks::connect(from)
        .await
        .map_err(MigrationError::Unavailable)?;
    let to_client = checks::connect(to)
        .await
        .map_err(MigrationError::Unavailable)?;
    let mut want = read_tree(&from_client, from)
        .await
        .map_err(|e| zk_error("reading the target", e))?;
    let mut have = read_tree(&to_client, to)
        .await
        .map_err(|e| zk_error("reading the source", e))?;
    want.nodes.remove(RECORD);
    have.nodes.remove(RECORD);
    let plan = copy::plan(&want, &have, true);
    let report = copy::apply(&to_client, to, &plan)
        .await
        .map_err(|e| zk_error("copying the target back", e))?;
    if let Some(error) = report.errors.first() {
        return Err(zk_error("copying the target back", error));
    }
    Ok(())
}
