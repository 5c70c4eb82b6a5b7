//! The cluster CA of a highly available set, kept in ZooKeeper (`PATH/state/ca`) so every
//! aggregator serves a certificate agents trust and verifies the agents any of them let
//! join. The first aggregator publishes its CA; the others adopt it into their data
//! directory before they open it.
//!
//! The znode holds the CA's private key: the ZooKeeper path must be reachable only by the
//! aggregators (network policy or ZooKeeper authentication), as the data directory is.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tracing::info;
use zookeeper_client as zk;

use crate::{
    pki::{self, CA_CERT, CA_KEY, ISSUED, Pki},
    zk::ZkError,
};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct SharedCa {
    cert_pem: String,
    key_pem: String,
}

/// Why the set's CA could not be agreed on.
#[derive(Debug, thiserror::Error)]
pub enum SharedCaError {
    #[error(transparent)]
    Zk(#[from] ZkError),
    #[error("the CA")]
    Pki(#[from] pki::PkiError),
    #[error("{0}")]
    Conflict(String),
    #[error("reading or writing {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA znode {0} is not valid JSON")]
    Corrupt(String),
}

fn read_local(dir: &Path) -> Option<SharedCa> {
    Some(SharedCa {
        cert_pem: std::fs::read_to_string(dir.join(CA_CERT)).ok()?,
        key_pem: std::fs::read_to_string(dir.join(CA_KEY)).ok()?,
    })
}

fn write_local(dir: &Path, ca: &SharedCa) -> Result<(), SharedCaError> {
    for (name, text) in [(CA_CERT, &ca.cert_pem), (CA_KEY, &ca.key_pem)] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| SharedCaError::Io {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

/// Makes `data_dir` hold the set's CA: the one in ZooKeeper at `state_path/ca`, or this
/// aggregator's own, published for the others when none is there yet.
pub async fn agree(
    client: &zk::Client,
    state_path: &str,
    data_dir: &Path,
) -> Result<(), SharedCaError> {
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client
        .mkdir(state_path, &open)
        .await
        .map_err(|e| ZkError::new("creating", state_path, e))?;
    let path = format!("{state_path}/ca");
    let shared = match client.get_data(&path).await {
        Ok((data, _)) => serde_json::from_slice::<SharedCa>(&data)
            .map_err(|_| SharedCaError::Corrupt(path.clone()))?,
        Err(zk::Error::NoNode) => {
            if read_local(data_dir).is_none() {
                Pki::open(data_dir, &[])?;
            }
            let own = read_local(data_dir).ok_or_else(|| {
                SharedCaError::Conflict(format!("no CA in {}", data_dir.display()))
            })?;
            let data = serde_json::to_vec(&own).expect("JSON always serializes");
            match client.create(&path, &data, &open).await {
                Ok(_) => {
                    info!(path, "published this aggregator's CA for the set");
                    return Ok(());
                }
                // Another aggregator published first: adopt its CA below.
                Err(zk::Error::NodeExists) => {
                    let (data, _) = client
                        .get_data(&path)
                        .await
                        .map_err(|e| ZkError::new("reading", &path, e))?;
                    serde_json::from_slice::<SharedCa>(&data)
                        .map_err(|_| SharedCaError::Corrupt(path.clone()))?
                }
                Err(e) => return Err(ZkError::new("creating", &path, e).into()),
            }
        }
        Err(e) => return Err(ZkError::new("reading", &path, e).into()),
    };
    match read_local(data_dir) {
        Some(local) if local == shared => return Ok(()),
        Some(_) if has_issued(data_dir) => {
            return Err(SharedCaError::Conflict(format!(
                "{} has its own CA, which has already let agents join, and the set's CA in {path} differs: \
                 start this aggregator with a new data directory to join the set",
                data_dir.display()
            )));
        }
        _ => {}
    }
    std::fs::create_dir_all(data_dir).map_err(|source| SharedCaError::Io {
        path: data_dir.display().to_string(),
        source,
    })?;
    write_local(data_dir, &shared)?;
    info!(path, "adopted the set's CA");
    Ok(())
}

fn has_issued(dir: &Path) -> bool {
    std::fs::metadata(dir.join(ISSUED)).is_ok_and(|m| m.len() > 0)
}
