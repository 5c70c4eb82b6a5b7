//! Simulated agents for the master's load programs: each joins the aggregator with its own
//! client certificate and QUIC connection, sends hello and registers as an executor with
//! the resources it is given, exactly as the real agent does. Launched tasks are not run:
//! the simulated executor answers each launch at once with TASK_STARTING and TASK_RUNNING
//! (the updates the real agent sends for a task that starts), and each kill with TASK_KILLED,
//! so what is measured is the master, the wire and the framework.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use proto::{
    control::Control,
    exec::{AgentMessage, AttributeValue, MasterMessage, ResourceSpec, StatusUpdate, TaskState},
    frame::{MAX_CONTROL_FRAME, append_frame, read_frame, write_frame},
    token::JoinToken,
};
use quinn::{Connection, Endpoint, RecvStream, SendStream};

/// An agent's QUIC connection after join and hello.
#[derive(Debug)]
pub struct Joined {
    pub agent_id: String,
    pub connection: Connection,
    /// The control stream, both halves.
    pub control: (SendStream, RecvStream),
}

/// Joins the aggregator at `quic` with `token` as simulated agent `name`, connects with the
/// certificate it gets, and says hello on the control stream.
pub async fn join(
    endpoint: &Endpoint,
    quic: SocketAddr,
    token: &JoinToken,
    name: &str,
) -> Result<Joined, String> {
    let server_name = quic.ip().to_string();
    let identity = agent::transport::client::enroll(endpoint, quic, &server_name, token, name)
        .await
        .map_err(|e| agent::error_chain(&e))?;
    let config = agent::transport::tls::report_config(&identity).map_err(|e| e.to_string())?;
    let connection = endpoint
        .connect_with(config, quic, &server_name)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
    let hello = Control::Hello {
        agent_id: identity.agent_id.clone(),
        version: "load".into(),
        discovery: None,
    };
    write_frame(&mut send, &hello.encode())
        .await
        .map_err(|e| e.to_string())?;
    Ok(Joined {
        agent_id: identity.agent_id,
        connection,
        control: (send, recv),
    })
}

/// What one simulated executor offers.
#[derive(Debug, Clone)]
pub struct Offering {
    pub hostname: String,
    pub resources: ResourceSpec,
    pub attributes: BTreeMap<String, AttributeValue>,
}

impl Offering {
    /// `cpus` CPUs, `mem_mb` of memory, 10 GB of disk and ports 31000-32000 on `hostname`.
    pub fn sized(hostname: String, cpus: f64, mem_mb: f64) -> Self {
        let mut resources = ResourceSpec::default();
        resources.scalars.insert("cpus".into(), cpus);
        resources.scalars.insert("mem".into(), mem_mb);
        resources.scalars.insert("disk".into(), 10_240.0);
        resources
            .ranges
            .insert("ports".into(), vec![(31_000, 32_000)]);
        Self {
            hostname,
            resources,
            attributes: BTreeMap::new(),
        }
    }
}

/// What a simulated executor did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExecutorCounts {
    pub launched: u64,
    pub killed: u64,
}

/// Tasks alive across all simulated executors, and the most ever alive at once.
#[derive(Debug, Default)]
pub struct Tally {
    live: std::sync::atomic::AtomicI64,
    peak: std::sync::atomic::AtomicI64,
}

impl Tally {
    fn add(&self, delta: i64) {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.live.fetch_add(delta, SeqCst) + delta;
        self.peak.fetch_max(now, SeqCst);
    }

