//! The agent's identity for an aggregator, kept in its state directory after it joined: its
//! id, client certificate and key, and the aggregator's CA certificate.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

const AGENT_ID: &str = "agent-id";
const CERTIFICATE: &str = "agent.pem";
const KEY: &str = "agent.key.pem";
const CA: &str = "ca.der";

/// What an agent presents and trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub agent_id: String,
    pub certificate_pem: String,
    pub private_key_pem: String,
    /// The aggregator's CA certificate, DER.
    pub ca_der: Vec<u8>,
}

/// Why the state directory could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}")]
pub struct IdentityError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn read(path: PathBuf) -> Result<Option<Vec<u8>>, IdentityError> {
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IdentityError {
            action: "reading",
            path,
            source,
        }),
    }
}

/// The stored identity, if the agent joined before.
pub fn load(dir: &Path) -> Result<Option<Identity>, IdentityError> {
    let parts = (
        read(dir.join(AGENT_ID))?,
        read(dir.join(CERTIFICATE))?,
        read(dir.join(KEY))?,
        read(dir.join(CA))?,
    );
    let (Some(id), Some(cert), Some(key), Some(ca_der)) = parts else {
        return Ok(None);
    };
    Ok(Some(Identity {
        agent_id: String::from_utf8_lossy(&id).trim().to_owned(),
        certificate_pem: String::from_utf8_lossy(&cert).into_owned(),
        private_key_pem: String::from_utf8_lossy(&key).into_owned(),
        ca_der,
    }))
}

/// Stores the identity; the key is readable by the owner only.
pub fn store(dir: &Path, identity: &Identity) -> Result<(), IdentityError> {
    let fail = |action, path: PathBuf| {
        move |source| IdentityError {
            action,
            path,
            source,
        }
    };
    fs::create_dir_all(dir).map_err(fail("creating", dir.to_owned()))?;
    let write = |name: &str, bytes: &[u8], mode: u32| {
        let path = dir.join(name);
        fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(mode)
            .open(&path)
            .and_then(|mut file| file.write_all(bytes))
            .map_err(fail("writing", path))
    };
    write(KEY, identity.private_key_pem.as_bytes(), 0o600)?;
    write(CERTIFICATE, identity.certificate_pem.as_bytes(), 0o644)?;
    write(CA, &identity.ca_der, 0o644)?;
    write(AGENT_ID, identity.agent_id.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_stored_and_loaded_back() {
        let dir = std::env::temp_dir().join(format!("strata-identity-{}", std::process::id()));
        assert_eq!(load(&dir).expect("readable"), None);
        let identity = Identity {
            agent_id: "node-1-0001".into(),
            certificate_pem: "cert".into(),
            private_key_pem: "key".into(),
            ca_der: vec![1, 2, 3],
        };
        store(&dir, &identity).expect("stored");
        assert_eq!(load(&dir).expect("readable"), Some(identity));
        let _ = fs::remove_dir_all(&dir);
    }
}
