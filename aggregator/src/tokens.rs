//! Join tokens the operator created (`strata-aggregator token create`), kept in the data
//! directory as SHA-256 hashes of their secrets with an expiry. The file is read at every
//! enrollment, so tokens created while the aggregator runs work at once.

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

const FILE: &str = "tokens.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    secret_sha256: String,
    created_ms: u64,
    expires_ms: u64,
}

/// Why the token store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("reading or writing {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn load(path: &Path) -> Result<Vec<Record>, TokenError> {
    match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|source| TokenError::Corrupt {
            path: path.into(),
            source,
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(TokenError::Io {
            path: path.into(),
            source,
        }),
    }
}

/// Creates a token valid for `ttl_ms`; returns its secret (the only time it is known).
pub fn create(dir: &Path, ttl_ms: u64, now_ms: u64) -> Result<String, TokenError> {
    let path = dir.join(FILE);
    let mut records = load(&path)?;
    records.retain(|r| r.expires_ms > now_ms);
    let secret = hex::encode(rand::random::<[u8; 16]>());
    records.push(Record {
        secret_sha256: hash(&secret),
        created_ms: now_ms,
        expires_ms: now_ms + ttl_ms,
    });
    let text = serde_json::to_string_pretty(&records).map_err(|source| TokenError::Corrupt {
        path: path.clone(),
        source,
    })?;
    fs::create_dir_all(dir).map_err(|source| TokenError::Io {
        path: dir.into(),
        source,
    })?;
    fs::write(&path, text).map_err(|source| TokenError::Io { path, source })?;
    Ok(secret)
}

/// Whether `secret` is a token that has not expired.
pub fn valid(dir: &Path, secret: &str, now_ms: u64) -> Result<bool, TokenError> {
    let wanted = hash(secret);
    Ok(load(&dir.join(FILE))?
        .iter()
        .any(|r| r.secret_sha256 == wanted && r.expires_ms > now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_tokens_are_valid_until_they_expire() {
        let dir = std::env::temp_dir().join(format!("strata-tokens-{}", std::process::id()));
        let secret = create(&dir, 1_000, 5_000).expect("created");
        assert!(valid(&dir, &secret, 5_999).expect("readable"));
        assert!(!valid(&dir, &secret, 6_000).expect("readable"));
        assert!(!valid(&dir, "not-a-token", 5_500).expect("readable"));
        let _ = fs::remove_dir_all(&dir);
    }
}
