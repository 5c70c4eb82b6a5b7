//! QUIC ingest: agents join (a token buys a client certificate, ALPN `strata-join/1`) and
//! report (ALPN `strata/1`, mutual TLS). On a report connection the agent opens one control
//! stream and says hello; every report then arrives on its own unidirectional stream, is
//! size-checked, verified, checked against the agent's certificate identity, merged, and
//! acknowledged on the control stream. Anything refused is logged with its reason and
//! counted; other agents are never affected.

use futures_util::StreamExt as _;
use std::{net::SocketAddr, sync::Arc, time::Duration};

use proto::{
    control::Control,
    exec::{AgentMessage, MasterMessage},
    frame::{MAX_CONTROL_FRAME, append_frame, read_frame, write_frame},
};
use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use rustls::{RootCertStore, pki_types::CertificateDer, server::WebPkiClientVerifier};
use tracing::{debug, info, warn};

use crate::{
    error_chain,
    master::core::Registration,
    metrics::Metrics,
    pki::Pki,
    state::{Shared, now_ms},
    tokens,
    topology::ApplyError,
};

/// Protocol of report connections (client certificate required).
pub const ALPN_REPORTS: &[u8] = b"strata/1";
/// Protocol of enrollment (no client certificate yet).
pub const ALPN_JOIN: &[u8] = b"strata-join/1";
/// Reports in flight per agent connection.
const MAX_REPORT_STREAMS: u32 = 16;
/// A connection silent this long is closed (agents report every second).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Application close codes.
mod close {
    pub const REFUSED: u32 = 1;
    pub const DONE: u32 = 0;
}

/// Why the QUIC endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("building the TLS configuration")]
    Tls(#[from] rustls::Error),
    #[error("building the client certificate verifier")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("TLS configuration unusable for QUIC")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("binding QUIC on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the QUIC endpoint with the aggregator's certificate, asking (not requiring) a
/// client certificate: joining agents have none yet; report connections without one are
/// refused after the handshake. Its stateless-reset key comes from the set's CA
/// ([`Pki::stateless_reset_secret`]).
pub fn endpoint(pki: &Pki, addr: SocketAddr) -> Result<Endpoint, IngestError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der())?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let (chain, key) = pki.server_identity();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![ALPN_REPORTS.to_vec(), ALPN_JOIN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_uni_streams(VarInt::from_u32(MAX_REPORT_STREAMS));
    transport.max_concurrent_bidi_streams(VarInt::from_u32(1));
    transport.max_idle_timeout(IDLE_TIMEOUT.try_into().ok());
    config.transport_config(Arc::new(transport));
    // Stateless resets that a restarted aggregator can send for its predecessor's
    // connections: the same reset key, and connection ids it accepts as its own (the
    // default generator checks ids with a random key, and would drop theirs unanswered).
    let secret = pki.stateless_reset_secret();
    let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
    let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(reset_key));
    let cid_key = u64::from_le_bytes(secret[..8].try_into().expect("8 bytes"));
    endpoint_config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    let bind = |source| IngestError::Bind { addr, source };
    let socket = std::net::UdpSocket::bind(addr).map_err(bind)?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| bind(std::io::Error::other("no async runtime for QUIC")))?;
    Endpoint::new(endpoint_config, Some(config), socket, runtime).map_err(bind)
}

/// What joining and identifying agents needs: a leader's [`Shared`] or a standby's parts.
#[derive(Debug, Clone, Copy)]
pub struct Gate<'a> {
    pub pki: &'a Pki,
    pub data_dir: &'a std::path::Path,
    pub limits: &'a proto::Limits,
    pub metrics: &'a Metrics,
}

impl Shared {
    /// The parts of the shared state that joining and identifying agents needs.
    pub fn gate(&self) -> Gate<'_> {
        Gate {
            pki: &self.pki,
            data_dir: &self.data_dir,
            limits: &self.limits,
            metrics: &self.metrics,
        }
    }
}

