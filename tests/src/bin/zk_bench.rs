//! `zk-bench`: the ZooKeeper sync engine against two real standalone servers (Debian's
//! zookeeper 3.8, started here):
//! - initial copy of trees of N znodes (100 children per parent, 64-byte values): the
//!   engine's rate in znodes per second, beside a straightforward kazoo copier
//!   (`tests/python/kazoo_copy.py`) on the same tree in the same run (it is stopped after
//!   `--kazoo-seconds` and its rate taken over what it copied);
//! - live sync lag at a steady write rate over a 10,000-znode tree: a writer sets one node
//!   after another (each node once per pass) at `--rate` writes per second for `--seconds`;
//!   a watcher on the target timestamps each change; the lag is from the write's start to
//!   its arrival on the target. Beside it, the source server's own write latency in the
//!   same run: the part of the lag that is ZooKeeper's, met once on each server.
//!
//! Run with `cargo xtask bench` or `target/release/zk-bench --sizes 10000,100000`.

use std::{
    collections::HashMap,
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aggregator::zk::{
    self, copy,
    decide::Policy,
    live::{Engine, SyncConfig},
    read::read_tree,
    url::ZkUrl,
};
use tests::{
    load::{histogram, percentile, record},
    zk::ZkServer,
};
use zookeeper_client as zkc;

struct Args {
    sizes: Vec<usize>,
    kazoo_seconds: u64,
    rate: u64,
    seconds: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        sizes: vec![10_000, 100_000],
        kazoo_seconds: 60,
        rate: 1000,
        seconds: 10,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter.next().unwrap_or_default();
        match flag.as_str() {
            "--sizes" => args.sizes = value.split(',').filter_map(|n| n.parse().ok()).collect(),
            "--kazoo-seconds" => args.kazoo_seconds = value.parse().unwrap_or(60),
            "--rate" => args.rate = value.parse().unwrap_or(1000),
            "--seconds" => args.seconds = value.parse().unwrap_or(10),
            other => {
                eprintln!(
                    "zk-bench: bad flag {other}; flags: --sizes N,N --kazoo-seconds S --rate W --seconds S"
                );
                std::process::exit(64);
            }
        }
    }
    args
}

fn python() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
}

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

fn url(server: &ZkServer, path: &str) -> ZkUrl {
    format!("zk://{}{path}", server.address())
        .parse()
        .expect("a zk:// address")
}

/// Fills `root` on `server` with `n` znodes through the engine's own copy (from a tree built
/// in memory), which is faster than any client loop.
async fn fill(server: &ZkServer, root: &str, n: usize) {
    let mut tree = zk::tree::Tree::default();
    let node = zk::tree::Node::open;
    tree.nodes.insert(String::new(), node(b""));
    for i in 0..n {
        let parent = format!("/p{}", i / 100);
        tree.nodes
            .entry(parent.clone())
            .or_insert_with(|| node(b"parent"));
        tree.nodes
            .insert(format!("{parent}/c{}", i % 100), node(&[b'x'; 64]));
    }
    let target = url(server, root);
    let client = zk::connect(&target).await.expect("connect");
    let plan = copy::plan(&tree, &zk::tree::Tree::default(), false);
    copy::apply(&client, &target, &plan).await.expect("fill");
}

async fn copy_rate(a: &ZkServer, b: &ZkServer, n: usize, kazoo_seconds: u64) -> (f64, usize, f64) {
    let root = format!("/copy{n}");
    fill(a, &root, n).await;
    let (from, to) = (url(a, &root), url(b, &root));
    let started = Instant::now();
    let source = zk::connect(&from).await.expect("connect");
    let target = zk::connect(&to).await.expect("connect");
    let (tree_a, tree_b) =
        futures_util::try_join!(read_tree(&source, &from), read_tree(&target, &to))
            .expect("reading");
    let read_seconds = started.elapsed().as_secs_f64();
    let plan = copy::plan(&tree_a, &tree_b, false);
    let report = copy::apply(&target, &to, &plan).await.expect("copy");
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "zk-bench: {n} znodes: read both trees in {read_seconds:.2} s, wrote in {:.2} s",
        report.seconds
    );
    assert!(
        report.errors.is_empty(),
        "copy errors: {:?}",
        &report.errors[..3.min(report.errors.len())]
    );
    let nodes = tree_a.nodes.len();
    // The anchor copies into its own subtree of the target.
    let kazoo_root = format!("/kazoo{n}");
    fill(a, &kazoo_root, n).await;
    let output = Command::new(python())
        .arg(script("kazoo_copy.py"))
        .args([
            a.address(),
            b.address(),
            kazoo_root,
            kazoo_seconds.to_string(),
        ])
        .output()
        .expect("running the kazoo copier (run `cargo xtask setup`)");
    let line = String::from_utf8_lossy(&output.stdout).into_owned();
    let words: Vec<&str> = line.split_whitespace().collect();
    let kazoo_nodes: usize = words.get(1).and_then(|w| w.parse().ok()).unwrap_or(0);
    let kazoo_seconds: f64 = words
        .get(4)
        .and_then(|w| w.parse().ok())
        .unwrap_or(f64::NAN);
    (
        nodes as f64 / seconds,
        kazoo_nodes,
        kazoo_nodes as f64 / kazoo_seconds,
    )
}

