//! `agent-load`: the agent's cost benchmark. For each scenario it starts the release agent,
//! lets it settle, drives a fixed rate of process spawns and loopback TCP connections, and
//! reads the agent's CPU time and memory from `/proc/<pid>`. At the end it reads the agent's
//! snapshot for dropped events and for how many of the spawned processes it saw.
//!
//! Run it through `cargo xtask bench` (as root). Traffic stays on loopback; every scenario is
//! bounded by `--seconds`.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, ExitCode, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

/// Seconds the agent runs before measuring starts (start-up scan, probe attach).
const SETTLE: Duration = Duration::from_secs(3);

struct Args {
    agent: PathBuf,
    seconds: u64,
    rate: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        agent: PathBuf::from("target/release/strata-agent"),
        seconds: 20,
        rate: 1000,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--agent" => args.agent = PathBuf::from(value),
            "--seconds" => args.seconds = value.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--rate" => args.rate = value.parse().map_err(|e| format!("--rate: {e}"))?,
            _ => {
                return Err(format!(
                    "unknown flag {flag}; flags: --agent PATH --seconds N --rate PER_SEC"
                ));
            }
        }
    }
    Ok(args)
}

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    exec: bool,
    connect: bool,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "idle",
        exec: false,
        connect: false,
    },
    Scenario {
        name: "exec",
        exec: true,
        connect: false,
    },
    Scenario {
        name: "exec+connect",
        exec: true,
        connect: true,
    },
];

struct Measured {
    cpu_percent: f64,
    rss_mib: f64,
    peak_rss_mib: f64,
    exec_per_sec: f64,
    conn_per_sec: f64,
    lost: u64,
    spawned_seen: Option<(u64, u64)>,
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("agent-load: {err}");
            return ExitCode::from(64);
        }
    };
    println!(
        "agent cost, {} s per scenario, target rate {} per second",
        args.seconds, args.rate
    );
    println!(
        "| scenario | exec/s | conn/s | agent CPU (% of one core) | RSS MiB | peak RSS MiB | events lost | spawned processes seen |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for scenario in SCENARIOS {
        match run(&args, scenario) {
            Ok(m) => println!(
                "| {} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} | {} | {} |",
                scenario.name,
                m.exec_per_sec,
                m.conn_per_sec,
                m.cpu_percent,
                m.rss_mib,
                m.peak_rss_mib,
                m.lost,
                m.spawned_seen
                    .map_or("-".into(), |(seen, spawned)| format!("{seen}/{spawned}")),
            ),
            Err(err) => {
                eprintln!("agent-load: scenario {}: {err}", scenario.name);
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// CPU time (user + system) of a process in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').ok_or("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or("malformed stat")
    };
    Ok(field(11)? + field(12)?) // utime and stime are fields 14 and 15 of the full line
}

/// A `/proc/<pid>/status` value in KiB.
fn status_kib(pid: u32, key: &str) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or(format!("no {key} in status"))
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn start_agent(args: &Args, output: &PathBuf) -> Result<Child, String> {
    let duration = SETTLE.as_secs() + args.seconds + 2;
    let mut child = Command::new(&args.agent)
        .args(["snapshot", "--duration", &duration.to_string(), "--output"])
        .arg(output)
        .env("STRATA_LOG", "warn,strata_agent=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", args.agent.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.map_err(|e| e.to_string())?;
        if line.contains("observing this node") {
            break;
        }
        eprintln!("[agent] {line}");
    }
    // Keep draining so the agent never blocks on a full pipe.
    thread::spawn(move || {
        lines
            .map_while(Result::ok)
            .for_each(|l| eprintln!("[agent] {l}"))
    });
    Ok(child)
}

fn run(args: &Args, scenario: Scenario) -> Result<Measured, String> {
    let output = std::env::temp_dir().join(format!("agent-load-{}.json", scenario.name));
    let mut agent = start_agent(args, &output)?;
    let pid = agent.id();
    thread::sleep(SETTLE);

    let stop = Arc::new(AtomicBool::new(false));
    let execs = Arc::new(AtomicU64::new(0));
    let conns = Arc::new(AtomicU64::new(0));
    let spawned_pids = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    if scenario.exec {
        let (stop, execs, pids) = (stop.clone(), execs.clone(), spawned_pids.clone());
        let rate = args.rate;
        workers.push(thread::spawn(move || {
            spawn_processes(rate, &stop, &execs, &pids)
        }));
    }
    if scenario.connect {
        let (stop, conns) = (stop.clone(), conns.clone());
        let rate = args.rate;
        workers.push(thread::spawn(move || open_connections(rate, &stop, &conns)));
    }

    let started = Instant::now();
    let cpu_before = cpu_ticks(pid)?;
    thread::sleep(Duration::from_secs(args.seconds));
    let cpu_after = cpu_ticks(pid)?;
    let elapsed = started.elapsed().as_secs_f64();
    let rss = status_kib(pid, "VmRSS:")?;
    let peak = status_kib(pid, "VmHWM:")?;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    let status = agent.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the agent exited with {status}"));
    }
    let snapshot: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&output).map_err(|e| format!("reading the snapshot: {e}"))?,
    )
    .map_err(|e| format!("parsing the snapshot: {e}"))?;
    let _ = std::fs::remove_file(&output);
    let lost = lost_events(&snapshot["dropped"]);
    let spawned_seen = scenario.exec.then(|| {
        let pids = spawned_pids.lock().map(|p| p.clone()).unwrap_or_default();
        let seen: std::collections::HashSet<u64> = snapshot["processes"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["pid"].as_u64()).collect())
            .unwrap_or_default();
        let found = pids.iter().filter(|pid| seen.contains(pid)).count() as u64;
        (found, pids.len() as u64)
    });
    Ok(Measured {
        cpu_percent: 100.0 * (cpu_after - cpu_before) as f64 / ticks_per_second() / elapsed,
        rss_mib: rss as f64 / 1024.0,
        peak_rss_mib: peak as f64 / 1024.0,
        exec_per_sec: execs.load(Ordering::Relaxed) as f64 / elapsed,
        conn_per_sec: conns.load(Ordering::Relaxed) as f64 / elapsed,
        lost,
        spawned_seen,
    })
}

