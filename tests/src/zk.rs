//! Real ZooKeeper servers for the tests (Debian's `zookeeper` 3.8, installed by `cargo xtask
//! setup`): standalone servers and three-node ensembles on free loopback ports, each with its
//! own data directory and log, stopped when dropped. A server can be killed and started
//! again on the same data, to test what survives a restart.

use std::{
    fs,
    io::{Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::cluster::free_addr;

const CLASSPATH: &str = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar";

/// One ZooKeeper server process.
#[derive(Debug)]
pub struct ZkServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    main_class: &'static str,
}

/// Sends a four-letter command and returns the answer (empty when the server is not up).
pub fn four_letter(port: u16, command: &str) -> String {
    let Ok(mut stream) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.write_all(command.as_bytes());
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

fn config(dir: &Path, port: u16, peers: &[(u16, u16)]) -> String {
    let mut text = format!(
        "tickTime=500\ninitLimit=20\nsyncLimit=10\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\nsnapCount=100000\n",
        dir.join("data").display()
    );
    for (i, (quorum, election)) in peers.iter().enumerate() {
        text.push_str(&format!("server.{}=127.0.0.1:{quorum}:{election}\n", i + 1));
    }
    text
}

impl ZkServer {
    fn prepare(dir: &Path, port: u16, peers: &[(u16, u16)], id: usize) -> Self {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir.join("data")).expect("creating a ZooKeeper data dir");
        fs::write(dir.join("zoo.cfg"), config(dir, port, peers)).expect("writing zoo.cfg");
        if !peers.is_empty() {
            fs::write(dir.join("data/myid"), id.to_string()).expect("writing myid");
        }
        Self {
            child: None,
            port,
            dir: dir.to_owned(),
            main_class: if peers.is_empty() {
                "org.apache.zookeeper.server.ZooKeeperServerMain"
            } else {
                "org.apache.zookeeper.server.quorum.QuorumPeerMain"
            },
        }
    }

    /// A standalone server in `dir`, started and serving.
    pub fn standalone(dir: &Path) -> Self {
        let port = free_addr("127.0.0.1", false).port();
        let mut server = Self::prepare(dir, port, &[], 0);
        server.start();
        server.wait_serving(Duration::from_secs(30));
        server
    }

    /// Starts the process (again, on the same data); does not wait.
    pub fn start(&mut self) {
        assert!(
            Path::new("/usr/share/java/zookeeper.jar").exists(),
            "Debian's zookeeper is not installed: run `cargo xtask setup`"
        );
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("opening the server log");
        let child = Command::new("java")
            .args([
                "-Xmx256m",
                "-Dzookeeper.root.logger=WARN,CONSOLE",
                "-cp",
                CLASSPATH,
            ])
            .arg(self.main_class)
            .arg(self.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("starting java for ZooKeeper");
        self.child = Some(child);
    }

    /// Kills the process at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it answers as a serving member (standalone, leader or follower).
    pub fn serving(&self) -> bool {
        four_letter(self.port, "srvr").contains("Mode:")
    }

    pub fn wait_serving(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.serving() {
            assert!(
                Instant::now() < deadline,
                "ZooKeeper on port {} did not serve within {timeout:?}; see {}",
                self.port,
                self.dir.join("server.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A ZooKeeper ensemble on loopback.
#[derive(Debug)]
pub struct Ensemble {
    pub servers: Vec<ZkServer>,
}

impl Ensemble {
    /// `n` members in `dir/zk-1..n`, started; waits until every one serves.
    pub fn start(dir: &Path, n: usize) -> Self {
        let ports: Vec<u16> = (0..n)
            .map(|_| free_addr("127.0.0.1", false).port())
            .collect();
        let peers: Vec<(u16, u16)> = (0..n)
            .map(|_| {
                (
                    free_addr("127.0.0.1", false).port(),
                    free_addr("127.0.0.1", false).port(),
                )
            })
            .collect();
        let mut servers: Vec<ZkServer> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                ZkServer::prepare(&dir.join(format!("zk-{}", i + 1)), *port, &peers, i + 1)
            })
            .collect();
        for server in &mut servers {
            server.start();
        }
        for server in &servers {
            server.wait_serving(Duration::from_secs(60));
        }
        Self { servers }
    }

    /// `127.0.0.1:P1,127.0.0.1:P2,...`.
    pub fn connect_string(&self) -> String {
        self.servers
            .iter()
            .map(ZkServer::address)
            .collect::<Vec<_>>()
            .join(",")
    }
}