    /// Tasks alive now.
    pub fn live(&self) -> i64 {
        self.live.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most tasks ever alive at once.
    pub fn peak(&self) -> i64 {
        self.peak.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Sends `messages` in one write.
async fn send(control: &mut SendStream, messages: &[AgentMessage]) -> Result<(), String> {
    let mut out = Vec::new();
    for message in messages {
        let frame = Control::Executor {
            json: message.to_json(),
        }
        .encode();
        append_frame(&mut out, &frame).map_err(|e| e.to_string())?;
    }
    control.write_all(&out).await.map_err(|e| e.to_string())
}

fn update(
    task_id: &str,
    framework_id: &str,
    state: TaskState,
    reason: Option<&str>,
) -> AgentMessage {
    AgentMessage::Status(StatusUpdate {
        task_id: task_id.to_owned(),
        framework_id: framework_id.to_owned(),
        state,
        reason: reason.map(str::to_owned),
        message: None,
        uuid: format!("{:032x}", rand::random::<u128>()),
        timestamp: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        host_ports: Vec::new(),
        healthy: None,
    })
}

/// Registers `offering` on a joined connection and serves the master's messages until
/// `until` or until the connection ends; launches and kills are counted in `tally`.
pub async fn serve(
    joined: Joined,
    offering: Offering,
    tally: std::sync::Arc<Tally>,
    until: Instant,
) -> Result<ExecutorCounts, String> {
    let Joined {
        connection,
        control: (mut control, mut answers),
        ..
    } = joined;
    let register = AgentMessage::Register {
        hostname: offering.hostname,
        resources: offering.resources,
        attributes: offering.attributes,
        tasks: Vec::new(),
    };
    send(&mut control, &[register]).await?;
    let mut counts = ExecutorCounts::default();
    let mut frameworks: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let frame =
            match tokio::time::timeout(left, read_frame(&mut answers, MAX_CONTROL_FRAME)).await {
                Err(_) | Ok(Ok(None)) => break,
                Ok(Ok(Some(frame))) => frame,
                Ok(Err(err)) => return Err(err.to_string()),
            };
        let Ok(Control::Executor { json }) = Control::decode(&frame, &proto::Limits::default())
        else {
            continue;
        };
        match MasterMessage::from_json(&json).map_err(|e| e.to_string())? {
            MasterMessage::Launch(spec) => {
                counts.launched += 1;
                tally.add(1);
                frameworks.insert(spec.task_id.clone(), spec.framework_id.clone());
                let updates = [TaskState::TaskStarting, TaskState::TaskRunning]
                    .map(|state| update(&spec.task_id, &spec.framework_id, state, None));
                send(&mut control, &updates).await?;
            }
            MasterMessage::Kill { task_id, .. } => {
                counts.killed += 1;
                tally.add(-1);
                let framework = frameworks.remove(&task_id).unwrap_or_default();
                let killed = update(&task_id, &framework, TaskState::TaskKilled, None);
                send(&mut control, &[killed]).await?;
            }
            MasterMessage::ShutdownFramework { framework_id } => {
                frameworks.retain(|_, f| *f != framework_id);
            }
            // Simulated tasks have no sandbox to read.
            MasterMessage::Registered { .. }
            | MasterMessage::Acknowledge { .. }
            | MasterMessage::ReadFile { .. } => {}
        }
    }
    connection.close(0u32.into(), b"done");
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(counts)
}

/// Many simulated agents of one size.
#[derive(Debug, Clone, Copy)]
pub struct Fleet {
    pub agents: usize,
    pub cpus: f64,
    pub mem_mb: f64,
}

impl Fleet {
    /// Joins the agents to the aggregator at `quic` with `token` (4 ms apart, so enrollment
    /// does not time out handshakes) and serves them on `runtime` for an hour; returns
    /// their failures as they happen.
    pub fn start(
        self,
        runtime: &tokio::runtime::Runtime,
        quic: SocketAddr,
        token: &str,
        tally: std::sync::Arc<Tally>,
    ) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
        use futures_util::{StreamExt as _, stream};
        let token: JoinToken = token.parse().expect("a join token");
        let failures = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let endpoints: Vec<Endpoint> = (0..8)
            .map(|_| {
                runtime.block_on(async {
                    Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint")
                })
            })
            .collect();
        let until = Instant::now() + Duration::from_secs(3_600);
        let sink = failures.clone();
        runtime.spawn(async move {
            stream::iter(0..self.agents)
                .for_each_concurrent(Some(self.agents), |i| {
                    let endpoint = endpoints[i % endpoints.len()].clone();
                    let (token, failures, tally) = (token.clone(), sink.clone(), tally.clone());
                    async move {
                        tokio::time::sleep(Duration::from_millis(i as u64 * 4)).await;
                        let offering =
                            Offering::sized(format!("node-{i:05}"), self.cpus, self.mem_mb);
                        let result = match join(&endpoint, quic, &token, &offering.hostname).await {
                            Ok(joined) => serve(joined, offering, tally, until).await.map(drop),
                            Err(err) => Err(err),
                        };
                        if let (Err(err), Ok(mut f)) = (result, failures.lock()) {
                            f.push(err);
                        }
                    }
                })
                .await;
        });
        failures
    }
}
