//! Reading a task's output for the master (what `strata logs` shows): a bounded piece of
//! `stdout` or `stderr` in the task's sandbox, from an offset or from the end. Nothing else
//! in the sandbox (or outside it) can be named.

use std::{
    fs::File,
    io::{Read as _, Seek as _, SeekFrom},
    path::Path,
};

use proto::exec::{FileChunk, MAX_FILE_CHUNK};

use super::sandbox::sandbox_of;

/// The files that can be read.
pub const READABLE: [&str; 2] = ["stdout", "stderr"];

/// Reads `length` bytes (at most [`MAX_FILE_CHUNK`]) of `file` from `offset`, or the last
/// `length` bytes when `offset` is None.
pub fn read(
    work_dir: &Path,
    framework_id: &str,
    task_id: &str,
    file: &str,
    offset: Option<u64>,
    length: u64,
) -> FileChunk {
    let failed = |error: String| FileChunk {
        error: Some(error),
        ..FileChunk::default()
    };
    if !READABLE.contains(&file) {
        return failed(format!("`{file}` is not one of: stdout, stderr"));
    }
    let path = sandbox_of(work_dir, framework_id, task_id).join(file);
    let mut handle = match File::open(&path) {
        Ok(handle) => handle,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return failed(format!("task {task_id} has no {file} on this agent"));
        }
        Err(err) => return failed(format!("opening {}: {err}", path.display())),
    };
    let size = handle.metadata().map(|m| m.len()).unwrap_or(0);
    let length = length.min(MAX_FILE_CHUNK);
    let start = offset
        .unwrap_or_else(|| size.saturating_sub(length))
        .min(size);
    let mut bytes = Vec::new();
    let read = handle
        .seek(SeekFrom::Start(start))
        .and_then(|_| handle.by_ref().take(length).read_to_end(&mut bytes));
    if let Err(err) = read {
        return failed(format!("reading {}: {err}", path.display()));
    }
    FileChunk {
        offset: start,
        next_offset: start + bytes.len() as u64,
        data: String::from_utf8_lossy(&bytes).into_owned(),
        size,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_from_an_offset_or_the_end() {
        let work = std::env::temp_dir().join(format!("strata-files-{}", std::process::id()));
        let dir = sandbox_of(&work, "fw", "t1");
        std::fs::create_dir_all(&dir).expect("sandbox");
        std::fs::write(dir.join("stdout"), "hello\nworld\n").expect("write");
        let tail = read(&work, "fw", "t1", "stdout", None, 6);
        assert_eq!(
            (tail.data.as_str(), tail.offset, tail.size),
            ("world\n", 6, 12)
        );
        let head = read(&work, "fw", "t1", "stdout", Some(0), 5);
        assert_eq!((head.data.as_str(), head.next_offset), ("hello", 5));
        let past = read(&work, "fw", "t1", "stdout", Some(100), 5);
        assert_eq!((past.data.as_str(), past.next_offset), ("", 12));
        assert!(read(&work, "fw", "t1", "../x", None, 5).error.is_some());
        assert!(read(&work, "fw", "t2", "stdout", None, 5).error.is_some());
        let _ = std::fs::remove_dir_all(&work);
    }
}
