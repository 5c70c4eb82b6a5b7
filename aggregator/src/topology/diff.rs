//! Differences between two versions of a view, as the WebSocket sends them.

use serde::Serialize;

use super::views::{Node, View};

/// What changed in a view: nodes added, nodes changed, ids removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Diff {
    pub add: Vec<Node>,
    pub update: Vec<Node>,
    pub remove: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.update.is_empty() && self.remove.is_empty()
    }
}

/// The changes that turn `old` into `new`.
pub fn diff(old: &View, new: &View) -> Diff {
    let mut diff = Diff::default();
    for (id, node) in &new.nodes {
        match old.nodes.get(id) {
            None => diff.add.push(node.clone()),
            Some(previous) if previous != node => diff.update.push(node.clone()),
            Some(_) => {}
        }
    }
    diff.remove = old
        .nodes
        .keys()
        .filter(|id| !new.nodes.contains_key(*id))
        .cloned()
        .collect();
    diff
}
