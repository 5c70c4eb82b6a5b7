//! Shared pieces of the load programs: starting the release aggregator with a fresh data
//! directory and a join token, latency histograms, and reading a process's CPU time and RSS
//! from `/proc`.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use crate::cluster::free_addr;

/// Latencies in microseconds, shared between tasks.
pub type Latencies = Arc<Mutex<Histogram<u64>>>;

/// An empty latency histogram (three significant digits).
pub fn histogram() -> Latencies {
    Arc::new(Mutex::new(Histogram::new(3).expect("histogram")))
}

/// Records one latency.
pub fn record(latencies: &Latencies, elapsed: Duration) {
    if let Ok(mut h) = latencies.lock() {
        let _ = h.record(elapsed.as_micros() as u64);
    }
}

/// The latency at quantile `q`, in milliseconds.
pub fn percentile(latencies: &Latencies, q: f64) -> f64 {
    latencies
        .lock()
        .map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1000.0)
}

/// The user plus system CPU time of `pid`, in clock ticks (100 per second).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    // After the command: state, ppid, ..., utime (12th), stime (13th); some fields (tpgid)
    // are negative, so fields are taken by position.
    let field = |i: usize| {
        rest.split_whitespace()
            .nth(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// The resident memory of `pid`, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// A running aggregator started by a load program; killed on drop.
#[derive(Debug)]
pub struct LoadAggregator {
    pub child: Child,
    pub http: SocketAddr,
    pub quic: SocketAddr,
    /// A join token for simulated agents.
    pub token: String,
    data: std::path::PathBuf,
}

impl LoadAggregator {
    /// Starts `binary` on free loopback ports with an empty `data` directory and `args`, waits
    /// for its health check, and creates a join token. Its logs go to stderr when the
    /// environment variable `STRATA_LOAD_LOGS` is set, at the level `STRATA_LOAD_LOG` says
    /// (default `warn`).
    pub fn start(binary: &Path, data: &Path, args: &[&str]) -> Self {
        let http = free_addr("127.0.0.1", false);
        let quic = free_addr("127.0.0.1", true);
        let _ = std::fs::remove_dir_all(data);
        let child = Command::new(binary)
            .arg("--data-dir")
            .arg(data)
            .args(["--http", &http.to_string(), "--quic", &quic.to_string()])
            .args(args)
            .env(
                "STRATA_LOG",
                std::env::var("STRATA_LOAD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("STRATA_LOAD_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&format!("http://{http}/healthz")).call().is_err() {
            assert!(Instant::now() < deadline, "the aggregator did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        let output = Command::new(binary)
            .arg("--data-dir")
            .arg(data)
            .args(["token", "create"])
            .output()
            .expect("token");
        Self {
            child,
            http,
            quic,
            token: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            data: data.to_owned(),
        }
    }

    /// The aggregator's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LoadAggregator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