/// Accepts connections until the endpoint closes.
pub async fn serve(endpoint: Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(connection) => handle(connection, &shared).await,
                Err(err) => {
                    shared.metrics.refuse("handshake");
                    warn!(%remote, error = %err, "QUIC handshake failed");
                }
            }
        });
    }
}

pub(crate) fn alpn(connection: &Connection) -> Option<Vec<u8>> {
    connection
        .handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

async fn handle(connection: Connection, shared: &Shared) {
    match alpn(&connection).as_deref() {
        Some(ALPN_JOIN) => enroll(connection, &shared.gate()).await,
        Some(ALPN_REPORTS) => {
            let remote = connection.remote_address();
            let Some(agent_id) = identify(&connection, &shared.pki, &shared.metrics) else {
                return;
            };
            info!(%agent_id, %remote, "agent connected");
            let generation = shared.topology().connected(&agent_id);
            shared.metrics.agents_connected.inc();
            let reason = reports(&connection, shared, &agent_id, generation).await;
            shared.links.down(&agent_id, &connection);
            shared
                .master
                .lock()
                .agent_disconnected(&agent_id, generation, now_ms());
            shared.master.wake();
            shared.metrics.agents_connected.dec();
            shared
                .topology()
                .disconnected(&agent_id, generation, now_ms());
            info!(%agent_id, %remote, %reason, "agent disconnected");
        }
        _ => refuse(
            &connection,
            &shared.metrics,
            "unknown protocol",
            "no ALPN agreed",
        ),
    }
}

/// Closes `connection` with a logged, counted reason.
pub(crate) fn refuse(connection: &Connection, metrics: &Metrics, metric: &str, reason: &str) {
    metrics.refuse(metric);
    warn!(remote = %connection.remote_address(), reason, "connection refused");
    connection.close(VarInt::from_u32(close::REFUSED), reason.as_bytes());
}

/// The agent id behind the client certificate, or the connection is refused.
pub(crate) fn identify(connection: &Connection, pki: &Pki, metrics: &Metrics) -> Option<String> {
    let certificates = connection
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok());
    let Some(leaf) = certificates.as_ref().and_then(|chain| chain.first()) else {
        refuse(
            connection,
            metrics,
            "no certificate",
            "a client certificate is required: join with a token first",
        );
        return None;
    };
    let agent = pki.agent_of(leaf);
    if agent.is_none() {
        refuse(
            connection,
            metrics,
            "unknown certificate",
            "the client certificate was not issued by this aggregator",
        );
    }
    agent
}

/// Serves one enrollment: a valid token gets a client certificate.
pub(crate) async fn enroll(connection: Connection, gate: &Gate<'_>) {
    let Ok((mut send, mut recv)) = connection.accept_bi().await else {
        return;
    };
    let request = match read_frame(&mut recv, MAX_CONTROL_FRAME).await {
        Ok(Some(frame)) => Control::decode(&frame, gate.limits),
        _ => {
            return refuse(
                &connection,
                gate.metrics,
                "malformed",
                "expected an enrollment frame",
            );
        }
    };
    let Ok(Control::Enroll { token, hostname }) = request else {
        return refuse(
            &connection,
            gate.metrics,
            "malformed",
            "expected an enrollment message",
        );
    };
    let answer = match tokens::valid(gate.data_dir, &token, now_ms()) {
        Ok(true) => match gate.pki.issue_agent(&hostname, now_ms()) {
            Ok((agent_id, certificate_pem, private_key_pem)) => {
                info!(%agent_id, %hostname, "agent joined");
                Control::Enrolled {
                    agent_id,
                    certificate_pem,
                    private_key_pem,
                }
            }
            Err(err) => {
                warn!(error = %err, "issuing an agent certificate failed");
                Control::Refused {
                    reason: "the aggregator could not issue a certificate".into(),
                    leader: None,
                }
            }
        },
        Ok(false) => {
            gate.metrics.refuse("bad token");
            warn!(%hostname, "enrollment with an unknown or expired token refused");
            Control::Refused {
                reason: "unknown or expired join token".into(),
                leader: None,
            }
        }
        Err(err) => {
            warn!(error = %err, "reading join tokens failed");
            Control::Refused {
                reason: "the aggregator could not read its tokens".into(),
                leader: None,
            }
        }
    };
    let _ = write_frame(&mut send, &answer.encode()).await;
    let _ = send.finish();
    let _ = send.stopped().await;
    connection.close(VarInt::from_u32(close::DONE), b"enrolled");
}

