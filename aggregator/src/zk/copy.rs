//! The initial copy. [`plan`] (pure) lists the writes that make a target subtree match a
//! source one: creates (parents first), data and ACL changes, and with `mirror` the deletes
//! of what the source does not have (children first); ephemeral nodes are never copied and
//! are listed instead. [`apply`] sends them as `multi` transactions of bounded size, all
//! pipelined on one session (ZooKeeper runs a session's requests in order, so a child's
//! create never overtakes its parent's), and falls back to single writes for a batch the
//! target refused (someone else wrote meanwhile).
//!
//! Sequential nodes keep their names. A parent's sequence counter is its `cversion` (child
//! creates and deletes); after a copy the target's counter can lag the source's, and a new
//! sequential node on the target could then take a name the source already used. The plan
//! raises such counters by creating and deleting a scratch child (two steps per pair), up
//! to [`MAX_COUNTER_BUMPS`] pairs per parent; a larger gap is reported, not closed.

use std::time::Instant;

use futures_util::future::join_all;
use zookeeper_client as zk;

use super::{
    ZkError,
    read::zk_acl,
    tree::{AclEntry, Node, Tree, parent},
    url::ZkUrl,
    write,
};

/// The most create+delete pairs spent raising one parent's sequence counter.
pub const MAX_COUNTER_BUMPS: u32 = 10_000;
/// Bytes one `multi` carries at most (the server's `jute.maxbuffer` is 1 MiB by default).
const BATCH_BYTES: usize = 512 * 1024;
/// Operations one `multi` carries at most.
const BATCH_OPS: usize = 1000;
/// Counter bumps (create+delete pairs) one write carries.
const BUMPS_PER_WRITE: u32 = 400;
/// The scratch child used to raise sequence counters.
const BUMP_CHILD: &str = ".strata-sequence-bump";

/// One write to the target (paths relative to the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Create {
        path: String,
        data: Vec<u8>,
        acl: Vec<AclEntry>,
    },
    SetData {
        path: String,
        data: Vec<u8>,
    },
    SetAcl {
        path: String,
        acl: Vec<AclEntry>,
    },
    Delete {
        path: String,
    },
    /// Create and delete a scratch child of `parent`, `pairs` times.
    BumpCounter {
        parent: String,
        pairs: u32,
    },
}

/// What a copy will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub writes: Vec<Write>,
    /// Ephemeral nodes of the source, not copied.
    pub ephemerals: Vec<String>,
    /// Parents whose sequence counter lags by more than [`MAX_COUNTER_BUMPS`] pairs.
    pub counters_left: Vec<String>,
}

fn sequential_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    name.len() >= 10 && name[name.len() - 10..].bytes().all(|b| b.is_ascii_digit())
}

/// The writes that make `target` match `source`; with `mirror`, what only the target has is
/// deleted too.
pub fn plan(source: &Tree, target: &Tree, mirror: bool) -> Plan {
    let (source, ephemerals) = source.split_ephemerals();
    let mut out = Plan {
        ephemerals,
        ..Plan::default()
    };
    // Child creates and deletes per parent, to know the target's counter afterwards.
    let mut child_changes: std::collections::HashMap<&str, i64> = Default::default();
    for (path, node) in &source.nodes {
        match target.nodes.get(path) {
            None => {
                out.writes.push(Write::Create {
                    path: path.clone(),
                    data: node.data.clone(),
                    acl: node.acl.clone(),
                });
                if let Some(p) = parent(path) {
                    *child_changes.entry(p).or_default() += 1;
                }
            }
            Some(theirs) => {
                if theirs.data != node.data {
                    out.writes.push(Write::SetData {
                        path: path.clone(),
                        data: node.data.clone(),
                    });
                }
                if theirs.acl != node.acl {
                    out.writes.push(Write::SetAcl {
                        path: path.clone(),
                        acl: node.acl.clone(),
                    });
                }
            }
        }
    }
    if mirror {
        for (path, node) in target.nodes.iter().rev() {
            if !node.ephemeral && !source.nodes.contains_key(path) && !path.is_empty() {
                out.writes.push(Write::Delete { path: path.clone() });
                if let Some(p) = parent(path) {
                    *child_changes.entry(p).or_default() += 1;
                }
            }
        }
    }
    for (path, node) in &source.nodes {
        let sequential_children = source
            .nodes
            .range(format!("{path}/")..)
            .take_while(|(p, _)| p.starts_with(&format!("{path}/")))
            .any(|(p, _)| parent(p) == Some(path.as_str()) && sequential_name(p));
        if !sequential_children {
            continue;
        }
        let before = target.nodes.get(path).map_or(0, |n| i64::from(n.cversion));
        let after = before + child_changes.get(path.as_str()).copied().unwrap_or(0);
        let gap = i64::from(node.cversion) - after;
        if gap <= 0 {
            continue;
        }
        let pairs = (gap + 1) / 2;
        if pairs > i64::from(MAX_COUNTER_BUMPS) {
            out.counters_left.push(path.clone());
            continue;
        }
        // In pieces a multi can carry.
        let mut left = pairs as u32;
        while left > 0 {
            let now = left.min(BUMPS_PER_WRITE);
            out.writes.push(Write::BumpCounter {
                parent: path.clone(),
                pairs: now,
            });
            left -= now;
        }
    }
    out
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub counter_bumps: u32,
    pub ephemerals_skipped: usize,
    pub counters_left: Vec<String>,
    /// Writes that failed even one at a time.
    pub errors: Vec<String>,
    pub seconds: f64,
}

