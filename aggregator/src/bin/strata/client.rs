//! The aggregator's HTTP API as the `strata` client uses it: JSON in and out, every failure
//! named by its request, and unreachable aggregators told apart from refused requests.

use std::time::Duration;

use serde_json::Value;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach the aggregator at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: ureq::Error,
    },
    #[error("{method} {path}: {status}: {message}")]
    Refused {
        method: &'static str,
        path: String,
        status: u16,
        message: String,
        body: Value,
    },
}

/// Redirects followed at most (a standby names the leader: one is the norm).
const MAX_REDIRECTS: usize = 5;

/// A client of one aggregator.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

/// The message of an error body: Marathon's `message` with its `details`, or `error`.
fn message_of(body: &Value) -> String {
    let mut message = body["message"]
        .as_str()
        .or_else(|| body["error"].as_str())
        .unwrap_or("")
        .to_owned();
    for detail in body["details"].as_array().into_iter().flatten() {
        let errors: Vec<&str> = detail["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        message.push_str(&format!(
            "\n  {}: {}",
            detail["path"].as_str().unwrap_or("/"),
            errors.join("; ")
        ));
    }
    message
}

impl Client {
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Redirects are followed here, method and body kept (a standby's 307).
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut url = format!("{}{path}", self.base);
        let mut hops = 0;
        let mut response = loop {
            let sent = match (method, body) {
                ("POST", Some(b)) => self.agent.post(&url).send_json(b),
                ("PUT", Some(b)) => self.agent.put(&url).send_json(b),
                ("DELETE", _) => self.agent.delete(&url).call(),
                _ => self.agent.get(&url).call(),
            };
            let response = sent.map_err(|source| ApiError::Unreachable {
                url: url.clone(),
                source,
            })?;
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok());
            match (response.status().as_u16(), location) {
                (307 | 308, Some(location)) if hops < MAX_REDIRECTS => {
                    url = location.to_owned();
                    hops += 1;
                }
                _ => break response,
            }
        };
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(ApiError::Refused {
                method,
                path: path.to_owned(),
                status,
                message: message_of(&body),
                body,
            })
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call("POST", path, Some(body))
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call("PUT", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Result<Value, ApiError> {
        self.call("DELETE", path, None)
    }
}