/// Sum of every drop counter in the snapshot's `dropped` object (conntrack overruns aside,
/// which a re-dump repairs).
fn lost_events(dropped: &serde_json::Value) -> u64 {
    fn sum(value: &serde_json::Value) -> u64 {
        match value {
            serde_json::Value::Number(n) => n.as_u64().unwrap_or(0),
            serde_json::Value::Object(map) => map
                .iter()
                .filter(|(k, _)| *k != "conntrack_overruns")
                .map(|(_, v)| sum(v))
                .sum(),
            _ => 0,
        }
    }
    sum(dropped)
}

/// Paces work at `rate` per second: calls `work` whenever it is due, sleeping otherwise.
fn paced(rate: u64, stop: &AtomicBool, mut work: impl FnMut()) {
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            thread::sleep(next - now);
            continue;
        }
        work();
        next += interval;
    }
}

fn spawn_processes(
    rate: u64,
    stop: &AtomicBool,
    count: &AtomicU64,
    pids: &std::sync::Mutex<Vec<u64>>,
) {
    let mut running: Vec<Child> = Vec::new();
    paced(rate, stop, || {
        if let Ok(child) = Command::new("/bin/true").stdin(Stdio::null()).spawn() {
            if let Ok(mut pids) = pids.lock() {
                pids.push(u64::from(child.id()));
            }
            running.push(child);
            count.fetch_add(1, Ordering::Relaxed);
        }
        if running.len() >= 64 {
            running.drain(..).for_each(|mut c| drop(c.wait()));
        }
    });
    running.drain(..).for_each(|mut c| drop(c.wait()));
}

fn open_connections(rate: u64, stop: &AtomicBool, count: &AtomicU64) {
    let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
        return;
    };
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 64];
            if stream.read_exact(&mut buf).is_ok() {
                let _ = stream.write_all(&buf);
            }
        }
    });
    paced(rate, stop, || {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let mut buf = [7u8; 64];
            if stream.write_all(&buf).is_ok() && stream.read_exact(&mut buf).is_ok() {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
}
