//! The aggregator's certificate authority, kept in its data directory: it signs the server
//! certificate (fresh at every start) and the client certificates agents receive when they
//! join with a token. Agents are identified by the certificate they present: the aggregator
//! records the fingerprint of every certificate it issues, with the agent id it issued it to.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    sync::Mutex,
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca.key.pem";
/// One JSON record per line, appended as certificates are issued.
pub const ISSUED: &str = "agents.jsonl";
const CA_NAME: &str = "strata cluster CA";

/// Why the certificate authority could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("reading or writing {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("generating or signing a certificate")]
    Certificate(#[from] rcgen::Error),
    #[error("{path} is not valid")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0} holds no certificate")]
    NoCertificate(PathBuf),
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.into(),
        source,
    })
}

fn write(path: &Path, contents: &str) -> Result<(), PkiError> {
    fs::write(path, contents).map_err(|source| PkiError::Io {
        path: path.into(),
        source,
    })
}

/// SHA-256 of a DER certificate, lowercase hex: how tokens name the CA and how issued
/// certificates are recognised.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The DER of the first certificate in a PEM text.
pub fn pem_certificate_der(pem: &str) -> Option<Vec<u8>> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .ok()
        .map(|der| der.to_vec())
}

/// The record of an issued agent certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Issued {
    fingerprint: String,
    agent_id: String,
    hostname: String,
    issued_ms: u64,
}

/// The CA, the current server certificate and the register of issued agent certificates.
pub struct Pki {
    dir: PathBuf,
    ca_key: KeyPair,
    ca_params: CertificateParams,
    ca_der: Vec<u8>,
    ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
    issued: Mutex<HashMap<String, Issued>>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn ca_params() -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

impl Pki {
    /// Opens the CA in `dir`, creating it on first use, and signs a server certificate for
    /// `server_names` (DNS names or IP addresses).
    pub fn open(dir: &Path, server_names: &[String]) -> Result<Self, PkiError> {
        fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.into(),
            source,
        })?;
        let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
        let params = ca_params()?;
        let (ca_key, ca_pem) = if cert_path.exists() && key_path.exists() {
            (KeyPair::from_pem(&read(&key_path)?)?, read(&cert_path)?)
        } else {
            let key = KeyPair::generate()?;
            let cert = params.self_signed(&key)?;
            write(&key_path, &key.serialize_pem())?;
            write(&cert_path, &cert.pem())?;
            (key, cert.pem())
        };
        let ca_der = pem_certificate_der(&ca_pem).ok_or(PkiError::NoCertificate(cert_path))?;
        let issued_path = dir.join(ISSUED);
        let mut issued = HashMap::new();
        if issued_path.exists() {
            for line in read(&issued_path)?.lines().filter(|l| !l.trim().is_empty()) {
                let record: Issued =
                    serde_json::from_str(line).map_err(|source| PkiError::Corrupt {
                        path: issued_path.clone(),
                        source,
                    })?;
                issued.insert(record.fingerprint.clone(), record);
            }
        }
        let mut pki = Self {
            dir: dir.to_owned(),
            ca_key,
            ca_params: params,
            ca_der,
            ca_pem,
            server_chain: Vec::new(),
            server_key: Vec::new(),
            issued: Mutex::new(issued),
        };
        let mut server = CertificateParams::new(Vec::<String>::new())?;
        server.subject_alt_names = server_names
            .iter()
            .map(|name| match name.parse() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => name.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        server
            .distinguished_name
            .push(DnType::CommonName, "strata aggregator");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = server.signed_by(&key, &pki.issuer())?;
        pki.server_chain = vec![cert.der().clone(), CertificateDer::from(pki.ca_der.clone())];
        pki.server_key = key.serialize_der();
        Ok(pki)
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.ca_params, &self.ca_key)
    }

    /// The CA certificate's fingerprint, which join tokens carry.
    pub fn ca_fingerprint(&self) -> String {
        fingerprint(&self.ca_der)
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.ca_der.clone())
    }

    /// A secret every aggregator of a set derives alike from the CA key they share: the
    /// key of QUIC stateless resets, so that an aggregator started again on the same port
    /// (or a hand-over's restart) ends the agents' old connections at once instead of at
    /// their idle timeout.
    pub fn stateless_reset_secret(&self) -> [u8; 32] {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(b"strata QUIC stateless reset key\0");
        context.update(&self.ca_key.serialize_der());
        let mut secret = [0u8; 32];
        secret.copy_from_slice(context.finish().as_ref());
        secret
    }

    /// The server certificate chain (server, then CA) and its key.
    pub fn server_identity(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = PrivatePkcs8KeyDer::from(self.server_key.clone());
        (self.server_chain.clone(), PrivateKeyDer::Pkcs8(key))
    }

    /// Issues a client certificate to a joining agent; returns its id, certificate and key.
    pub fn issue_agent(
        &self,
        hostname: &str,
        now_ms: u64,
    ) -> Result<(String, String, String), PkiError> {
        let suffix: u32 = rand::random();
        let safe: String = hostname
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(48)
            .collect();
        let agent_id = format!(
            "{}-{suffix:08x}",
            if safe.is_empty() { "agent" } else { &safe }
        );
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, agent_id.clone());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer())?;
        let record = Issued {
            fingerprint: fingerprint(cert.der()),
            agent_id: agent_id.clone(),
            hostname: hostname.to_owned(),
            issued_ms: now_ms,
        };
        let path = self.dir.join(ISSUED);
        let line = serde_json::to_string(&record).map_err(|source| PkiError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let mut issued = self
            .issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes())
            })
            .map_err(|source| PkiError::Io { path, source })?;
        issued.insert(record.fingerprint.clone(), record);
        Ok((agent_id, cert.pem(), key.serialize_pem()))
    }

    /// The agent a presented client certificate (one the TLS handshake verified against this
    /// CA) was issued to: by this aggregator's record of what it issued, or else by the
    /// certificate's common name, which the CA signed (an agent that joined through another
    /// aggregator of a highly available set, which shares the CA).
    pub fn agent_of(&self, cert_der: &[u8]) -> Option<String> {
        let issued = self
            .issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(record) = issued.get(&fingerprint(cert_der)) {
            return Some(record.agent_id.clone());
        }
        let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
        if cert.issuer().to_string() != format!("CN={CA_NAME}") {
            return None;
        }
        let name = cert.subject().iter_common_name().next()?.as_str().ok()?;
        Some(name.to_owned())
    }
}
