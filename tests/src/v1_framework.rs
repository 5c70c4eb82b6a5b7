//! A minimal Mesos v1 framework in Rust for the load programs: it subscribes over
//! `POST /api/v1/scheduler`, reads the RecordIO event stream on a thread of its own (each
//! event stamped with the instant it arrived), and makes calls with the stream id on a
//! pool of keep-alive connections. Tests use the real pymesos instead
//! ([`crate::framework`]); this one exists to go as fast as the master lets it.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use serde::Deserialize;
use serde_json::{Value, json};

/// An event of the scheduler API, with the fields the load programs read (the rest of
/// Mesos's event is skipped while parsing).
#[derive(Debug, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub subscribed: Option<Subscribed>,
    pub offers: Option<OfferList>,
    pub rescind: Option<Rescind>,
    pub update: Option<Update>,
}

/// A Mesos `*ID`.
#[derive(Debug, Deserialize)]
pub struct Id {
    pub value: String,
}

#[derive(Debug, Deserialize)]
pub struct Subscribed {
    pub framework_id: Id,
}

#[derive(Debug, Deserialize)]
pub struct OfferList {
    pub offers: Vec<Offer>,
}

#[derive(Debug, Deserialize)]
pub struct Offer {
    pub id: Id,
    pub agent_id: Id,
    #[serde(default)]
    pub resources: Vec<Resource>,
}

impl Offer {
    /// The offer's amount of scalar `name` (`cpus`, `mem`), over all its pools.
    pub fn scalar(&self, name: &str) -> f64 {
        self.resources
            .iter()
            .filter(|r| r.name == name)
            .filter_map(|r| r.scalar.as_ref())
            .map(|s| s.value)
            .sum()
    }
}

#[derive(Debug, Deserialize)]
pub struct Resource {
    pub name: String,
    pub scalar: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
pub struct Scalar {
    pub value: f64,
}

#[derive(Debug, Deserialize)]
pub struct Rescind {
    pub offer_id: Id,
}

#[derive(Debug, Deserialize)]
pub struct Update {
    pub status: Status,
}

/// A `TaskStatus`.
#[derive(Debug, Deserialize)]
pub struct Status {
    pub task_id: Id,
    pub agent_id: Option<Id>,
    pub state: String,
    /// Present on updates that need an acknowledgement.
    pub uuid: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// A subscribed framework.
#[derive(Debug)]
pub struct Subscription {
    pub framework_id: String,
    /// Events after SUBSCRIBED, with the instant each arrived.
    pub events: mpsc::Receiver<(Instant, Event)>,
    pub caller: Caller,
}

/// Makes calls for one subscription.
#[derive(Debug, Clone)]
pub struct Caller {
    agent: ureq::Agent,
    url: String,
    stream_id: String,
    framework_id: String,
}

impl Caller {
    /// Sends `call` (its `framework_id` is filled in); Ok on 202.
    pub fn call(&self, mut call: Value) -> Result<(), String> {
        call["framework_id"] = json!({ "value": self.framework_id });
        self.agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Mesos-Stream-Id", &self.stream_id)
            .send(call.to_string())
            .map_err(|e| format!("{} call: {e}", call["type"]))
            .and_then(|response| match response.status().as_u16() {
                202 => Ok(()),
                status => Err(format!("{} call answered {status}", call["type"])),
            })
    }
}

/// Reads one RecordIO record: `<length>\n<bytes>`. None at the end of the stream.
fn read_record(reader: &mut impl BufRead) -> Option<Event> {
    let mut length = String::new();
    if reader.read_line(&mut length).ok()? == 0 {
        return None;
    }
    let mut record = vec![0; length.trim().parse().ok()?];
    reader.read_exact(&mut record).ok()?;
    serde_json::from_slice(&record).ok()
}

/// Subscribes to the master at `http` with `framework_info` and starts reading events.
pub fn subscribe(http: SocketAddr, framework_info: Value) -> Result<Subscription, String> {
    let url = format!("http://{http}/api/v1/scheduler");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_idle_connections_per_host(64)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let subscribe =
        json!({ "type": "SUBSCRIBE", "subscribe": { "framework_info": framework_info } });
    // The event stream lives as long as the framework: no timeout on it.
    let response = ureq::Agent::config_builder()
        .build()
        .new_agent()
        .post(&url)
        .header("Content-Type", "application/json")
        .send(subscribe.to_string())
        .map_err(|e| format!("SUBSCRIBE: {e}"))?;
    let stream_id = response
        .headers()
        .get("Mesos-Stream-Id")
        .and_then(|v| v.to_str().ok())
        .ok_or("SUBSCRIBE answer without Mesos-Stream-Id")?
        .to_owned();
    let mut reader = BufReader::with_capacity(
        1 << 20,
        response
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .reader(),
    );
    let subscribed = read_record(&mut reader).ok_or("the event stream ended before SUBSCRIBED")?;
    let framework_id = subscribed
        .subscribed
        .ok_or_else(|| format!("expected SUBSCRIBED, got {}", subscribed.kind))?
        .framework_id
        .value;
    let (tx, events) = mpsc::channel();
    std::thread::spawn(move || {
        while let Some(event) = read_record(&mut reader) {
            if tx.send((Instant::now(), event)).is_err() {
                return;
            }
        }
    });
    Ok(Subscription {
        caller: Caller {
            agent,
            url,
            stream_id,
            framework_id: framework_id.clone(),
        },
        framework_id,
        events,
    })
}

/// A pool of threads making calls in parallel, each on its own keep-alive connection.
#[derive(Debug)]
pub struct CallPool {
    jobs: mpsc::Sender<Value>,
    failures: Arc<Mutex<Vec<String>>>,
    done: Arc<Mutex<u64>>,
}

impl CallPool {
    /// Starts `threads` callers.
    pub fn new(caller: &Caller, threads: usize) -> Self {
        let (jobs, receiver) = mpsc::channel::<Value>();
        let receiver = Arc::new(Mutex::new(receiver));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(Mutex::new(0));
        for _ in 0..threads {
            let (caller, receiver, failures, done) = (
                caller.clone(),
                receiver.clone(),
                failures.clone(),
                done.clone(),
            );
            std::thread::spawn(move || {
                loop {
                    let job = match receiver.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(call) = job else { return };
                    if let Err(err) = caller.call(call)
                        && let Ok(mut f) = failures.lock()
                    {
                        f.push(err);
                    }
                    if let Ok(mut d) = done.lock() {
                        *d += 1;
                    }
                }
            });
        }
        Self {
            jobs,
            failures,
            done,
        }
    }

    /// Queues a call.
    pub fn submit(&self, call: Value) {
        let _ = self.jobs.send(call);
    }

    /// Calls answered so far (successful or not).
    pub fn done(&self) -> u64 {
        self.done.lock().map_or(0, |d| *d)
    }

    /// The failed calls' errors.
    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }
}
