//! A znode subtree as plain data (pure): each node's data, ACL and the stat fields the sync
//! engine decides with, keyed by its path relative to the subtree's root (`""` is the root,
//! `/a/b` below it). Comparing two trees gives their differences, in path order.

use std::collections::BTreeMap;

/// One ACL entry: permissions bits, scheme and id (`31`, `world`, `anyone`).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct AclEntry {
    pub perms: u32,
    pub scheme: String,
    pub id: String,
}

/// One znode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub data: Vec<u8>,
    pub acl: Vec<AclEntry>,
    /// Owned by a session: never copied (it would outlive its owner).
    pub ephemeral: bool,
    /// Last modification, milliseconds since the epoch (the server's clock).
    pub mtime_ms: i64,
    /// The zxid of the last modification.
    pub mzxid: i64,
    /// Changes to the children: the counter sequential names are made from.
    pub cversion: i32,
}

impl Node {
    /// A persistent node with `data` that anyone may do anything with (`world:anyone`, all
    /// permissions), stat fields zero.
    pub fn open(data: &[u8]) -> Self {
        Self {
            data: data.to_vec(),
            acl: vec![AclEntry {
                perms: 31,
                scheme: "world".into(),
                id: "anyone".into(),
            }],
            ephemeral: false,
            mtime_ms: 0,
            mzxid: 0,
            cversion: 0,
        }
    }

    /// Whether data and ACL are the same (stat fields aside).
    pub fn same_content(&self, other: &Node) -> bool {
        self.data == other.data && self.acl == other.acl
    }
}

/// A subtree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub nodes: BTreeMap<String, Node>,
}

/// How two trees differ at one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Difference {
    /// Only in the first tree.
    OnlyInFirst,
    /// Only in the second tree.
    OnlyInSecond,
    Data,
    Acl,
}

impl Tree {
    /// The persistent nodes (ephemerals left out), and the ephemerals' paths.
    pub fn split_ephemerals(&self) -> (Tree, Vec<String>) {
        let mut kept = Tree::default();
        let mut ephemerals = Vec::new();
        for (path, node) in &self.nodes {
            if node.ephemeral {
                ephemerals.push(path.clone());
            } else {
                kept.nodes.insert(path.clone(), node.clone());
            }
        }
        (kept, ephemerals)
    }

    /// Every difference between `self` and `other`, ephemeral nodes ignored on both sides.
    pub fn differences(&self, other: &Tree) -> Vec<(String, Difference)> {
        let mut out = Vec::new();
        for (path, node) in self.nodes.iter().filter(|(_, n)| !n.ephemeral) {
            match other.nodes.get(path).filter(|n| !n.ephemeral) {
                None => out.push((path.clone(), Difference::OnlyInFirst)),
                Some(theirs) => {
                    if node.data != theirs.data {
                        out.push((path.clone(), Difference::Data));
                    }
                    if node.acl != theirs.acl {
                        out.push((path.clone(), Difference::Acl));
                    }
                }
            }
        }
        for (path, _) in other.nodes.iter().filter(|(_, n)| !n.ephemeral) {
            if self.nodes.get(path).is_none_or(|n| n.ephemeral) {
                out.push((path.clone(), Difference::OnlyInSecond));
            }
        }
        out.sort();
        out
    }
}

/// The depth of a relative path (`""` is 0, `/a/b` is 2).
pub fn depth(path: &str) -> usize {
    path.matches('/').count()
}

/// The parent of a relative path; None for the root.
pub fn parent(path: &str) -> Option<&str> {
    (!path.is_empty()).then(|| path.rsplit_once('/').map_or("", |(p, _)| p))
}

#[cfg(test)]
pub(crate) fn node(data: &str) -> Node {
    Node::open(data.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_found_and_ephemerals_ignored() {
        let mut a = Tree::default();
        let mut b = Tree::default();
        a.nodes.insert(String::new(), node(""));
        b.nodes.insert(String::new(), node(""));
        a.nodes.insert("/x".into(), node("1"));
        b.nodes.insert("/x".into(), node("2"));
        a.nodes.insert("/only-a".into(), node(""));
        let mut locked = node("");
        locked.acl[0].perms = 1;
        a.nodes.insert("/acl".into(), node(""));
        b.nodes.insert("/acl".into(), locked);
        let mut eph = node("e");
        eph.ephemeral = true;
        b.nodes.insert("/eph".into(), eph);
        assert_eq!(
            a.differences(&b),
            vec![
                ("/acl".into(), Difference::Acl),
                ("/only-a".into(), Difference::OnlyInFirst),
                ("/x".into(), Difference::Data),
            ]
        );
        assert_eq!((depth(""), depth("/a/b")), (0, 2));
        assert_eq!(
            (parent("/a/b"), parent("/a"), parent("")),
            (Some("/a"), Some(""), None)
        );
    }
}