fn size_of(write: &Write) -> usize {
    match write {
        Write::Create { path, data, acl } => path.len() + data.len() + 48 * acl.len() + 32,
        Write::SetData { path, data } => path.len() + data.len() + 16,
        Write::Delete { path } | Write::SetAcl { path, .. } => path.len() + 16,
        Write::BumpCounter { parent, pairs } => (parent.len() + 64) * 2 * *pairs as usize,
    }
}

/// Adds `write` to `multi`. ACL changes, which a multi cannot carry, are never batched
/// ([`apply`] sends them alone).
fn add(multi: &mut zk::MultiWriter<'_>, url: &ZkUrl, write: &Write) -> Result<(), zk::Error> {
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    match write {
        Write::Create { path, data, acl } => {
            let acl = zk_acl(acl);
            let options = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acl));
            multi.add_create(&url.absolute(path), data, &options)?;
        }
        Write::SetData { path, data } => multi.add_set_data(&url.absolute(path), data, None)?,
        Write::Delete { path } => multi.add_delete(&url.absolute(path), None)?,
        Write::BumpCounter { parent, pairs } => {
            let scratch = format!("{}/{BUMP_CHILD}", url.absolute(parent)).replace("//", "/");
            for _ in 0..*pairs {
                multi.add_create(&scratch, b"", &open)?;
                multi.add_delete(&scratch, None)?;
            }
        }
        Write::SetAcl { .. } => {}
    }
    Ok(())
}

/// One write on its own, tolerating what a concurrent writer may have done first.
async fn apply_one(client: &zk::Client, url: &ZkUrl, write: &Write) -> Result<(), ZkError> {
    match write {
        Write::Create { path, data, acl } => {
            let node = Node {
                data: data.clone(),
                acl: acl.clone(),
                ..Node::open(b"")
            };
            write::put(client, &url.absolute(path), Some(&node), None)
                .await
                .map(drop)
        }
        Write::SetData { path, data } => {
            let abs = url.absolute(path);
            client
                .set_data(&abs, data, None)
                .await
                .map(drop)
                .map_err(|e| ZkError::new("setting", &abs, e))
        }
        Write::SetAcl { path, acl } => {
            let abs = url.absolute(path);
            let (data, _) = client
                .get_data(&abs)
                .await
                .map_err(|e| ZkError::new("reading", &abs, e))?;
            write::set_acl(client, &abs, &data, acl).await.map(drop)
        }
        Write::Delete { path } => {
            let abs = url.absolute(path);
            match client.delete(&abs, None).await {
                Ok(()) | Err(zk::Error::NoNode) => Ok(()),
                Err(e) => Err(ZkError::new("deleting", &abs, e)),
            }
        }
        Write::BumpCounter { .. } => {
            let mut multi = client.new_multi_writer();
            add(&mut multi, url, write).map_err(|e| ZkError::new("bumping", &url.root, e))?;
            multi
                .commit()
                .await
                .map(drop)
                .map_err(|e| ZkError::new("bumping the counter under", &url.root, e.into()))
        }
    }
}

/// Creates the root's missing ancestors on the target.
async fn ensure_ancestors(client: &zk::Client, url: &ZkUrl) -> Result<(), ZkError> {
    let Some((parent, _)) = url.root.rsplit_once('/') else {
        return Ok(());
    };
    if parent.is_empty() {
        return Ok(());
    }
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client
        .mkdir(parent, &open)
        .await
        .map_err(|e| ZkError::new("creating", parent, e))
}

