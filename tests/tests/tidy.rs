//! Tidiness checks over the workspace's sources: every Rust file starts with a `//!` line
//! saying what it is for, and no source file grows past the size where it should be split.

use std::path::{Path, PathBuf};

/// Lines past which a source file should be split by concern.
const MAX_LINES: usize = 600;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            // Generated code (flatc's) is checked for freshness instead.
            if name != "target" && name != "generated" && !name.to_string_lossy().starts_with('.') {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn workspace_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(
        files.len() > 20,
        "found the workspace's sources under {}",
        root.display()
    );
    files
}

#[test]
fn every_rust_file_starts_with_a_module_doc_line() {
    let undocumented: Vec<_> = workspace_files()
        .into_iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).expect("readable source");
            !text.starts_with("//!")
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "files without a leading `//!` line: {undocumented:#?}"
    );
}

#[test]
fn no_source_file_is_too_long() {
    let long: Vec<_> = workspace_files()
        .into_iter()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(&path)
                .expect("readable source")
                .lines()
                .count();
            (lines > MAX_LINES).then_some((path, lines))
        })
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:#?}");
}
