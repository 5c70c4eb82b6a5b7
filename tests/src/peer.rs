//! The `tcp-peer` test program, started as a real process (optionally inside a namespace).

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
};

/// A running `tcp-peer` and the first line it printed.
#[derive(Debug)]
pub struct Peer {
    child: Child,
    pub line: String,
}

impl Peer {
    fn start(binary: &str, netns: Option<&str>, args: &[&str]) -> Self {
        let mut command = match netns {
            Some(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns, binary]);
                command
            }
            None => Command::new(binary),
        };
        let mut child = command
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {binary}: {err}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading tcp-peer's output");
        assert!(!line.is_empty(), "tcp-peer {args:?} exited without output");
        Self {
            child,
            line: line.trim().to_owned(),
        }
    }

    /// An echo server on `addr`, ready when this returns.
    pub fn serve(binary: &str, netns: Option<&str>, addr: &str) -> Self {
        let peer = Self::start(binary, netns, &["serve", addr]);
        assert!(peer.line.starts_with("LISTENING"), "{}", peer.line);
        peer
    }

    /// A client that exchanged `bytes` bytes with `addr` and holds the connection `hold` s.
    pub fn connect(binary: &str, netns: Option<&str>, addr: &str, bytes: usize, hold: f64) -> Self {
        let peer = Self::start(
            binary,
            netns,
            &["connect", addr, &bytes.to_string(), &hold.to_string()],
        );
        assert!(peer.line.starts_with("CONNECTED"), "{}", peer.line);
        peer
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `n`th word of the first line (`CONNECTED <local> <remote>`: 1 and 2).
    pub fn word(&self, n: usize) -> &str {
        self.line
            .split_whitespace()
            .nth(n)
            .expect("tcp-peer line has that many words")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