/// Runs an agent's report connection; returns why it ended.
async fn reports(
    connection: &Connection,
    shared: &Shared,
    agent_id: &str,
    generation: u64,
) -> String {
    let (mut control_send, mut control_recv) = match connection.accept_bi().await {
        Ok(streams) => streams,
        Err(err) => return err.to_string(),
    };
    match read_frame(&mut control_recv, MAX_CONTROL_FRAME).await {
        Ok(Some(frame)) => match Control::decode(&frame, &shared.limits) {
            Ok(Control::Hello {
                agent_id: claimed,
                version,
                discovery,
            }) if claimed == agent_id => {
                debug!(agent_id, version, ?discovery, "hello");
                shared.links.up(agent_id, discovery, connection);
            }
            Ok(Control::Hello {
                agent_id: claimed, ..
            }) => {
                let reason =
                    format!("hello claims agent {claimed} but the certificate is {agent_id}'s");
                refuse(connection, &shared.metrics, "forged identity", &reason);
                return reason;
            }
            _ => {
                refuse(
                    connection,
                    &shared.metrics,
                    "malformed",
                    "expected hello on the control stream",
                );
                return "no hello".into();
            }
        },
        _ => return "control stream closed before hello".into(),
    }
    let (link, mut to_agent) = tokio::sync::mpsc::unbounded_channel::<MasterMessage>();
    // One read stays alive across the loop's turns: a frame half read when another branch
    // wins is finished on the next turn, never dropped (read_frame is not cancel-safe).
    let frames = futures_util::stream::unfold(control_recv, |mut recv| async move {
        let frame = read_frame(&mut recv, MAX_CONTROL_FRAME).await;
        Some((frame, recv))
    });
    let mut frames = std::pin::pin!(frames);
    loop {
        tokio::select! {
            Some(message) = to_agent.recv() => {
                if let Err(err) = send_queued(&mut control_send, message, &mut to_agent).await {
                    return err.to_string();
                }
            }
            stream = connection.accept_uni() => match stream {
                Ok(stream) => {
                    if let Err(reason) = report(connection, shared, agent_id, stream, &mut control_send).await {
                        return reason;
                    }
                }
                Err(err) => return err.to_string(),
            },
            frame = frames.next() => match frame {
                Some(Ok(Some(frame))) => executor_frame(shared, agent_id, generation, &frame, &link),
                Some(Ok(None)) | None => return "control stream closed".into(),
                Some(Err(err)) => return err.to_string(),
            },
        }
    }
}

/// Most messages one write carries to an agent: what queued up while the last write went.
const MESSAGES_PER_WRITE: usize = 256;

/// Writes `first` and whatever else is queued for the agent (up to [`MESSAGES_PER_WRITE`])
/// as one write, so a burst of launches costs one stream write rather than one each.
async fn send_queued(
    control: &mut SendStream,
    first: MasterMessage,
    queue: &mut tokio::sync::mpsc::UnboundedReceiver<MasterMessage>,
) -> std::io::Result<()> {
    let mut out = Vec::new();
    let mut next = Some(first);
    let mut count = 0;
    while let Some(message) = next {
        append_frame(
            &mut out,
            &Control::Executor {
                json: message.to_json(),
            }
            .encode(),
        )?;
        count += 1;
        next = (count < MESSAGES_PER_WRITE)
            .then(|| queue.try_recv().ok())
            .flatten();
    }
    control.write_all(&out).await?;
    Ok(())
}

