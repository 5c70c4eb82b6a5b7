//! `apps-scale`: the app service at scale. It starts the release aggregator and joins N
//! simulated agents over QUIC (each 32 cpus, 64 GiB; see `tests::sim_executor`), then
//! through the Marathon API:
//! - scales one app from 0 to T instances: the time until all are running, and the most
//!   instances ever alive at once, counted by the simulated agents themselves (launches
//!   minus kills), which must never exceed T;
//! - rolls a new command out over U instances, with Marathon's default strategy
//!   (`minimumHealthCapacity` 1, `maximumOverCapacity` 1) and a tight one (0.9, 0.1): the
//!   time until the deployment is done, and the fewest running and most alive instances
//!   seen during it (sampled every 20 ms) beside the bounds the strategy sets.
//!
//! Run with `cargo xtask bench` or
//! `target/release/apps-scale --aggregator target/release/strata-aggregator --agents 1000 --instances 10000 --upgrade 1000`.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tests::{
    load::{LoadAggregator, cpu_ticks},
    sim_executor::{Fleet, Tally},
};

struct Args {
    aggregator: PathBuf,
    agents: usize,
    instances: u64,
    upgrade: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        aggregator: PathBuf::from("target/release/strata-aggregator"),
        agents: 1_000,
        instances: 10_000,
        upgrade: 1_000,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter.next().unwrap_or_default();
        match (flag.as_str(), value.parse::<u64>().ok()) {
            ("--aggregator", _) => args.aggregator = PathBuf::from(value),
            ("--agents", Some(n)) => args.agents = n as usize,
            ("--instances", Some(n)) => args.instances = n,
            ("--upgrade", Some(n)) => args.upgrade = n,
            (other, _) => {
                eprintln!(
                    "apps-scale: bad flag {other} {value}; flags: --aggregator PATH --agents N --instances N --upgrade N"
                );
                std::process::exit(64);
            }
        }
    }
    args
}

struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let response = match (method, body) {
            ("POST", Some(body)) => self.agent.post(&url).send_json(body),
            ("PUT", Some(body)) => self.agent.put(&url).send_json(body),
            ("DELETE", _) => self.agent.delete(&url).call(),
            _ => self.agent.get(&url).call(),
        };
        response
            .unwrap_or_else(|e| panic!("apps-scale: {method} {path}: {e}"))
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_json()
            .unwrap_or(Value::Null)
    }

    /// The app's counts, without its tasks.
    fn counts(&self, id: &str) -> (u64, u64) {
        let apps = self.send("GET", &format!("/v2/apps?id={id}"), None);
        let app = &apps["apps"][0];
        (
            app["tasksRunning"].as_u64().unwrap_or(0),
            app["tasksStaged"].as_u64().unwrap_or(0),
        )
    }

    /// Deletes `id` (forced) and waits until the app and its instances are gone.
    fn delete(&self, id: &str, tally: &Tally) {
        self.send("DELETE", &format!("/v2/apps{id}?force=true"), None);
        let deadline = Instant::now() + Duration::from_secs(120);
        // A deleted app is gone from the listings at once but exists until its stop
        // deployment ends.
        while tally.live() > 0 || self.deployments() > 0 {
            assert!(
                Instant::now() < deadline,
                "apps-scale: {id} was not deleted"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn deployments(&self) -> usize {
        self.send("GET", "/v2/deployments", None)
            .as_array()
            .map_or(0, Vec::len)
    }
}

fn app(id: &str, cmd: &str, instances: u64) -> Value {
    json!({ "id": id, "cmd": cmd, "instances": instances, "cpus": 0.1, "mem": 32 })
}

/// What one rolling upgrade took.
struct Rolled {
    seconds: f64,
    /// Fewest running instances of the app seen during it (sampled every 20 ms).
    fewest: u64,
    /// Most instances alive on the agents at once (sampled likewise).
    most: i64,
}

/// Creates `/roll` with `instances` and the strategy, waits for it, rolls a new command out,
/// and deletes it again.
fn roll(api: &Api, tally: &Tally, instances: u64, health: f64, over: f64) -> Rolled {
    let mut definition = app("/roll", "sleep 3600", instances);
    definition["upgradeStrategy"] =
        json!({ "minimumHealthCapacity": health, "maximumOverCapacity": over });
    api.send("POST", "/v2/apps", Some(definition));
    while api.counts("/roll").0 < instances || api.deployments() > 0 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let rolling = Instant::now();
    api.send("PUT", "/v2/apps/roll", Some(json!({ "cmd": "sleep 3601" })));
    let (mut fewest, mut most) = (u64::MAX, 0);
    let deadline = Instant::now() + Duration::from_secs(300);
    while api.deployments() > 0 {
        fewest = fewest.min(api.counts("/roll").0);
        most = most.max(tally.live());
        assert!(
            Instant::now() < deadline,
            "apps-scale: the upgrade did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = rolling.elapsed().as_secs_f64();
    api.delete("/roll", tally);
    Rolled {
        seconds,
        fewest,
        most,
    }
}

fn main() {
    let args = parse_args();
    let data = std::env::temp_dir().join("strata-apps-scale");
    let started = LoadAggregator::start(&args.aggregator, &data, &[]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let tally = Arc::new(Tally::default());
    let fleet = Fleet {
        agents: args.agents,
        cpus: 32.0,
        mem_mb: 65_536.0,
    };
    let failures = fleet.start(&runtime, started.quic, &started.token, tally.clone());
    let api = Api {
        base: format!("http://{}", started.http),
        agent: ureq::Agent::new_with_defaults(),
    };
    eprintln!("apps-scale: joining {} simulated agents", args.agents);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let state = api.send("GET", "/master/state", None);
        let joined = state["activated_slaves"].as_u64().unwrap_or(0) as usize;
        if joined >= args.agents {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "apps-scale: only {joined} agents joined"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // 0 to T.
    api.send("POST", "/v2/apps", Some(app("/scale", "sleep 3600", 0)));
    let cpu_before = cpu_ticks(started.pid());
    let scaling = Instant::now();
    api.send(
        "PUT",
        "/v2/apps/scale",
        Some(json!({ "instances": args.instances })),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.counts("/scale").0 < args.instances {
        assert!(
            Instant::now() < deadline,
            "apps-scale: scaling stalled at {:?} (running, staged); simulated agents failed: {:?}",
            api.counts("/scale"),
            failures
                .lock()
                .map(|f| f.iter().take(3).cloned().collect::<Vec<_>>())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let scale_seconds = scaling.elapsed().as_secs_f64();
    let scale_cpu = (cpu_ticks(started.pid()) - cpu_before) as f64 / scale_seconds;
    let peak = tally.peak();
    api.delete("/scale", &tally);

    // Rolling upgrades of U instances: Marathon's default strategy, and a tight one.
    let rolls: Vec<(f64, f64, Rolled)> = [(1.0, 1.0), (0.9, 0.1)]
        .into_iter()
        .map(|(health, over)| (health, over, roll(&api, &tally, args.upgrade, health, over)))
        .collect();
    if let Ok(f) = failures.lock()
        && let Some(first) = f.first()
    {
        eprintln!(
            "apps-scale: {} simulated agents failed, first: {first}",
            f.len()
        );
    }
    println!(
        "app service at scale: {} simulated agents over QUIC, Marathon API",
        args.agents
    );
    println!(
        "| agents | scale 0 to N | time to all running | most alive at once | aggregator CPU (% of one core) |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {} | {scale_seconds:.2} s | {peak} | {scale_cpu:.0} |",
        args.agents, args.instances,
    );
    println!(
        "\n| rolling upgrade of | minimumHealthCapacity / maximumOverCapacity | time | fewest running (floor) | most alive (ceiling) |"
    );
    println!("|---|---|---|---|---|");
    for (health, over, rolled) in &rolls {
        let u = args.upgrade as f64;
        println!(
            "| {} | {health} / {over} | {:.2} s | {} ({}) | {} ({}) |",
            args.upgrade,
            rolled.seconds,
            rolled.fewest,
            (u * health).ceil(),
            rolled.most,
            u + (u * over).floor(),
        );
    }
    drop(runtime);
}
