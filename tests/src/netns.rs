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

/// A LAN: a bridge in its own namespace (so the host's firewall never sees the traffic), the
/// root namespace on it as `<subnet>.1`, and `hosts` namespaces as `<subnet>.11`, `.12`, ...
#[derive(Debug)]
pub struct Lan {
    switch: String,
    root_veth: String,
    namespaces: Vec<String>,
    subnet: String,
}

impl Lan {
    /// `name` must be short (interface names are derived from it); `subnet` is like
    /// `10.202.0`.
    pub fn create(name: &str, subnet: &str, hosts: usize) -> Self {
        let switch = format!("{name}sw");
        let root_veth = format!("{name}r");
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &root_veth])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &switch])
            .output();
        sh("ip", &["netns", "add", &switch]);
        let mut lan = Self {
            switch: switch.clone(),
            root_veth: root_veth.clone(),
            namespaces: Vec::new(),
            subnet: subnet.to_owned(),
        };
        sh(
            "ip",
            &["-n", &switch, "link", "add", "br0", "type", "bridge"],
        );
        sh("ip", &["-n", &switch, "link", "set", "br0", "up"]);
        let plug = |veth: &str| {
            sh("ip", &["link", "set", veth, "netns", &switch]);
            sh("ip", &["-n", &switch, "link", "set", veth, "master", "br0"]);
            sh("ip", &["-n", &switch, "link", "set", veth, "up"]);
        };
        let port = format!("{name}rp");
        sh(
            "ip",
            &[
                "link", "add", &root_veth, "type", "veth", "peer", "name", &port,
            ],
        );
        plug(&port);
        sh(
            "ip",
            &["addr", "add", &format!("{subnet}.1/24"), "dev", &root_veth],
        );
        sh("ip", &["link", "set", &root_veth, "up"]);
        for i in 1..=hosts {
            let ns = format!("{name}{i}");
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &ns])
                .output();
            sh("ip", &["netns", "add", &ns]);
            lan.namespaces.push(ns.clone());
            let (inside, outside) = (format!("{ns}a"), format!("{ns}b"));
            sh(
                "ip",
                &[
                    "link", "add", &inside, "type", "veth", "peer", "name", &outside,
                ],
            );
            sh("ip", &["link", "set", &inside, "netns", &ns]);
            plug(&outside);
            sh(
                "ip",
                &[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{subnet}.{}/24", 10 + i),
                    "dev",
                    &inside,
                ],
            );
            sh("ip", &["-n", &ns, "link", "set", &inside, "up"]);
            sh("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        }
        lan
    }

    /// The namespace of host `i` (from 1).
    pub fn namespace(&self, i: usize) -> &str {
        &self.namespaces[i - 1]
    }

    /// The address of host `i` (from 1); host 0 is the root namespace.
    pub fn address(&self, i: usize) -> String {
        if i == 0 {
            format!("{}.1", self.subnet)
        } else {
            format!("{}.{}", self.subnet, 10 + i)
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .output();
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.root_veth])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.switch])
            .output();
    }
}
