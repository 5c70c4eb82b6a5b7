//! The agent's side of the QUIC link: join once with a token, then keep a report connection
//! up, reconnecting with exponential backoff and jitter. Each session says hello on a control
//! stream and sends one report per interval, each on its own stream: full after every
//! (re)connect and when the aggregator asks, otherwise deltas.
//!
//! With an executor, every session registers it after hello (`Register` with resources,
//! attributes and tasks), passes the master's executor messages to it and sends its status
//! updates on the control stream; updates made while disconnected stay with the executor and
//! are sent after the next registration.
//!
//! With several aggregators (a highly available set), the agent tries them in turn; a
//! standby answers with a refusal that names the leader's QUIC address, which the agent
//! connects to next.
//!
//! The collector never waits for this task: it publishes the node's latest state on a watch
//! channel, and while the aggregator is away only that latest state is kept (the next full
//! report carries it), so the buffer is bounded by the agent's own tables.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use proto::{
    control::Control,
    exec::{AgentMessage, MasterMessage},
    frame::{MAX_CONTROL_FRAME, read_frame, write_frame},
    model::Report,
    token::JoinToken,
};
use quinn::Endpoint;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::{
    identity::{self, Identity},
    tls,
};
use crate::{exec::Executor, report::delta::Differ};

const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The pause before the next address of a set, or the leader a standby named.
const REFERRAL_PAUSE: Duration = Duration::from_millis(200);

