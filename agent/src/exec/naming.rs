//! Names derived from ids: file and cgroup names, container names, and the agent's scope (a
//! short hash of its state directory, so two agents on one host never share a cgroup or a
//! container name).

use std::path::Path;

use sha2::{Digest as _, Sha256};

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..4])
}

/// `text` with every character outside `[A-Za-z0-9._-]` replaced by `_`; when anything was
/// replaced (or the result could be `.`/`..`), a hash of the original is appended so distinct
/// ids keep distinct names.
pub fn file_name(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean == text && !clean.is_empty() && !clean.starts_with('.') {
        clean
    } else {
        format!("{clean}-{}", short_hash(text))
    }
}

/// The agent's scope: `agent-` and 12 hex digits of the hash of its (canonical) state dir.
pub fn scope(state_dir: &Path) -> String {
    let dir = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let digest = Sha256::digest(dir.to_string_lossy().as_bytes());
    format!("agent-{}", &hex::encode(digest)[..12])
}

/// The Docker container name of a task: `strata-<scope>-<task>`.
pub fn container_name(scope: &str, task_id: &str) -> String {
    format!("strata-{scope}-{}", file_name(task_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_distinct() {
        assert_eq!(file_name("web-1.a_b"), "web-1.a_b");
        let slash = file_name("a/b");
        assert!(slash.starts_with("a_b-"), "{slash}");
        assert_ne!(slash, file_name("a_b"));
        assert_ne!(file_name("a/b"), file_name("a:b"));
        assert!(file_name("..").starts_with("..-"));
        assert!(!file_name("").is_empty());
        let one = scope(Path::new("/tmp/one"));
        assert_eq!(one.len(), "agent-".len() + 12);
        assert_ne!(one, scope(Path::new("/tmp/two")));
        assert_eq!(
            container_name("agent-x", "t 1"),
            format!("strata-agent-x-{}", file_name("t 1"))
        );
    }
}
