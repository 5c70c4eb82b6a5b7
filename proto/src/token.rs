//! Join tokens: what an operator hands an agent so it can join an aggregator. A token is
//! `<secret>.<ca-fingerprint>`: the secret buys a client certificate, the fingerprint (SHA-256
//! of the aggregator's CA certificate, hex) lets the agent trust the aggregator before it has
//! anything else.

use std::{fmt, str::FromStr};

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub secret: String,
    pub ca_fingerprint: String,
}

/// Why a token string is not a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a join token is <secret>.<64 hex digits of the CA fingerprint>")]
pub struct MalformedToken;

impl FromStr for JoinToken {
    type Err = MalformedToken;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (secret, fingerprint) = text.trim().split_once('.').ok_or(MalformedToken)?;
        let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
        if secret.len() < 16 || !hex(secret) || fingerprint.len() != 64 || !hex(fingerprint) {
            return Err(MalformedToken);
        }
        Ok(Self {
            secret: secret.to_owned(),
            ca_fingerprint: fingerprint.to_ascii_lowercase(),
        })
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.secret, self.ca_fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_malformed_ones_are_refused() {
        let token = JoinToken {
            secret: "ab".repeat(16),
            ca_fingerprint: "0f".repeat(32),
        };
        assert_eq!(token.to_string().parse::<JoinToken>(), Ok(token));
        for bad in [
            "",
            "nodot",
            "short.00",
            &format!("{}.{}", "zz".repeat(16), "0".repeat(64)),
        ] {
            assert_eq!(bad.parse::<JoinToken>(), Err(MalformedToken), "{bad}");
        }
    }
}
