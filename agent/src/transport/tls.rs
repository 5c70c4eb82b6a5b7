//! TLS for the agent's QUIC connections. Joining trusts the aggregator whose CA certificate
//! has the fingerprint the token carries; reporting trusts that stored CA and presents the
//! client certificate the aggregator issued.

use std::sync::{Arc, Mutex};

use rustls::{
    DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject as _},
};
use sha2::{Digest as _, Sha256};

use super::identity::Identity;

/// Protocols, as the aggregator names them.
pub const ALPN_REPORTS: &[u8] = b"strata/1";
pub const ALPN_JOIN: &[u8] = b"strata-join/1";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS configuration")]
    Rustls(#[from] rustls::Error),
    #[error("the stored certificate or key is not valid PEM")]
    Pem(#[from] rustls::pki_types::pem::Error),
    #[error("server certificate verifier")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    #[error("TLS configuration unusable for QUIC")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A silent aggregator is given up on after this long (keep-alives flow every 2 s).
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(2);

fn quic(mut tls: rustls::ClientConfig, alpn: &[u8]) -> Result<quinn::ClientConfig, TlsError> {
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    transport.max_idle_timeout(IDLE_TIMEOUT.try_into().ok());
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Trusts a server whose chain includes the CA with the pinned fingerprint, and remembers
/// that CA for later connections.
#[derive(Debug)]
pub struct PinnedCa {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
    /// The CA certificate, once a server presented it.
    pub seen_ca: Mutex<Option<Vec<u8>>>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| hex::encode(Sha256::digest(c.as_ref())) == self.fingerprint)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the aggregator's CA does not match the join token's fingerprint".into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, &[], server_name, ocsp, now)?;
        *self
            .seen_ca
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ca.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The configuration for joining with a token whose CA fingerprint is `fingerprint`.
pub fn join_config(fingerprint: &str) -> Result<(quinn::ClientConfig, Arc<PinnedCa>), TlsError> {
    let verifier = Arc::new(PinnedCa {
        fingerprint: fingerprint.to_ascii_lowercase(),
        provider: provider(),
        seen_ca: Mutex::new(None),
    });
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    Ok((quic(tls, ALPN_JOIN)?, verifier))
}

/// The configuration for reporting with a stored identity.
pub fn report_config(identity: &Identity) -> Result<quinn::ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(identity.ca_der.clone()))?;
    let chain = CertificateDer::pem_slice_iter(identity.certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(identity.private_key_pem.as_bytes())?;
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    quic(tls, ALPN_REPORTS)
}
