//! The ZooKeeper sync engine against two real standalone servers, driven by `strata zk` and
//! written to by kazoo: a copy carries data, ACLs and sequential names and checks equal;
//! random writes issued concurrently on both sides converge under live two-way sync (last
//! writer wins, also across a restart of one server; source wins, where a node changed on
//! both sides keeps A's version); a conflict under the manual policy is held, shown and
//! resolved.

use std::{
    path::Path,
    process::{Child, Command, Output},
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::{binary, cluster::free_addr, unique, zk::ZkServer};

const PATIENCE: Duration = Duration::from_secs(60);

fn kazoo(server: &ZkServer, args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(root.join("../.venv/bin/python"))
        .arg(root.join("python/zk_load.py"))
        .arg(server.address())
        .args(args)
        .output()
        .expect("running kazoo (run `cargo xtask setup`)");
    assert!(
        output.status.success(),
        "kazoo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn spawn_kazoo(server: &ZkServer, args: &[&str]) -> Child {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new(root.join("../.venv/bin/python"))
        .arg(root.join("python/zk_load.py"))
        .arg(server.address())
        .args(args)
        .spawn()
        .expect("running kazoo")
}

fn strata(args: &[&str]) -> Output {
    Command::new(binary("STRATA_CLI_BIN", "strata"))
        .args(args)
        .output()
        .expect("running strata")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn url(server: &ZkServer, path: &str) -> String {
    format!("zk://{}{path}", server.address())
}

/// Waits for every kazoo writer, which must succeed.
fn wait_all(writers: &mut [Child]) {
    for writer in writers {
        assert!(writer.wait().expect("kazoo ends").success());
    }
}

/// Polls `strata zk check` until both trees are identical.
fn wait_identical(a: &str, b: &str, what: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let check = strata(&["zk", "check", "--a", a, "--b", b]);
        if check.status.success() {
            return text(&check);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the trees still differ:\n{}",
            text(&check)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

struct Sync {
    child: Child,
    listen: String,
}

impl Sync {
    fn start(a: &str, b: &str, policy: &str) -> Self {
        let listen = free_addr("127.0.0.1", false).to_string();
        let child = Command::new(binary("STRATA_CLI_BIN", "strata"))
            .args([
                "zk",
                "sync",
                "--a",
                a,
                "--b",
                b,
                "--both-ways",
                "--policy",
                policy,
            ])
            .args(["--listen", &listen])
            .env("STRATA_LOG", "info")
            .spawn()
            .expect("starting strata zk sync");
        let deadline = Instant::now() + PATIENCE;
        while ureq::get(&format!("http://{listen}/metrics"))
            .call()
            .is_err()
        {
            assert!(Instant::now() < deadline, "the sync engine did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, listen }
    }

    fn get(&self, path: &str) -> String {
        ureq::get(&format!("http://{}{path}", self.listen))
            .call()
            .expect("the sync engine answers")
            .into_body()
            .read_to_string()
            .expect("a body")
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) takes no pointers.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }
}

impl Drop for Sync {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sets `/app/contested` on both sides while the engine is stopped, so that it sees two
/// concurrent changes when it goes on.
fn contest(sync: &Sync, a: &ZkServer, b: &ZkServer) {
    kazoo(a, &["/app", "set", "/app/contested", "start"]);
    wait_identical(&url(a, "/app"), &url(b, "/app"), "before the conflict");
    sync.signal(libc::SIGSTOP);
    kazoo(a, &["/app", "set", "/app/contested", "from-a"]);
    kazoo(b, &["/app", "set", "/app/contested", "from-b"]);
    sync.signal(libc::SIGCONT);
}

#[test]
fn copies_and_live_sync_converge_on_real_servers() {
    let dir = std::env::temp_dir().join(unique("strata-zk-sync"));
    let a = ZkServer::standalone(&dir.join("a"));
    let mut b = ZkServer::standalone(&dir.join("b"));

    // A copy: random content with ACLs and sequential nodes, then an identical check.
    kazoo(&a, &["/copy", "ops", "400", "1"]);
    let copied = strata(&[
        "zk",
        "copy",
        "--from",
        &url(&a, "/copy"),
        "--to",
        &url(&b, "/copy"),
    ]);
    assert!(copied.status.success(), "{}", text(&copied));
    let shown = wait_identical(&url(&a, "/copy"), &url(&b, "/copy"), "after the copy");
    assert!(shown.contains("identical"), "{shown}");
    // Changed on the source after the copy: check says where.
    kazoo(&a, &["/copy", "set", "/copy/extra", "late"]);
    let differs = strata(&[
        "zk",
        "check",
        "--a",
        &url(&a, "/copy"),
        "--b",
        &url(&b, "/copy"),
    ]);
    assert_eq!(differs.status.code(), Some(1), "{}", text(&differs));
    assert!(
        text(&differs).contains("/extra: only in"),
        "{}",
        text(&differs)
    );

    // A malformed address is refused before anything is read or written.
    let refused = strata(&[
        "zk",
        "copy",
        "--from",
        "http://127.0.0.1:1/x",
        "--to",
        &url(&b, "/copy"),
    ]);
    assert_eq!(refused.status.code(), Some(64), "{}", text(&refused));
    assert!(
        text(&refused).contains("zk://HOST:PORT"),
        "{}",
        text(&refused)
    );

    // Live sync both ways, last writer wins: concurrent random writes on both sides.
    let (sa, sb) = (url(&a, "/app"), url(&b, "/app"));
    let sync = Sync::start(&sa, &sb, "last-writer-wins");
    let mut writers: Vec<Child> = (0..2)
        .flat_map(|seed| {
            [
                spawn_kazoo(&a, &["/app", "ops", "300", &format!("{}", 10 + seed)]),
                spawn_kazoo(&b, &["/app", "ops", "300", &format!("{}", 20 + seed)]),
            ]
        })
        .collect();
    wait_all(&mut writers);
    wait_identical(&sa, &sb, "after concurrent writes");
    let metrics = sync.get("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("strata_zk_sync_writes_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // One server restarts during writes: nothing is lost.
    b.kill();
    kazoo(&a, &["/app", "ops", "200", "30"]);
    b.start();
    b.wait_serving(PATIENCE);
    kazoo(&b, &["/app", "ops", "100", "31"]);
    wait_identical(&sa, &sb, "after a restart of B");
    drop(sync);

    // Source wins: concurrent writes on both sides converge, and a node changed on both
    // sides at once keeps A's version.
    let sync = Sync::start(&sa, &sb, "source-wins");
    let mut writers = [
        spawn_kazoo(&a, &["/app", "ops", "200", "40"]),
        spawn_kazoo(&b, &["/app", "ops", "200", "41"]),
    ];
    wait_all(&mut writers);
    wait_identical(&sa, &sb, "after concurrent writes, source wins");
    contest(&sync, &a, &b);
    wait_identical(&sa, &sb, "after a contested write, source wins");
    let value = kazoo(&b, &["/app", "get", "/app/contested"]);
    assert_eq!(String::from_utf8_lossy(&value.stdout).trim(), "from-a");
    drop(sync);

    // Manual policy: concurrent changes to one node are held until an operator picks.
    let sync = Sync::start(&sa, &sb, "manual");
    contest(&sync, &a, &b);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let held: Value = serde_json::from_str(&sync.get("/conflicts")).expect("JSON");
        if held["conflicts"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["path"] == "/contested"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no conflict held: {held}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let resolved = ureq::post(&format!(
        "http://{}/conflicts/resolve?path=/contested&keep=b",
        sync.listen
    ))
    .send_empty()
    .expect("resolved");
    assert_eq!(resolved.status().as_u16(), 200);
    wait_identical(&sa, &sb, "after resolving");
    let value = kazoo(&a, &["/app", "get", "/app/contested"]);
    assert_eq!(String::from_utf8_lossy(&value.stdout).trim(), "from-b");
}
