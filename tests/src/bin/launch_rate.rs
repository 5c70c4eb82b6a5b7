//! `launch-rate`: the master end to end. It starts the release aggregator, joins N simulated
//! agents over real QUIC (each with its own certificate and connection, registering as an
//! executor with 32 CPUs and 64 GiB; see `tests::sim_executor`), and subscribes a framework
//! over the v1 scheduler API (`tests::v1_framework`). It measures:
//! - offer latency after REVIVE: the framework declines every offer with a long filter,
//!   then revives; the time from sending REVIVE to the OFFERS event, first offer and the
//!   offers of all N agents, p50/p99 over many rounds;
//! - launch rate: the framework accepts every offer with as many tasks as fit, as offers
//!   come, until it has launched T tasks; tasks per second from the first ACCEPT to the last
//!   TASK_RUNNING, and each task's ACCEPT-to-RUNNING latency p50/p99. Every update is
//!   acknowledged, as a framework must, on the same master during the run;
//! - the aggregator's CPU during the launch.
//!
//! The load program shares the machine with the aggregator, so its own CPU is taken from
//! the master's. Run with `cargo xtask bench` or
//! `target/release/launch-rate --aggregator target/release/strata-aggregator --agents 1000 --tasks 50000`.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tests::{
    load::{LoadAggregator, cpu_ticks, histogram, percentile, record},
    sim_executor::Fleet,
    v1_framework::{CallPool, Event, Offer, Subscription, Update, subscribe},
};

/// Each task's share of an agent: 64 fit on one simulated agent.
const TASK_CPUS: f64 = 0.5;
const TASK_MEM: f64 = 1024.0;
const AGENT_CPUS: f64 = 32.0;
const AGENT_MEM: f64 = 65_536.0;

struct Args {
    aggregator: PathBuf,
    agents: usize,
    tasks: usize,
    revives: usize,
    callers: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        aggregator: PathBuf::from("target/release/strata-aggregator"),
        agents: 1_000,
        tasks: 50_000,
        revives: 100,
        callers: 4,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter.next().unwrap_or_default();
        let number = value.parse().ok();
        match (flag.as_str(), number) {
            ("--aggregator", _) => args.aggregator = PathBuf::from(value),
            ("--agents", Some(n)) => args.agents = n,
            ("--tasks", Some(n)) => args.tasks = n,
            ("--revives", Some(n)) => args.revives = n,
            ("--callers", Some(n)) => args.callers = n,
            (other, _) => {
                eprintln!(
                    "launch-rate: bad flag {other} {value}; flags: --aggregator PATH --agents N --tasks N --revives N --callers N"
                );
                std::process::exit(64);
            }
        }
    }
    if args.tasks as f64 > args.agents as f64 * (AGENT_CPUS / TASK_CPUS) {
        eprintln!(
            "launch-rate: {} agents hold at most {} tasks",
            args.agents,
            args.agents as f64 * AGENT_CPUS / TASK_CPUS
        );
        std::process::exit(64);
    }
    args
}

/// An outstanding offer: its id and how much it holds.
struct Held {
    offer_id: String,
    cpus: f64,
    mem: f64,
}

/// The offers the framework holds, by agent.
#[derive(Default)]
struct Offers(HashMap<String, Held>);

impl Offers {
    fn take(&mut self, offers: Vec<Offer>) {
        for offer in offers {
            let held = Held {
                cpus: offer.scalar("cpus"),
                mem: offer.scalar("mem"),
                offer_id: offer.id.value,
            };
            self.0.insert(offer.agent_id.value, held);
        }
    }

    fn rescind(&mut self, offer_id: &str) {
        self.0.retain(|_, held| held.offer_id != offer_id);
    }

    fn ids(&self) -> Vec<Value> {
        self.0
            .values()
            .map(|h| json!({ "value": h.offer_id }))
            .collect()
    }
}

fn decline_all(subscription: &Subscription, offers: &mut Offers) {
    if offers.0.is_empty() {
        return;
    }
    let decline = json!({
        "type": "DECLINE",
        "decline": { "offer_ids": offers.ids(), "filters": { "refuse_seconds": 3600.0 } },
    });
    if let Err(err) = subscription.caller.call(decline) {
        eprintln!("launch-rate: {err}");
    }
    offers.0.clear();
}

/// The next event; panics at `deadline`, saying what it was `waiting_for`.
fn next_event(
    subscription: &Subscription,
    deadline: Instant,
    waiting_for: impl Fn() -> String,
) -> (Instant, Event) {
    let left = deadline.saturating_duration_since(Instant::now());
    subscription
        .events
        .recv_timeout(left)
        .unwrap_or_else(|_| panic!("launch-rate: no event while waiting for {}", waiting_for()))
}

