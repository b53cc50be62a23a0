//! Bitcoin Core JSON-RPC client (HTTP Basic auth, cookie or user/password), shared by the
//! roles that talk to a node: the pool (where its blocks stand), the jd-server (mempool and
//! block submission). The devnet template provider answers a subset of the same RPC.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Errors talking to the node.
#[derive(Debug, thiserror::Error)]
pub enum NodeRpcError {
    /// Could not reach the node or read its answer.
    #[error("node RPC {url}: {reason}")]
    Transport {
        /// RPC URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The node answered with an error.
    #[error("node RPC {method}: error {code}: {message}")]
    Rpc {
        /// Method.
        method: &'static str,
        /// Bitcoin Core error code.
        code: i64,
        /// Message.
        message: String,
    },
    /// Credentials could not be read.
    #[error("node RPC credentials {path}: {reason}")]
    Credentials {
        /// Cookie file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// How to reach the node's JSON-RPC (`[chain_rpc]` in `pool.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainRpcConfig {
    /// RPC URL, e.g. `http://127.0.0.1:8332`.
    pub url: String,
    /// Bitcoin Core cookie file (read on every request, as Core rewrites it on restart).
    #[serde(default)]
    pub cookie_file: Option<PathBuf>,
    /// RPC user (instead of the cookie).
    #[serde(default)]
    pub user: Option<String>,
    /// RPC password (instead of the cookie).
    #[serde(default)]
    pub password: Option<String>,
}

/// Bitcoin Core JSON-RPC client (HTTP Basic auth, cookie or user/password).
pub struct BitcoinRpc {
    config: ChainRpcConfig,
}

/// Bitcoin Core's code for an unknown block.
pub const RPC_INVALID_ADDRESS_OR_KEY: i64 = -5;
/// Largest answer accepted from the node (a full mempool listing can be tens of MiB).
const MAX_BODY: usize = 64 << 20;

impl BitcoinRpc {
    /// A client for `config`.
    pub fn new(config: ChainRpcConfig) -> Self {
        Self { config }
    }

    /// The node's RPC URL.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    fn authorization(&self) -> Result<Option<String>, NodeRpcError> {
        let credentials = match (&self.config.cookie_file, &self.config.user) {
            (Some(path), _) => std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .map_err(|e| NodeRpcError::Credentials {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?,
            (None, Some(user)) => {
                format!("{user}:{}", self.config.password.as_deref().unwrap_or(""))
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )))
    }

    /// Calls `method` with `params`; the `result` of the answer.
    pub async fn call(&self, method: &'static str, params: Value) -> Result<Value, NodeRpcError> {
        let transport = |reason: String| NodeRpcError::Transport {
            url: self.config.url.clone(),
            reason,
        };
        let body = json!({"jsonrpc": "1.0", "id": "hashpool", "method": method, "params": params});
        let mut request = bitreq::post(self.config.url.as_str())
            .with_header("Content-Type", "application/json")
            .with_body(body.to_string())
            .with_timeout(10)
            .with_max_body_size(Some(MAX_BODY));
        if let Some(auth) = self.authorization()? {
            request = request.with_header("Authorization", auth);
        }
        let response = request
            .send_async()
            .await
            .map_err(|e| transport(e.to_string()))?;
        if response.status_code == 401 || response.status_code == 403 {
            return Err(transport(format!(
                "HTTP {}: credentials refused",
                response.status_code
            )));
        }
        let answer: Value = serde_json::from_slice(response.as_bytes())
            .map_err(|e| transport(format!("HTTP {}: not JSON-RPC: {e}", response.status_code)))?;
        match answer.get("error") {
            Some(Value::Null) | None => Ok(answer.get("result").cloned().unwrap_or(Value::Null)),
            Some(err) => Err(NodeRpcError::Rpc {
                method,
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            }),
        }
    }
}
