//! Misbehaving agents, for the tests that show the aggregator refuses bad input with a logged
//! reason and carries on: no client certificate, malformed and oversized reports, a forged
//! identity. Built from the agent's own transport pieces.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use agent::transport::{client, identity::Identity, tls};
use proto::{
    control::Control,
    frame::{MAX_CONTROL_FRAME, read_frame, write_frame},
    token::JoinToken,
};
use quinn::{Connection, Endpoint, RecvStream, SendStream};

/// A QUIC client aimed at one aggregator.
#[derive(Debug)]
pub struct Rogue {
    endpoint: Endpoint,
    addr: SocketAddr,
}

/// Why a connection was closed, as the aggregator said.
pub fn close_reason(error: &quinn::ConnectionError) -> String {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            String::from_utf8_lossy(&close.reason).into_owned()
        }
        other => other.to_string(),
    }
}

impl Rogue {
    pub fn new(addr: SocketAddr) -> Self {
        let endpoint =
            Endpoint::client("0.0.0.0:0".parse().expect("address")).expect("client endpoint");
        Self { endpoint, addr }
    }

    fn name(&self) -> String {
        self.addr.ip().to_string()
    }

    /// Joins with a token, as a real agent does first.
    pub async fn join(&self, token: &str) -> Identity {
        let token: JoinToken = token.parse().expect("a join token");
        client::enroll(&self.endpoint, self.addr, &self.name(), &token, "rogue")
            .await
            .expect("enrollment")
    }

    /// Connects for reports trusting the aggregator's CA but presenting no client certificate;
    /// returns why the aggregator closed the connection.
    pub async fn without_certificate(&self, ca_der: Vec<u8>) -> String {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_der.into()).expect("CA certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![tls::ALPN_REPORTS.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("QUIC TLS");
        let config = quinn::ClientConfig::new(Arc::new(crypto));
        let connection = self
            .endpoint
            .connect_with(config, self.addr, &self.name())
            .expect("connect")
            .await;
        match connection {
            Ok(connection) => {
                let reason =
                    tokio::time::timeout(Duration::from_secs(10), connection.closed()).await;
                reason.map_or_else(|_| "not closed".into(), |e| close_reason(&e))
            }
            Err(err) => close_reason(&err),
        }
    }

    /// A report session with `identity`, after its hello.
    pub async fn session(&self, identity: &Identity, hello_as: &str) -> Session {
        let config = tls::report_config(identity).expect("report TLS");
        let connection = self
            .endpoint
            .connect_with(config, self.addr, &self.name())
            .expect("connect")
            .await
            .expect("handshake");
        let (mut control, answers) = connection.open_bi().await.expect("control stream");
        let hello = Control::Hello {
            agent_id: hello_as.to_owned(),
            version: "rogue".into(),
            discovery: None,
        };
        write_frame(&mut control, &hello.encode())
            .await
            .expect("hello");
        Session {
            connection,
            _control: control,
            answers,
        }
    }
}

/// A report connection that can send anything.
#[derive(Debug)]
pub struct Session {
    pub connection: Connection,
    _control: SendStream,
    answers: RecvStream,
}

impl Session {
    /// Sends `bytes` as one report stream.
    pub async fn send(&self, bytes: &[u8]) {
        let mut stream = self.connection.open_uni().await.expect("report stream");
        // An oversized report may be stopped by the aggregator part-way.
        let _ = stream.write_all(bytes).await;
        let _ = stream.finish();
    }

    /// The next control message from the aggregator, if one comes within 10 s.
    pub async fn next_control(&mut self) -> Option<Control> {
        let frame = tokio::time::timeout(
            Duration::from_secs(10),
            read_frame(&mut self.answers, MAX_CONTROL_FRAME),
        );
        let frame = frame.await.ok()?.ok()??;
        Control::decode(&frame, &proto::Limits::default()).ok()
    }

    /// Why the aggregator closed the connection (waits up to 10 s).
    pub async fn closed(&self) -> String {
        let reason = tokio::time::timeout(Duration::from_secs(10), self.connection.closed()).await;
        reason.map_or_else(|_| "not closed".into(), |e| close_reason(&e))
    }
}
