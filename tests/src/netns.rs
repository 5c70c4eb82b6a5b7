//! Network namespaces joined to the root namespace by a veth pair, and nftables NAT rules,
//! removed again when dropped. Only private addresses are used.

use crate::sh;

/// A namespace `name` whose `ns_addr` is reachable from the root namespace's `host_addr`.
#[derive(Debug)]
pub struct Namespace {
    pub name: String,
    host_veth: String,
}

impl Namespace {
    pub fn create(name: &str, host_addr: &str, ns_addr: &str) -> Self {
        let host_veth = format!("{name}-h");
        let ns_veth = format!("{name}-n");
        // Leftovers of an interrupted run.
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &host_veth])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", name])
            .output();
        sh("ip", &["netns", "add", name]);
        let namespace = Self {
            name: name.to_owned(),
            host_veth: host_veth.clone(),
        };
        sh(
            "ip",
            &[
                "link", "add", &host_veth, "type", "veth", "peer", "name", &ns_veth,
            ],
        );
        sh("ip", &["link", "set", &ns_veth, "netns", name]);
        sh("ip", &["addr", "add", host_addr, "dev", &host_veth]);
        sh("ip", &["link", "set", &host_veth, "up"]);
        let exec = |args: &[&str]| {
            let mut full = vec!["netns", "exec", name];
            full.extend_from_slice(args);
            sh("ip", &full);
        };
        exec(&["ip", "addr", "add", ns_addr, "dev", &ns_veth]);
        exec(&["ip", "link", "set", &ns_veth, "up"]);
        exec(&["ip", "link", "set", "lo", "up"]);
        namespace
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_veth])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// An nftables table in the root namespace, deleted when dropped.
#[derive(Debug)]
pub struct NftTable {
    name: String,
}

impl NftTable {
    /// Creates `table ip <name>` with the given chain definitions.
    pub fn create(name: &str, body: &str) -> Self {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "ip", name])
            .output();
        let script = format!("table ip {name} {{\n{body}\n}}\n");
        let path = std::env::temp_dir().join(format!("{name}.nft"));
        std::fs::write(&path, script).expect("writing the nft script");
        sh("nft", &["-f", &path.to_string_lossy()]);
        Self {
            name: name.to_owned(),
        }
    }
}

impl Drop for NftTable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "ip", &self.name])
            .output();
    }
}
