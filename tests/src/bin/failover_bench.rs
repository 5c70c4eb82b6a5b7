//! `failover-bench`: how long a highly available set is without a leader, on real ZooKeeper
//! servers (Debian's zookeeper, started here) and release aggregators holding `--apps` apps
//! of state:
//! - failover: the leader of three aggregators on a three-node ensemble is SIGKILLed; the
//!   time until a standby serves `GET /v2/apps` with every app, as the leader, for each
//!   `--session-timeouts` value (the bound is the session timeout: the dead leader's znode
//!   outlives it by that much), `--rounds` times each;
//! - hand-over: the set on one standalone server is moved to another by the migration's
//!   phase 3 (and back by its rollback): the time from the request until the new leader
//!   serves every app.
//!
//! Run with `cargo xtask bench` or
//! `target/release/failover-bench --aggregator target/release/strata-aggregator`.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tests::{
    cluster::{leads, no_redirects},
    load::LoadAggregator,
    zk::{Ensemble, ZkServer},
};

struct Args {
    aggregator: PathBuf,
    apps: usize,
    rounds: usize,
    session_timeouts: Vec<u64>,
}

fn parse_args() -> Args {
    let mut args = Args {
        aggregator: PathBuf::from("target/release/strata-aggregator"),
        apps: 1000,
        rounds: 5,
        session_timeouts: vec![2, 5],
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter.next().unwrap_or_default();
        match flag.as_str() {
            "--aggregator" => args.aggregator = PathBuf::from(value),
            "--apps" => args.apps = value.parse().unwrap_or(args.apps),
            "--rounds" => args.rounds = value.parse().unwrap_or(args.rounds),
            "--session-timeouts" => {
                args.session_timeouts = value.split(',').filter_map(|n| n.parse().ok()).collect();
            }
            other => {
                eprintln!(
                    "failover-bench: bad flag {other}; flags: --aggregator PATH --apps N --rounds N --session-timeouts S,S"
                );
                std::process::exit(64);
            }
        }
    }
    args
}

/// Whether the aggregator at `http` serves all `apps` itself.
fn serves(http: &std::net::SocketAddr, apps: usize) -> bool {
    let Ok(mut answer) = no_redirects().get(&format!("http://{http}/v2/apps")).call() else {
        return false;
    };
    answer.status() == 200
        && answer
            .body_mut()
            .read_json::<Value>()
            .is_ok_and(|v| v["apps"].as_array().is_some_and(|a| a.len() == apps))
}

/// Whether the aggregator at `http` leads on the ZooKeeper cluster `at`.
fn masters_at(http: &std::net::SocketAddr, at: &str) -> bool {
    let url = format!("http://{http}/api/v1/migration/status");
    no_redirects()
        .get(&url)
        .call()
        .ok()
        .and_then(|mut a| a.body_mut().read_json::<Value>().ok())
        .is_some_and(|s| s["home"] == at)
}

/// Waits until one of `set` leads and serves every app; its index and the time taken.
fn wait_served(set: &[Option<LoadAggregator>], apps: usize, since: Instant) -> (usize, Duration) {
    wait_served_at(set, apps, since, None)
}