/// What the lag phase measured.
struct Lag {
    p50: f64,
    p99: f64,
    /// The source server's own write latency (request to answer, its fsync included): the
    /// floor under the lag, which meets a write on each server.
    write_p50: f64,
    write_p99: f64,
    achieved: f64,
    arrived: u64,
    total: u64,
}

async fn lag(a: &ZkServer, b: &ZkServer, rate: u64, seconds: u64) -> Lag {
    let root = "/live";
    fill(a, root, 10_000).await;
    let config = SyncConfig {
        a: url(a, root),
        b: url(b, root),
        both_ways: false,
        policy: Policy::SourceWins,
        skip: Vec::new(),
        a_wins_first_pass: false,
    };
    let engine = Engine::connect(config).await.expect("engine");
    tokio::spawn(engine.clone().run());
    // The initial copy is the first resync; its echoes settle with one more.
    while engine.metrics.resyncs.get() < 1 || engine.metrics.writes.get() < 10_000 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies = histogram();
    let watcher_client = zkc::Client::connect(&b.address()).await.expect("connect");
    let mut watcher = watcher_client
        .watch(root, zkc::AddWatchMode::PersistentRecursive)
        .await
        .expect("watch");
    let seen = started_at.clone();
    let recorded = latencies.clone();
    let arrived = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = arrived.clone();
    tokio::spawn(async move {
        loop {
            let event = watcher.changed().await;
            if event.event_type == zkc::EventType::NodeDataChanged {
                let start = seen.lock().ok().and_then(|mut s| s.remove(&event.path));
                if let Some(start) = start {
                    record(&recorded, start.elapsed());
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    });
    let writer = zkc::Client::connect(&a.address()).await.expect("connect");
    let total = rate * seconds;
    let every = Duration::from_secs_f64(1.0 / rate as f64);
    let begin = tokio::time::Instant::now();
    let writes = histogram();
    let mut pending = Vec::new();
    for i in 0..total {
        tokio::time::sleep_until(begin + every * i as u32).await;
        let path = format!("{root}/p{}/c{}", (i % 10_000) / 100, i % 100);
        started_at
            .lock()
            .expect("lock")
            .insert(path.clone(), Instant::now());
        let sent = Instant::now();
        let write = writer.set_data(&path, format!("{i:064}").as_bytes(), None);
        let timed = writes.clone();
        // Each write's answer is timed as it comes (a task of its own), not when awaited.
        pending.push(tokio::spawn(async move {
            write.await.expect("a write");
            record(&timed, sent.elapsed());
        }));
        if pending.len() >= 256 {
            for write in pending.drain(..) {
                write.await.expect("a write's task");
            }
        }
    }
    for write in pending {
        write.await.expect("a write's task");
    }
    let achieved = total as f64 / begin.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = arrived.load(std::sync::atomic::Ordering::Relaxed);
    Lag {
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        write_p50: percentile(&writes, 0.5),
        write_p99: percentile(&writes, 0.99),
        achieved,
        arrived: got,
        total,
    }
}

fn main() {
    let args = parse_args();
    let dir = std::env::temp_dir().join("strata-zk-bench");
    let a = ZkServer::standalone(&dir.join("a"));
    let b = ZkServer::standalone(&dir.join("b"));
    // Each phase has its own runtime: dropping it stops everything the phase started (the
    // lag phase's engine and watcher), so no phase runs beside another.
    let phase = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };
    println!("ZooKeeper sync engine: two standalone ZooKeeper 3.8 servers on loopback");
    // The lag first, on servers that hold nothing else yet.
    eprintln!(
        "zk-bench: live sync at {} writes/s for {} s",
        args.rate, args.seconds
    );
    let lag = phase().block_on(lag(&a, &b, args.rate, args.seconds));
    println!(
        "| tree | writes/s (achieved) | lag p50 | lag p99 | source write p50 | source write p99 | changes arrived |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| 10000 | {} ({:.0}) | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} of {} |",
        args.rate,
        lag.achieved,
        lag.p50,
        lag.p99,
        lag.write_p50,
        lag.write_p99,
        lag.arrived,
        lag.total
    );
    println!(
        "\n| znodes | strata copy (znodes/s) | kazoo copier (znodes/s, nodes copied) | speed-up |"
    );
    println!("|---|---|---|---|");
    for n in &args.sizes {
        eprintln!("zk-bench: copying {n} znodes");
        let (ours, kazoo_nodes, kazoo) =
            phase().block_on(copy_rate(&a, &b, *n, args.kazoo_seconds));
        println!(
            "| {n} | {ours:.0} | {kazoo:.0} ({kazoo_nodes}) | {:.1}x |",
            ours / kazoo
        );
    }
}