/// Executor traffic from an agent: registration and status updates go to the master.
/// Anything else is logged and ignored; the connection stays up.
fn executor_frame(
    shared: &Shared,
    agent_id: &str,
    generation: u64,
    frame: &[u8],
    link: &tokio::sync::mpsc::UnboundedSender<MasterMessage>,
) {
    let message = match Control::decode(frame, &shared.limits) {
        Ok(Control::Executor { json }) => AgentMessage::from_json(&json),
        Ok(other) => {
            debug!(agent_id, ?other, "unexpected control message ignored");
            return;
        }
        Err(err) => {
            shared.metrics.refuse("malformed");
            warn!(agent_id, error = %error_chain(&err), "undecodable control frame ignored");
            return;
        }
    };
    let now = now_ms();
    match message {
        Ok(AgentMessage::Register {
            hostname,
            resources,
            attributes,
            tasks,
        }) => {
            let registration = Registration {
                agent_id: agent_id.to_owned(),
                hostname,
                resources,
                attributes,
                tasks,
            };
            shared
                .master
                .lock()
                .agent_registered(registration, link.clone(), generation, now);
            shared.master.wake();
        }
        Ok(AgentMessage::Status(update)) => {
            let terminal = update.state.is_terminal();
            shared.master.lock().agent_status(agent_id, update);
            if terminal {
                shared.master.wake();
            }
        }
        Ok(AgentMessage::FileData { request, chunk }) => shared.master.file_data(request, chunk),
        Err(err) => {
            shared.metrics.refuse("malformed");
            warn!(agent_id, error = %error_chain(&err), "malformed executor message ignored");
        }
    }
}

/// Receives, checks and merges one report. An error ends the connection.
async fn report(
    connection: &Connection,
    shared: &Shared,
    agent_id: &str,
    mut stream: RecvStream,
    control: &mut SendStream,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    let bytes = match stream.read_to_end(shared.limits.max_bytes).await {
        Ok(bytes) => bytes,
        Err(quinn::ReadToEndError::TooLong) => {
            shared.metrics.refuse("oversized");
            warn!(
                agent_id,
                limit = shared.limits.max_bytes,
                "oversized report refused"
            );
            let _ = stream.stop(VarInt::from_u32(close::REFUSED));
            return request_full(control).await;
        }
        Err(err) => {
            debug!(agent_id, error = %err, "report stream failed");
            return Ok(());
        }
    };
    shared.metrics.report_bytes.inc_by(bytes.len() as u64);
    let report = match proto::compress::open(&bytes, &shared.limits) {
        Ok(report) => report,
        Err(err) => {
            shared.metrics.refuse("malformed");
            let error = error_chain(&err);
            warn!(
                agent_id,
                error,
                bytes = bytes.len(),
                "malformed report refused"
            );
            return request_full(control).await;
        }
    };
    if report.agent_id != agent_id {
        let reason = format!(
            "report claims agent {} but the certificate is {agent_id}'s",
            report.agent_id
        );
        refuse(connection, &shared.metrics, "forged identity", &reason);
        return Err(reason);
    }
    let sequence = report.sequence;
    let applied = shared.topology().apply(report, now_ms());
    shared
        .metrics
        .merge_seconds
        .observe(started.elapsed().as_secs_f64());
    match applied {
        Ok(()) => {
            shared.metrics.reports.inc();
            write_frame(control, &Control::Ack { sequence }.encode())
                .await
                .map_err(|e| e.to_string())
        }
        Err(err @ (ApplyError::SequenceGap { .. } | ApplyError::NoBase)) => {
            debug!(agent_id, %err, "asking for a full report");
            request_full(control).await
        }
        Err(err @ ApplyError::Stale { .. }) => {
            debug!(agent_id, %err, "stale report ignored");
            Ok(())
        }
    }
}

async fn request_full(control: &mut SendStream) -> Result<(), String> {
    write_frame(control, &Control::RequestFull.encode())
        .await
        .map_err(|e| e.to_string())
}