/// Waits until the framework holds an offer from every agent.
fn gather_offers(
    subscription: &Subscription,
    offers: &mut Offers,
    agents: usize,
    deadline: Instant,
) -> Option<Instant> {
    let mut first = None;
    while offers.0.len() < agents {
        let (at, event) = next_event(subscription, deadline, || {
            format!("offers from {agents} agents (have {})", offers.0.len())
        });
        if let Some(list) = event.offers {
            offers.take(list.offers);
            first.get_or_insert(at);
        } else if let Some(rescind) = event.rescind {
            offers.rescind(&rescind.offer_id.value);
        }
    }
    first
}

/// Declines everything, revives, and times the offers that follow; `rounds` times.
fn revive_rounds(
    subscription: &Subscription,
    offers: &mut Offers,
    agents: usize,
    rounds: usize,
) -> (f64, f64, f64, f64) {
    let (first, all) = (histogram(), histogram());
    for _ in 0..rounds {
        decline_all(subscription, offers);
        let sent = Instant::now();
        if let Err(err) = subscription.caller.call(json!({ "type": "REVIVE" })) {
            panic!("launch-rate: {err}");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let first_at = gather_offers(subscription, offers, agents, deadline);
        record(
            &first,
            first_at.unwrap_or(sent).saturating_duration_since(sent),
        );
        record(&all, sent.elapsed());
    }
    (
        percentile(&first, 0.5),
        percentile(&first, 0.99),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
    )
}

fn task_json(id: &str, agent: &str) -> Value {
    json!({
        "name": "launch-rate",
        "task_id": { "value": id },
        "agent_id": { "value": agent },
        "resources": [
            { "name": "cpus", "type": "SCALAR", "scalar": { "value": TASK_CPUS } },
            { "name": "mem", "type": "SCALAR", "scalar": { "value": TASK_MEM } },
        ],
        "command": { "value": "sleep 3600" },
    })
}

/// The launch phase's bookkeeping.
struct Launch {
    target: usize,
    launched: usize,
    sent_at: Vec<Instant>,
    first_accept: Option<Instant>,
}

impl Launch {
    /// Accepts each held offer with as many tasks as fit (declines what is not needed).
    fn accept_all(&mut self, offers: &mut Offers, pool: &CallPool) {
        for (agent, held) in offers.0.drain() {
            let fit = ((held.cpus / TASK_CPUS + 1e-9).floor())
                .min((held.mem / TASK_MEM + 1e-9).floor()) as usize;
            let count = fit.min(self.target - self.launched);
            let offer_ids = json!([{ "value": held.offer_id }]);
            if count == 0 {
                let filters = json!({ "refuse_seconds": 3600.0 });
                pool.submit(json!({ "type": "DECLINE", "decline": { "offer_ids": offer_ids, "filters": filters } }));
                continue;
            }
            let tasks: Vec<Value> = (self.launched..self.launched + count)
                .map(|n| task_json(&format!("t{n}"), &agent))
                .collect();
            let now = Instant::now();
            self.first_accept.get_or_insert(now);
            self.sent_at.extend(std::iter::repeat_n(now, count));
            self.launched += count;
            pool.submit(json!({
                "type": "ACCEPT",
                "accept": {
                    "offer_ids": offer_ids,
                    "operations": [{ "type": "LAUNCH", "launch": { "task_infos": tasks } }],
                    "filters": { "refuse_seconds": 0.0 },
                },
            }));
        }
    }
}

struct LaunchResult {
    seconds: f64,
    latency_p50: f64,
    latency_p99: f64,
    cpu_percent: f64,
    acks_seconds: f64,
    failed_tasks: usize,
    failed_calls: usize,
}

fn launch(subscription: &Subscription, offers: &mut Offers, args: &Args, pid: u32) -> LaunchResult {
    let accepts = CallPool::new(&subscription.caller, args.callers);
    let acks = CallPool::new(&subscription.caller, args.callers);
    let mut launch = Launch {
        target: args.tasks,
        launched: 0,
        sent_at: Vec::with_capacity(args.tasks),
        first_accept: None,
    };
    let latencies = histogram();
    let (cpu_before, started) = (cpu_ticks(pid), Instant::now());
    launch.accept_all(offers, &accepts);
    let (mut running, mut failed_tasks, mut acks_sent) = (0, 0, 0u64);
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last_running = started;
    while running < args.tasks {
        let (at, event) = next_event(subscription, deadline, || {
            format!("TASK_RUNNING ({running} of {} so far)", args.tasks)
        });
        if let Some(list) = event.offers {
            offers.take(list.offers);
            launch.accept_all(offers, &accepts);
        } else if let Some(rescind) = event.rescind {
            offers.rescind(&rescind.offer_id.value);
        }
        let Some(Update { status }) = event.update else {
            continue;
        };
        if let Some(uuid) = &status.uuid {
            acks_sent += 1;
            acks.submit(json!({
                "type": "ACKNOWLEDGE",
                "acknowledge": {
                    "agent_id": { "value": status.agent_id.as_ref().map_or("", |a| a.value.as_str()) },
                    "task_id": { "value": status.task_id.value },
                    "uuid": uuid,
                },
            }));
        }
        let task = status
            .task_id
            .value
            .strip_prefix('t')
            .and_then(|n| n.parse::<usize>().ok());
        match (status.state.as_str(), task) {
            ("TASK_RUNNING", Some(n)) => {
                running += 1;
                last_running = at;
                if let Some(sent) = launch.sent_at.get(n) {
                    record(&latencies, at.saturating_duration_since(*sent));
                }
            }
            ("TASK_STARTING", _) => {}
            _ => {
                failed_tasks += 1;
                if failed_tasks == 1 {
                    eprintln!("launch-rate: first failed task: {status:?}");
                }
            }
        }
    }
    let seconds = last_running
        .saturating_duration_since(launch.first_accept.unwrap_or(started))
        .as_secs_f64();
    let cpu_percent = (cpu_ticks(pid) - cpu_before) as f64 / started.elapsed().as_secs_f64();
    let ack_deadline = Instant::now() + Duration::from_secs(120);
    while acks.done() < acks_sent && Instant::now() < ack_deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    LaunchResult {
        seconds,
        latency_p50: percentile(&latencies, 0.5),
        latency_p99: percentile(&latencies, 0.99),
        cpu_percent,
        acks_seconds: started.elapsed().as_secs_f64(),
        failed_tasks,
        failed_calls: accepts.failures().len() + acks.failures().len(),
    }
}

fn main() {
    let args = parse_args();
    let data = std::env::temp_dir().join("strata-launch-rate");
    let started = LoadAggregator::start(&args.aggregator, &data, &[]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let framework_info = json!({ "user": "bench", "name": "launch-rate", "roles": ["*"], "capabilities": [{ "type": "MULTI_ROLE" }] });
    let subscription =
        subscribe(started.http, framework_info).unwrap_or_else(|e| panic!("launch-rate: {e}"));
    let joining = Instant::now();
    let fleet = Fleet {
        agents: args.agents,
        cpus: AGENT_CPUS,
        mem_mb: AGENT_MEM,
    };
    let agent_failures = fleet.start(&runtime, started.quic, &started.token, Arc::default());
    let mut offers = Offers::default();
    eprintln!("launch-rate: joining {} simulated agents", args.agents);
    gather_offers(
        &subscription,
        &mut offers,
        args.agents,
        Instant::now() + Duration::from_secs(300),
    );
    eprintln!(
        "launch-rate: offers from all {} agents after {:.1} s; timing {} revives",
        args.agents,
        joining.elapsed().as_secs_f64(),
        args.revives
    );
    let (first_p50, first_p99, all_p50, all_p99) =
        revive_rounds(&subscription, &mut offers, args.agents, args.revives);
    eprintln!("launch-rate: launching {} tasks", args.tasks);
    let result = launch(&subscription, &mut offers, &args, started.pid());
    if let Ok(f) = agent_failures.lock()
        && let Some(first) = f.first()
    {
        eprintln!(
            "launch-rate: {} simulated agents failed, first: {first}",
            f.len()
        );
    }
    println!(
        "master end to end: {} simulated agents over QUIC, one framework over the v1 scheduler API",
        args.agents
    );
    println!(
        "| agents | tasks | launch time | tasks/s | ACCEPT to RUNNING p50 / p99 | offers after REVIVE, first p50 / p99 | all agents offered p50 / p99 | aggregator CPU (% of one core) | all acks done | failed tasks / calls |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.2} s | {:.0} | {:.0} / {:.0} ms | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.0} | {:.1} s | {} / {} |",
        args.agents,
        args.tasks,
        result.seconds,
        args.tasks as f64 / result.seconds.max(1e-9),
        result.latency_p50,
        result.latency_p99,
        first_p50,
        first_p99,
        all_p50,
        all_p99,
        result.cpu_percent,
        result.acks_seconds,
        result.failed_tasks,
        result.failed_calls,
    );
    drop(runtime);
}
