//! What a live sync syncs: the two sides, one way or both, the conflict policy, the subtrees
//! left out, and who wins the first comparison.

use super::{decide::Policy, url::ZkUrl};

/// What to sync.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub a: ZkUrl,
    pub b: ZkUrl,
    pub both_ways: bool,
    pub policy: Policy,
    /// Subtrees (relative paths, as `/migration`) that are never synced.
    pub skip: Vec<String>,
    /// The first comparison makes B like A wherever they differ, whatever the policy: A is
    /// where the writers are, and an engine that starts again knows nothing of what changed
    /// while it was away (its mtimes come from two clusters' clocks).
    pub a_wins_first_pass: bool,
}

impl SyncConfig {
    /// Whether `relative` is in a subtree that is never synced.
    pub fn skipped(&self, relative: &str) -> bool {
        self.skip.iter().any(|s| {
            relative
                .strip_prefix(s.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_subtrees_are_whole_path_segments() {
        let config = SyncConfig {
            a: "zk://a:1/s".parse().expect("url"),
            b: "zk://b:1/s".parse().expect("url"),
            both_ways: true,
            policy: Policy::LastWriterWins,
            skip: vec!["/migration".into()],
            a_wins_first_pass: true,
        };
        assert!(config.skipped("/migration"));
        assert!(config.skipped("/migration/x"));
        assert!(!config.skipped("/migrations"));
        assert!(!config.skipped("/state/tasks/t1"));
    }
}