/// As [`wait_served`], from a leader on the ZooKeeper cluster `at` if given.
fn wait_served_at(
    set: &[Option<LoadAggregator>],
    apps: usize,
    since: Instant,
    at: Option<&str>,
) -> (usize, Duration) {
    loop {
        for (i, aggregator) in set.iter().enumerate() {
            if let Some(a) = aggregator
                && leads(a.http)
                && at.is_none_or(|at| masters_at(&a.http, at))
                && serves(&a.http, apps)
            {
                return (i, since.elapsed());
            }
        }
        assert!(
            since.elapsed() < Duration::from_secs(120),
            "no leader within 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn create_apps(http: &std::net::SocketAddr, apps: usize) {
    for n in 0..apps {
        let app = json!({"id": format!("/bench/app-{n}"), "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 0});
        let status = no_redirects()
            .post(&format!("http://{http}/v2/apps"))
            .send_json(app)
            .map_or(0, |r| r.status().as_u16());
        assert_eq!(status, 201, "creating app {n}");
    }
}

fn start(binary: &Path, dir: &Path, name: &str, url: &str, timeout: u64) -> LoadAggregator {
    LoadAggregator::start(
        binary,
        &dir.join(name),
        &[
            "--zk",
            url,
            "--zk-session-timeout-secs",
            &timeout.to_string(),
        ],
    )
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:.0} ms, min {:.0} ms, max {:.0} ms over {} rounds",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        times.len()
    )
}

fn failover(args: &Args, dir: &Path, timeout: u64) {
    let ensemble = Ensemble::start(&dir.join(format!("ensemble-{timeout}")), 3);
    let url = format!("zk://{}/strata", ensemble.connect_string());
    let mut set: Vec<Option<LoadAggregator>> = (0..3)
        .map(|i| {
            Some(start(
                &args.aggregator,
                dir,
                &format!("a{timeout}-{i}"),
                &url,
                timeout,
            ))
        })
        .collect();
    let (leader, _) = wait_served(&set, 0, Instant::now());
    create_apps(&set[leader].as_ref().expect("alive").http, args.apps);
    let mut times = Vec::new();
    for round in 0..args.rounds {
        let (leader, _) = wait_served(&set, args.apps, Instant::now());
        // Standbys know the leader before it dies.
        std::thread::sleep(Duration::from_secs(1));
        let killed = Instant::now();
        set[leader] = None; // SIGKILL on drop
        let (successor, took) = wait_served(&set, args.apps, killed);
        eprintln!(
            "  session timeout {timeout} s, round {round}: aggregator {successor} serves {} apps {:.0} ms after the leader was killed",
            args.apps,
            took.as_secs_f64() * 1000.0
        );
        times.push(took);
        set[leader] = Some(start(
            &args.aggregator,
            dir,
            &format!("a{timeout}-{leader}-{round}"),
            &url,
            timeout,
        ));
    }
    println!(
        "failover, session timeout {timeout} s, {} apps of state: a standby serves {}",
        args.apps,
        summary(&mut times)
    );
}

fn phase(http: &std::net::SocketAddr, id: u8, action: &str, body: Value) -> Value {
    let mut answer = no_redirects()
        .post(&format!(
            "http://{http}/api/v1/migration/phases/{id}/{action}"
        ))
        .send_json(body)
        .expect("the leader answers");
    let status = answer.status().as_u16();
    let location = answer
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = answer.body_mut().read_json().unwrap_or_default();
    assert_eq!(
        status, 200,
        "phase {id} {action} at {http}: {body} {location}"
    );
    body
}

fn hand_over(args: &Args, dir: &Path) {
    let source = ZkServer::standalone(&dir.join("zk-source"));
    let target = ZkServer::standalone(&dir.join("zk-target"));
    let from = format!("zk://{}/strata", source.address());
    let to = format!("zk://{}/strata", target.address());
    let set: Vec<Option<LoadAggregator>> = (0..2)
        .map(|i| Some(start(&args.aggregator, dir, &format!("h-{i}"), &from, 5)))
        .collect();
    let (leader, _) = wait_served(&set, 0, Instant::now());
    let http = set[leader].as_ref().expect("alive").http;
    create_apps(&http, args.apps);
    phase(&http, 1, "start", json!({"target": to}));
    phase(&http, 1, "validate", json!({}));
    phase(&http, 2, "start", json!({}));
    phase(&http, 2, "validate", json!({}));
    let mut there = Vec::new();
    let mut back = Vec::new();
    for _ in 0..args.rounds {
        let (leader, _) = wait_served_at(&set, args.apps, Instant::now(), Some(&from));
        let asked = Instant::now();
        phase(
            &set[leader].as_ref().expect("alive").http,
            3,
            "start",
            json!({}),
        );
        let (leader, took) = wait_served_at(&set, args.apps, asked, Some(&to));
        there.push(took);
        std::thread::sleep(Duration::from_secs(1));
        let asked = Instant::now();
        phase(
            &set[leader].as_ref().expect("alive").http,
            3,
            "rollback",
            json!({}),
        );
        let (_, took) = wait_served_at(&set, args.apps, asked, Some(&from));
        back.push(took);
        eprintln!(
            "  hand-over to the target, then back: {:.0} ms, {:.0} ms",
            there.last().expect("one").as_secs_f64() * 1000.0,
            took.as_secs_f64() * 1000.0
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    println!(
        "migration hand-over (phase 3), {} apps of state: the new leader serves {}; rolled back: {}",
        args.apps,
        summary(&mut there),
        summary(&mut back)
    );
}

fn main() {
    let args = parse_args();
    let dir = std::env::temp_dir().join(format!("strata-failover-bench-{}", std::process::id()));
    for &timeout in &args.session_timeouts {
        failover(&args, &dir, timeout);
    }
    hand_over(&args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}