/// Applies `plan` to the target at `url`.
pub async fn apply(client: &zk::Client, url: &ZkUrl, plan: &Plan) -> Result<Report, ZkError> {
    let started = Instant::now();
    ensure_ancestors(client, url).await?;
    let mut report = Report {
        ephemerals_skipped: plan.ephemerals.len(),
        counters_left: plan.counters_left.clone(),
        ..Report::default()
    };
    // Batches of writes, each sent as one multi (or alone, for ACL changes), in order.
    // ACL changes cannot ride in a multi; everything else goes in bounded batches.
    let (acl_changes, batched): (Vec<&Write>, Vec<&Write>) = plan
        .writes
        .iter()
        .partition(|w| matches!(w, Write::SetAcl { .. }));
    let mut batches: Vec<Vec<&Write>> = Vec::new();
    let mut bytes = 0;
    for write in batched {
        let size = size_of(write);
        match batches.last_mut() {
            Some(batch) if bytes + size <= BATCH_BYTES && batch.len() < BATCH_OPS => {
                batch.push(write);
            }
            _ => {
                batches.push(vec![write]);
                bytes = 0;
            }
        }
        bytes += size;
    }
    let mut commits = Vec::with_capacity(batches.len());
    for batch in &batches {
        let mut multi = client.new_multi_writer();
        for write in batch {
            add(&mut multi, url, write).map_err(|e| ZkError::new("batching", &url.root, e))?;
        }
        commits.push(multi.commit());
    }
    let results = join_all(commits).await;
    // Batches the target refused as a whole (someone wrote meanwhile), then the ACL
    // changes, one write at a time.
    let mut single: Vec<&Write> = Vec::new();
    for (batch, result) in batches.iter().zip(results) {
        if result.is_err() {
            single.extend(batch.iter().copied());
        }
    }
    single.extend(acl_changes);
    for write in single {
        if let Err(err) = apply_one(client, url, write).await {
            report.errors.push(err.to_string());
        }
    }
    for write in &plan.writes {
        match write {
            Write::Create { .. } => report.created += 1,
            Write::SetData { .. } | Write::SetAcl { .. } => report.updated += 1,
            Write::Delete { .. } => report.deleted += 1,
            Write::BumpCounter { pairs, .. } => report.counter_bumps += pairs,
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zk::tree::node;

    fn tree(nodes: &[(&str, &str)]) -> Tree {
        Tree {
            nodes: nodes
                .iter()
                .map(|(p, d)| ((*p).to_owned(), node(d)))
                .collect(),
        }
    }

    #[test]
    fn the_plan_creates_parents_first_updates_and_mirrors() {
        let mut source = tree(&[("", ""), ("/a", "1"), ("/a/b", "2"), ("/c", "new")]);
        source.nodes.get_mut("/c").expect("c").acl[0].perms = 1;
        let mut eph = node("e");
        eph.ephemeral = true;
        source.nodes.insert("/a/eph".into(), eph);
        let target = tree(&[("", ""), ("/c", "old"), ("/gone", ""), ("/gone/child", "")]);
        let plan = plan(&source, &target, true);
        let kinds: Vec<String> = plan
            .writes
            .iter()
            .map(|w| match w {
                Write::Create { path, .. } => format!("create {path}"),
                Write::SetData { path, .. } => format!("set {path}"),
                Write::SetAcl { path, .. } => format!("acl {path}"),
                Write::Delete { path } => format!("delete {path}"),
                Write::BumpCounter { parent, pairs } => format!("bump {parent} {pairs}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "create /a",
                "create /a/b",
                "set /c",
                "acl /c",
                "delete /gone/child",
                "delete /gone"
            ]
        );
        assert_eq!(plan.ephemerals, ["/a/eph"]);
    }

    #[test]
    fn sequence_counters_are_raised_to_the_sources() {
        let mut source = tree(&[("", ""), ("/q", ""), ("/q/n-0000000007", "")]);
        source.nodes.get_mut("/q").expect("q").cversion = 15;
        let plan = plan(&source, &tree(&[("", "")]), false);
        // The copy makes one create under /q: 15 - 1 = 14 to go, 7 pairs.
        assert_eq!(
            plan.writes.last(),
            Some(&Write::BumpCounter {
                parent: "/q".into(),
                pairs: 7
            })
        );
        source.nodes.get_mut("/q").expect("q").cversion = i32::MAX;
        assert_eq!(plan_counters_left(&source), ["/q"]);
    }

    fn plan_counters_left(source: &Tree) -> Vec<String> {
        plan(source, &tree(&[("", "")]), false).counters_left
    }
}
