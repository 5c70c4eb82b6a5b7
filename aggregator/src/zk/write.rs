//! Writing one node to make it what the other side has: set its data, or create it (and
//! missing parents) with its ACL, fix the ACL when it differs, or delete it with everything
//! below it.

use zookeeper_client as zk;

use super::{
    ZkError,
    read::{acl_entries, zk_acl},
    tree::{AclEntry, Node},
};

/// Makes the node at `abs` be `state` (None: deleted, with its children); returns
/// the written node's modification zxid.
///
/// `known_acl` is the target's ACL as just read, if known: when it already is the
/// wanted one, the write costs one request.
pub async fn put(
    client: &zk::Client,
    abs: &str,
    state: Option<&Node>,
    known_acl: Option<&[AclEntry]>,
) -> Result<Option<i64>, ZkError> {
    let Some(node) = state else {
        delete_recursive(client, abs).await?;
        return Ok(None);
    };
    let acl = zk_acl(&node.acl);
    let (stat, acl_right) = match client.set_data(abs, &node.data, None).await {
        Ok(stat) => (stat, known_acl == Some(node.acl.as_slice())),
        Err(zk::Error::NoNode) => {
            let options = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acl));
            if let Some((parent, _)) = abs.rsplit_once('/')
                && !parent.is_empty()
            {
                let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                client
                    .mkdir(parent, &open)
                    .await
                    .map_err(|e| ZkError::new("creating", parent, e))?;
            }
            match client.create(abs, &node.data, &options).await {
                // Created with the wanted ACL.
                Ok((stat, _)) => (stat, true),
                Err(zk::Error::NodeExists) => (
                    client
                        .set_data(abs, &node.data, None)
                        .await
                        .map_err(|e| ZkError::new("setting", abs, e))?,
                    false,
                ),
                Err(e) => return Err(ZkError::new("creating", abs, e)),
            }
        }
        Err(e) => return Err(ZkError::new("setting", abs, e)),
    };
    if acl_right {
        return Ok(Some(stat.mzxid));
    }
    let (have, _) = client
        .get_acl(abs)
        .await
        .map_err(|e| ZkError::new("reading the ACL of", abs, e))?;
    let stat = if acl_entries(&have) == node.acl {
        stat
    } else {
        set_acl(client, abs, &node.data, &node.acl).await?
    };
    Ok(Some(stat.mzxid))
}

/// Sets a node's ACL. A node whose ACL grants no ADMIN cannot have it changed: if it has no
/// children it is deleted and created again with `data` and the new ACL, in one
/// transaction.
pub async fn set_acl(
    client: &zk::Client,
    abs: &str,
    data: &[u8],
    acl: &[AclEntry],
) -> Result<zk::Stat, ZkError> {
    let wanted = zk_acl(acl);
    match client.set_acl(abs, &wanted, None).await {
        Ok(stat) => Ok(stat),
        Err(zk::Error::NoAuth) => {
            let options = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&wanted));
            let mut multi = client.new_multi_writer();
            multi
                .add_delete(abs, None)
                .and_then(|()| multi.add_create(abs, data, &options))
                .map_err(|e| ZkError::new("replacing", abs, e))?;
            match multi.commit().await {
                Ok(_) => client
                    .check_stat(abs)
                    .await
                    .map_err(|e| ZkError::new("reading", abs, e))?
                    .ok_or_else(|| ZkError::new("reading", abs, zk::Error::NoNode)),
                Err(e) => Err(ZkError::new(
                    "replacing (its ACL grants no ADMIN and it has children?)",
                    abs,
                    e.into(),
                )),
            }
        }
        Err(e) => Err(ZkError::new("setting the ACL of", abs, e)),
    }
}

/// Deletes `path` and everything below it (children first), again when a child appeared
/// meanwhile.
async fn delete_recursive(client: &zk::Client, path: &str) -> Result<(), ZkError> {
    let mut tries = 0;
    loop {
        match delete_tree_once(client, path).await {
            Err(err) if err.source == zk::Error::NotEmpty && tries < 5 => tries += 1,
            done => return done,
        }
    }
}

async fn delete_tree_once(client: &zk::Client, path: &str) -> Result<(), ZkError> {
    let mut stack = vec![path.to_owned()];
    let mut order = Vec::new();
    while let Some(p) = stack.pop() {
        match client.list_children(&p).await {
            Ok(children) => {
                for c in children {
                    stack.push(format!("{}/{c}", p.trim_end_matches('/')));
                }
                order.push(p);
            }
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(ZkError::new("listing", &p, e)),
        }
    }
    for p in order.iter().rev() {
        match client.delete(p, None).await {
            Ok(()) | Err(zk::Error::NoNode) => {}
            Err(e) => return Err(ZkError::new("deleting", p, e)),
        }
    }
    Ok(())
}
