//! Reading a whole subtree from a ZooKeeper server, pipelined: every node of a level is
//! asked for its data and ACL at once (the client sends each request when it is made), a
//! bounded number at a time, then those with children for their names. Nodes deleted while
//! the tree is read are skipped.

use futures_util::future::join_all;
use zookeeper_client as zk;

use super::{
    ZkError,
    tree::{AclEntry, Node, Tree},
    url::ZkUrl,
};

/// Nodes asked about at once (two requests each, a third for those with children).
const IN_FLIGHT: usize = 5000;

/// ZooKeeper's own subtree, never copied.
const SYSTEM: &str = "/zookeeper";

pub fn acl_entries(acl: &[zk::Acl]) -> Vec<AclEntry> {
    acl.iter()
        .map(|a| AclEntry {
            perms: permission_bits(a.permission()),
            scheme: a.scheme().to_owned(),
            id: a.id().to_owned(),
        })
        .collect()
}

/// ZooKeeper's permission bits.
const PERMISSIONS: [(zk::Permission, u32); 5] = [
    (zk::Permission::READ, 1),
    (zk::Permission::WRITE, 2),
    (zk::Permission::CREATE, 4),
    (zk::Permission::DELETE, 8),
    (zk::Permission::ADMIN, 16),
];

fn permission_bits(p: zk::Permission) -> u32 {
    PERMISSIONS
        .into_iter()
        .filter(|(flag, _)| p.has(*flag))
        .map(|(_, bit)| bit)
        .sum()
}

/// The client's ACL for entries read from a tree.
pub fn zk_acl(entries: &[AclEntry]) -> Vec<zk::Acl> {
    entries
        .iter()
        .map(|e| {
            let mut permission = zk::Permission::NONE;
            for (flag, bit) in PERMISSIONS {
                if e.perms & bit != 0 {
                    permission = permission | flag;
                }
            }
            zk::Acl::new(permission, zk::AuthId::new(&e.scheme, &e.id))
        })
        .collect()
}

/// Reads one node (data, stat and ACL, both asked at once); None when it does not exist.
/// Also says whether it has children.
pub async fn read_node(client: &zk::Client, path: &str) -> Result<Option<(Node, bool)>, ZkError> {
    let data = client.get_data(path);
    let acl = client.get_acl(path);
    let (data, acl) = futures_util::join!(data, acl);
    match (data, acl) {
        (Ok((data, stat)), Ok((acl, _))) => Ok(Some((
            Node {
                data,
                acl: acl_entries(&acl),
                ephemeral: stat.ephemeral_owner != 0,
                mtime_ms: stat.mtime,
                mzxid: stat.mzxid,
                cversion: stat.cversion,
            },
            stat.num_children > 0,
        ))),
        (Err(zk::Error::NoNode), _) | (_, Err(zk::Error::NoNode)) => Ok(None),
        (Err(e), _) | (_, Err(e)) => Err(ZkError::new("reading", path, e)),
    }
}

async fn children_of(client: &zk::Client, path: &str) -> Result<Vec<String>, ZkError> {
    match client.list_children(path).await {
        Ok(children) => Ok(children),
        Err(zk::Error::NoNode) => Ok(Vec::new()),
        Err(e) => Err(ZkError::new("listing", path, e)),
    }
}

/// Reads the subtree at `url`'s root (empty when the root does not exist).
pub async fn read_tree(client: &zk::Client, url: &ZkUrl) -> Result<Tree, ZkError> {
    let mut tree = Tree::default();
    let mut level = vec![String::new()];
    while !level.is_empty() {
        let mut next = Vec::new();
        for chunk in level.chunks(IN_FLIGHT) {
            let absolute: Vec<String> = chunk.iter().map(|rel| url.absolute(rel)).collect();
            let reads = absolute.iter().map(|path| read_node(client, path));
            // Children are listed only for nodes that have some (most nodes are leaves).
            let mut parents = Vec::new();
            for ((rel, abs), read) in chunk.iter().zip(&absolute).zip(join_all(reads).await) {
                let Some((node, has_children)) = read? else {
                    continue;
                };
                if has_children {
                    parents.push((rel, abs));
                }
                tree.nodes.insert(rel.clone(), node);
            }
            let lists = parents.iter().map(|(_, abs)| children_of(client, abs));
            for ((rel, _), children) in parents.iter().zip(join_all(lists).await) {
                for child in children? {
                    let child_rel = format!("{rel}/{child}");
                    if url.absolute(&child_rel) != SYSTEM {
                        next.push(child_rel);
                    }
                }
            }
        }
        level = next;
    }
    Ok(tree)
}