/// Where and how to report.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// `HOST:PORT` of the aggregator's QUIC endpoint; several, comma-separated, for a highly
    /// available set.
    pub aggregator: String,
    pub token: Option<JoinToken>,
    pub state_dir: PathBuf,
    pub interval: Duration,
    pub full_every: u64,
    /// The executor to register and serve on every session, if the agent runs tasks.
    pub executor: Option<Executor>,
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("resolving {0}")]
    Resolve(String, #[source] std::io::Error),
    #[error("the agent has not joined yet: start it once with --token")]
    NoIdentity,
    #[error("identity")]
    Identity(#[from] identity::IdentityError),
    #[error("TLS")]
    Tls(#[from] tls::TlsError),
    #[error("connecting")]
    Connect(#[from] quinn::ConnectError),
    #[error("connection")]
    Connection(#[from] quinn::ConnectionError),
    #[error("sending")]
    Write(#[from] quinn::WriteError),
    #[error("stream")]
    Stream(#[from] quinn::ClosedStream),
    #[error("control stream")]
    Io(#[from] std::io::Error),
    #[error("control stream")]
    Frame(#[from] proto::frame::FrameError),
    #[error("finding the leader")]
    Discover(#[from] super::discover::DiscoverError),
    #[error("the aggregator refused: {0}")]
    Refused(String),
    #[error("{reason}: the leader is at {leader}")]
    Referred { reason: String, leader: String },
    #[error("unexpected answer from the aggregator")]
    Unexpected,
}

/// Exponential backoff with jitter.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        base.mul_f64(0.5 + rand::random::<f64>())
    }

    fn reset(&mut self) {
        self.next = MIN_BACKOFF;
    }
}

/// The TLS server name of an aggregator address (`HOST:PORT`).
pub fn server_name(aggregator: &str) -> String {
    let host = aggregator
        .rsplit_once(':')
        .map_or(aggregator, |(host, _)| host);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

async fn resolve(aggregator: &str) -> Result<SocketAddr, LinkError> {
    tokio::net::lookup_host(aggregator)
        .await
        .map_err(|e| LinkError::Resolve(aggregator.to_owned(), e))?
        .next()
        .ok_or_else(|| {
            LinkError::Resolve(aggregator.to_owned(), std::io::ErrorKind::NotFound.into())
        })
}

/// The addresses in `--aggregator`, in order (a `zk://` address is one, commas and all).
pub fn addresses(aggregator: &str) -> Vec<String> {
    if aggregator.trim_start().starts_with("zk://") {
        return vec![aggregator.trim().to_owned()];
    }
    aggregator
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Keeps reporting the latest state in `states` for as long as the agent runs.
pub async fn run(config: LinkConfig, mut states: watch::Receiver<Option<Report>>) {
    let endpoint = match Endpoint::client("[::]:0".parse().expect("valid address"))
        .or_else(|_| Endpoint::client("0.0.0.0:0".parse().expect("valid address")))
    {
        Ok(endpoint) => endpoint,
        Err(err) => return warn!(error = %err, "cannot open a UDP socket; not reporting"),
    };
    let mut differ = Differ::new(config.full_every);
    let mut backoff = Backoff { next: MIN_BACKOFF };
    let addresses = addresses(&config.aggregator);
    let mut turn = 0;
    let mut referred: Option<String> = None;
    // The zk:// address the last leader was found through: a referral from a standby keeps
    // it, so the aggregator still learns how this agent finds its leader.
    let mut via: Option<String> = None;
    loop {
        let referral = referred.is_some();
        let target = referred
            .take()
            .unwrap_or_else(|| addresses[turn % addresses.len()].clone());
        let ended = session(
            &endpoint,
            &config,
            &target,
            &mut states,
            &mut differ,
            &mut backoff,
            (&mut via, referral),
        )
        .await;
        if let Err(LinkError::Referred { leader, reason }) = &ended {
            info!(aggregator = %target, leader, reason, "following the leader");
            referred = Some(leader.clone());
            tokio::time::sleep(REFERRAL_PAUSE).await;
            continue;
        }
        let error = ended
            .err()
            .map_or_else(|| "closed".to_owned(), |e| crate::error_chain(&e));
        turn += 1;
        // A full round of the addresses failed before the agent waits longer.
        let delay = if turn % addresses.len() == 0 {
            backoff.delay()
        } else {
            REFERRAL_PAUSE
        };
        warn!(aggregator = %target, error, retry_in = ?delay, "not connected to the aggregator");
        tokio::time::sleep(delay).await;
    }
}

async fn identity(
    endpoint: &Endpoint,
    config: &LinkConfig,
    target: &str,
    addr: SocketAddr,
) -> Result<Identity, LinkError> {
    if let Some(identity) = identity::load(&config.state_dir)? {
        return Ok(identity);
    }
    let token = config.token.as_ref().ok_or(LinkError::NoIdentity)?;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = server_name(target);
    let identity = enroll(endpoint, addr, &name, token, hostname.trim()).await?;
    identity::store(&config.state_dir, &identity)?;
    info!(agent_id = %identity.agent_id, state_dir = %config.state_dir.display(), "joined the aggregator");
    Ok(identity)
}

/// Joins the aggregator at `addr` with `token`: checks its CA against the token's fingerprint
/// and receives a client certificate.
pub async fn enroll(
    endpoint: &Endpoint,
    addr: SocketAddr,
    server_name: &str,
    token: &JoinToken,
    hostname: &str,
) -> Result<Identity, LinkError> {
    let (tls, pinned) = tls::join_config(&token.ca_fingerprint)?;
    let connection = endpoint.connect_with(tls, addr, server_name)?.await?;
    let (mut send, mut recv) = connection.open_bi().await?;
    let enroll = Control::Enroll {
        token: token.secret.clone(),
        hostname: hostname.to_owned(),
    };
    write_frame(&mut send, &enroll.encode()).await?;
    send.finish()?;
    let answer = read_frame(&mut recv, MAX_CONTROL_FRAME)
        .await?
        .ok_or(LinkError::Unexpected)?;
    connection.close(0u32.into(), b"joined");
    match Control::decode(&answer, &proto::Limits::default()).map_err(|_| LinkError::Unexpected)? {
        Control::Enrolled {
            agent_id,
            certificate_pem,
            private_key_pem,
        } => {
            let ca_der = pinned
                .seen_ca
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
                .ok_or(LinkError::Unexpected)?;
            Ok(Identity {
                agent_id,
                certificate_pem,
                private_key_pem,
                ca_der,
            })
        }
        Control::Refused { reason, .. } => Err(LinkError::Refused(reason)),
        _ => Err(LinkError::Unexpected),
    }
}

async fn session(
    endpoint: &Endpoint,
    config: &LinkConfig,
    target: &str,
    states: &mut watch::Receiver<Option<Report>>,
    differ: &mut Differ,
    backoff: &mut Backoff,
    (via, referral): (&mut Option<String>, bool),
) -> Result<(), LinkError> {
    let (target, discovery) = match target.strip_prefix("zk://") {
        Some(_) => {
            let url = target
                .parse()
                .map_err(|e| LinkError::Discover(super::discover::DiscoverError::BadUrl(e)))?;
            let found = super::discover::leader(&url, &config.state_dir).await?;
            debug!(via = %found.via, leader = %found.quic, "found the leader through ZooKeeper");
            *via = Some(found.via.to_string());
            (found.quic, via.clone())
        }
        None if referral => (target.to_owned(), via.clone()),
        None => {
            *via = None;
            (target.to_owned(), None)
        }
    };
    let target = target.as_str();
    let addr = resolve(target).await?;
    let identity = identity(endpoint, config, target, addr).await?;
    let tls = tls::report_config(&identity)?;
    let connection = endpoint
        .connect_with(tls, addr, &server_name(target))?
        .await?;
    let (mut control, mut answers) = connection.open_bi().await?;
    let hello = Control::Hello {
        agent_id: identity.agent_id.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        discovery,
    };
    write_frame(&mut control, &hello.encode()).await?;
    info!(aggregator = %target, agent_id = %identity.agent_id, "connected to the aggregator");
    backoff.reset();
    differ.force_full();
    let mut outgoing = None;
    if let Some(session) = match &config.executor {
        Some(executor) => executor.session().await,
        None => None,
    } {
        send_executor(&mut control, &session.register).await?;
        outgoing = Some(session.outgoing);
    }
    let full_requested = Arc::new(AtomicBool::new(false));
    let requested = full_requested.clone();
    let executor = config.executor.clone();
    let referral: Arc<std::sync::Mutex<Option<LinkError>>> = Arc::default();
    let (refused, closer) = (referral.clone(), connection.clone());
    let reader = tokio::spawn(async move {
        while let Ok(Some(frame)) = read_frame(&mut answers, MAX_CONTROL_FRAME).await {
            match Control::decode(&frame, &proto::Limits::default()) {
                Ok(Control::RequestFull) => requested.store(true, Ordering::Relaxed),
                Ok(Control::Ack { sequence }) => debug!(sequence, "report acknowledged"),
                Ok(Control::Executor { json }) => {
                    match (&executor, MasterMessage::from_json(&json)) {
                        (Some(executor), Ok(message)) => executor.deliver(message).await,
                        (None, _) => debug!("executor message ignored: this agent runs no tasks"),
                        (_, Err(err)) => {
                            warn!(error = %crate::error_chain(&err), "undecodable executor message")
                        }
                    }
                }
                Ok(Control::Refused { reason, leader }) => {
                    let why = match leader {
                        Some(leader) => LinkError::Referred { reason, leader },
                        None => LinkError::Refused(reason),
                    };
                    *refused
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
                    closer.close(0u32.into(), b"referred");
                    break;
                }
                Ok(other) => debug!(?other, "control message ignored"),
                Err(err) => warn!(error = %err, "undecodable control message"),
            }
        }
    });
    let mut ticker = tokio::time::interval(config.interval);
    let result = loop {
        tokio::select! {
            reason = connection.closed() => break Err(LinkError::Connection(reason)),
            message = next_message(&mut outgoing) => {
                match message {
                    Some(message) => if let Err(err) = send_executor(&mut control, &message).await {
                        break Err(err);
                    },
                    None => outgoing = None,
                }
                continue;
            }
            _ = ticker.tick() => {}
        }
        let Some(content) = states.borrow_and_update().clone() else {
            continue;
        };
        if full_requested.swap(false, Ordering::Relaxed) {
            differ.force_full();
        }
        let mut content = content;
        content.agent_id.clone_from(&identity.agent_id);
        let report = differ.next(content);
        let bytes = proto::compress::seal(&report);
        let sent = async {
            let mut stream = connection.open_uni().await?;
            stream.write_all(&bytes).await?;
            stream.finish()?;
            Ok::<_, LinkError>(())
        };
        tokio::select! {
            reason = connection.closed() => break Err(LinkError::Connection(reason)),
            sent = sent => if let Err(err) = sent { break Err(err) },
        }
    };
    reader.abort();
    let referred = referral
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    referred.map_or(result, Err)
}

/// The executor's next outgoing message; never, without an executor.
async fn next_message(outgoing: &mut Option<mpsc::Receiver<AgentMessage>>) -> Option<AgentMessage> {
    match outgoing {
        Some(outgoing) => outgoing.recv().await,
        None => std::future::pending().await,
    }
}

async fn send_executor(
    control: &mut quinn::SendStream,
    message: &AgentMessage,
) -> Result<(), LinkError> {
    let frame = Control::Executor {
        json: message.to_json(),
    };
    write_frame(control, &frame.encode()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_address() {
        assert_eq!(server_name("10.0.0.1:5051"), "10.0.0.1");
        assert_eq!(server_name("[::1]:5051"), "::1");
        assert_eq!(server_name("aggregator.local:5051"), "aggregator.local");
    }

    #[test]
    fn a_zk_address_is_one_address_with_its_commas() {
        assert_eq!(addresses("a:1, b:2,"), ["a:1", "b:2"]);
        assert_eq!(
            addresses("zk://z1:2181,z2:2181/s"),
            ["zk://z1:2181,z2:2181/s"]
        );
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap_and_resets() {
        let mut backoff = Backoff { next: MIN_BACKOFF };
        let first = backoff.delay();
        assert!(
            first >= MIN_BACKOFF / 2 && first <= MIN_BACKOFF * 3 / 2,
            "{first:?}"
        );
        for _ in 0..20 {
            assert!(backoff.delay() <= MAX_BACKOFF * 3 / 2);
        }
        backoff.reset();
        assert!(backoff.delay() <= MIN_BACKOFF * 3 / 2);
    }
}
