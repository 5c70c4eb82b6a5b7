//! `aggregator-load`: the aggregator under N agents. It starts the release aggregator, joins N
//! simulated agents over real QUIC (each its own client certificate and connection), and has
//! each send one report per second (full first, then deltas of a small synthetic host; 10,000
//! containers in all). It measures, over the steady window:
//! - the aggregator's CPU (percent of one core) and RSS, from `/proc/<pid>`;
//! - report latency, send to acknowledgement (decode, verify and merge included), p50/p99;
//! - `GET /api/topology/containers` latency p50/p99 while ingest goes on;
//! - WebSocket diff delay: from sending a report that adds a container to the diff that
//!   announces it, p50/max.
//!
//! Run with `cargo xtask bench` or
//! `target/release/aggregator-load --aggregator target/release/strata-aggregator --agents 1000,5000`.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use agent::report::delta::Differ;
use futures_util::{StreamExt as _, stream};
use proto::{
    control::Control,
    frame::{MAX_CONTROL_FRAME, read_frame},
    model::Container,
    token::JoinToken,
};
use quinn::Endpoint;
use rand::{SeedableRng as _, rngs::StdRng};
use tests::{
    load::{Latencies, LoadAggregator, cpu_ticks, histogram, percentile, record, rss_mib},
    sim_executor::{Joined, join},
    synthetic::{self, Shape},
};

/// Containers across all simulated agents.
const TOTAL_CONTAINERS: usize = 10_000;
const QUERIES: usize = 200;

struct Args {
    aggregator: PathBuf,
    agents: Vec<usize>,
    seconds: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        aggregator: PathBuf::from("target/release/strata-aggregator"),
        agents: vec![1_000, 5_000],
        seconds: 20,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter.next().unwrap_or_default();
        match flag.as_str() {
            "--aggregator" => args.aggregator = PathBuf::from(value),
            "--agents" => args.agents = value.split(',').filter_map(|n| n.parse().ok()).collect(),
            "--seconds" => args.seconds = value.parse().unwrap_or(args.seconds),
            other => {
                eprintln!(
                    "aggregator-load: unknown flag {other}; flags: --aggregator PATH --agents N[,N..] --seconds S"
                );
                std::process::exit(64);
            }
        }
    }
    args
}

/// One simulated agent.
struct Sim {
    endpoint: Endpoint,
    quic: SocketAddr,
    token: JoinToken,
    index: u32,
    agents: u32,
    shape: Shape,
    until: Instant,
    latencies: Latencies,
    /// When set, the agent adds a probe container every other second and notes when.
    probes: Option<Arc<Mutex<HashMap<String, Instant>>>>,
}

/// Joins, connects, and reports every second until `until`.
async fn simulate(sim: Sim) -> Result<(), String> {
    let Sim {
        endpoint,
        quic,
        token,
        index,
        agents,
        shape,
        until,
        latencies,
        probes,
    } = sim;
    let Joined {
        agent_id,
        connection,
        control: (_control, mut answers),
    } = join(&endpoint, quic, &token, &format!("sim-{index}")).await?;
    let sent_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let acks = sent_at.clone();
    let recorder = latencies.clone();
    tokio::spawn(async move {
        while let Ok(Some(frame)) = read_frame(&mut answers, MAX_CONTROL_FRAME).await {
            if let Ok(Control::Ack { sequence }) =
                Control::decode(&frame, &proto::Limits::default())
                && let Some(at) = acks.lock().ok().and_then(|mut s| s.remove(&sequence))
            {
                record(&recorder, at.elapsed());
            }
        }
    });
    let mut content = synthetic::host(&agent_id, index, agents, shape, 3);
    let mut differ = Differ::new(120);
    let mut rng = StdRng::seed_from_u64(u64::from(index));
    // Spread the agents over the second.
    tokio::time::sleep(Duration::from_millis(
        u64::from(index) * 1000 / u64::from(agents.max(1)),
    ))
    .await;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut second = 0;
    while Instant::now() < until {
        ticker.tick().await;
        second += 1;
        synthetic::churn(&mut content, second, agents, shape, &mut rng);
        let mut probe = None;
        if let Some(probes) = &probes
            && second % 2 == 0
        {
            let id = format!("probe-{index}-{second}");
            content.containers.push(Container {
                id: id.clone(),
                name: id.clone(),
                image: "probe".into(),
                ..Container::default()
            });
            probe = Some((probes.clone(), id));
        }
        let report = differ.next(content.clone());
        let bytes = proto::compress::seal(&report);
        if let Ok(mut s) = sent_at.lock() {
            s.insert(report.sequence, Instant::now());
        }
        if let Some((probes, id)) = probe
            && let Ok(mut p) = probes.lock()
        {
            p.insert(id, Instant::now());
        }
        let mut stream = connection.open_uni().await.map_err(|e| e.to_string())?;
        stream.write_all(&bytes).await.map_err(|e| e.to_string())?;
        let _ = stream.finish();
    }
    connection.close(0u32.into(), b"done");
    Ok(())
}

/// Watches the containers view; records when each probe container was announced.
fn watch_probes(http: SocketAddr, seen: Arc<Mutex<HashMap<String, Instant>>>, until: Instant) {
    std::thread::spawn(move || {
        let Ok((mut socket, _)) =
            tungstenite::connect(format!("ws://{http}/api/topology/containers/ws"))
        else {
            return;
        };
        while Instant::now() < until {
            let Ok(message) = socket.read() else { return };
            let Ok(text) = message.to_text() else {
                continue;
            };
            let Ok(diff) = serde_json::from_str::<serde_json::Value>(text) else {
                continue;
            };
            let now = Instant::now();
            for node in diff["add"].as_array().into_iter().flatten() {
                if let Some(id) = node["id"].as_str().filter(|id| id.starts_with("probe-"))
                    && let Ok(mut s) = seen.lock()
                {
                    s.insert(id.to_owned(), now);
                }
            }
        }
    });
}

fn run(args: &Args, agents: usize) {
    let data = std::env::temp_dir().join(format!("strata-aggregator-load-{agents}"));
    let started = LoadAggregator::start(&args.aggregator, &data, &[]);
    let pid = started.pid();
    let token: JoinToken = started.token.parse().expect("token");
    let shape = Shape {
        containers: TOTAL_CONTAINERS / agents,
        processes: 20,
        connections: 20,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let latencies = histogram();
    let sent_probes: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen_probes: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let join_started = Instant::now();
    let settle = Duration::from_secs(5) + Duration::from_millis(agents as u64 * 4);
    let until =
        Instant::now() + settle + Duration::from_secs(args.seconds) + Duration::from_secs(2);
    let endpoints: Vec<Endpoint> = (0..8)
        .map(|_| {
            runtime.block_on(async {
                Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint")
            })
        })
        .collect();
    let failures = Arc::new(Mutex::new(Vec::new()));
    {
        let (latencies, failures, probes) =
            (latencies.clone(), failures.clone(), sent_probes.clone());
        let quic = started.quic;
        let endpoints = endpoints.clone();
        runtime.spawn(async move {
            stream::iter(0..agents)
                .for_each_concurrent(Some(agents), |i| {
                    let endpoint = endpoints[i % endpoints.len()].clone();
                    let (token, latencies, failures) =
                        (token.clone(), latencies.clone(), failures.clone());
                    let probes = (i == 0).then(|| probes.clone());
                    async move {
                        // Join in waves so enrollment does not time out handshakes.
                        tokio::time::sleep(Duration::from_millis(i as u64 * 4)).await;
                        let sim = Sim {
                            endpoint,
                            quic,
                            token,
                            index: i as u32,
                            agents: agents as u32,
                            shape,
                            until,
                            latencies,
                            probes,
                        };
                        let result = simulate(sim).await;
                        if let Err(err) = result
                            && let Ok(mut f) = failures.lock()
                        {
                            f.push(err);
                        }
                    }
                })
                .await;
        });
    }
    std::thread::sleep(settle);
    let connected = ureq::get(&format!("http://{}/api/agents", started.http))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
        .and_then(|v| {
            v["agents"]
                .as_array()
                .map(|a| a.iter().filter(|a| a["connected"] == true).count())
        })
        .unwrap_or(0);
    if let Ok(mut h) = latencies.lock() {
        h.reset(); // measure the steady window only
    }
    if let Ok(mut sent) = sent_probes.lock() {
        sent.clear(); // only probes sent while the WebSocket watches count
    }
    watch_probes(started.http, seen_probes.clone(), until);
    let (cpu_before, window_start) = (cpu_ticks(pid), Instant::now());
    let queries = histogram();
    let query_deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut containers_seen = 0;
    let url = format!("http://{}/api/topology/containers", started.http);
    for _ in 0..QUERIES {
        if Instant::now() >= query_deadline {
            break;
        }
        let at = Instant::now();
        if let Ok(mut response) = ureq::get(&url).call()
            && let Ok(body) = response
                .body_mut()
                .with_config()
                .limit(1 << 30)
                .read_to_vec()
        {
            // Time to the last byte; parsing the answer is the client's business.
            record(&queries, at.elapsed());
            containers_seen = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["nodes"].as_array().map(Vec::len))
                .unwrap_or(0);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(query_deadline.saturating_duration_since(Instant::now()));
    let elapsed = window_start.elapsed().as_secs_f64();
    let cpu = 100.0 * (cpu_ticks(pid) - cpu_before) as f64 / 100.0 / elapsed;
    let rss = rss_mib(pid);
    let delays = histogram();
    if let (Ok(sent), Ok(seen)) = (sent_probes.lock(), seen_probes.lock()) {
        for (id, at) in seen.iter() {
            if let Some(sent) = sent.get(id) {
                record(&delays, at.saturating_duration_since(*sent));
            }
        }
    }
    let failed = failures.lock().map_or(0, |f| f.len());
    if let Ok(f) = failures.lock()
        && let Some(first) = f.first()
    {
        eprintln!(
            "aggregator-load: {} simulated agents failed, first: {first}",
            f.len()
        );
    }
    println!(
        "| {agents} | {connected} | {:.0} s | {:.1} | {:.0} | {:.2} / {:.2} ms | {containers_seen} | {:.1} / {:.1} ms | {:.0} / {:.0} ms ({} samples) | {failed} |",
        join_started.elapsed().as_secs_f64() - elapsed,
        cpu,
        rss,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&queries, 0.5),
        percentile(&queries, 0.99),
        percentile(&delays, 0.5),
        percentile(&delays, 1.0),
        delays.lock().map_or(0, |d| d.len()),
    );
    drop(runtime);
}

fn main() {
    let args = parse_args();
    println!(
        "aggregator under simulated agents: one report per second each, {TOTAL_CONTAINERS} containers in all, {} s measured",
        args.seconds
    );
    println!(
        "| agents | connected | join time | aggregator CPU (% of one core) | RSS MiB | report ack p50 / p99 | containers in view | GET containers p50 / p99 | WebSocket diff delay p50 / max | failed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &agents in &args.agents {
        run(&args, agents);
    }
}
