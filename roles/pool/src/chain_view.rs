//! Where the pool learns what became of the blocks it found: Bitcoin Core's JSON-RPC in
//! production, the devnet template provider's subset of the same RPC (answered from
//! libbitcoinkernel) on devnet — one client, behind the [`ChainView`] trait.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::future::Future;
use std::path::PathBuf;

/// Errors talking to the node.
#[derive(Debug, thiserror::Error)]
pub enum ChainViewError {
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

/// A found block's place in the node's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPlace {
    /// Height.
    pub height: u32,
    /// Confirmations in the best chain, or -1 when the block is not in it.
    pub confirmations: i64,
}

/// Read access to the chain the pool mines on.
pub trait ChainView: Send + Sync + 'static {
    /// Where block `hash` (internal byte order) stands; `None` if the node does not know it.
    fn block_place(
        &self,
        hash: [u8; 32],
    ) -> impl Future<Output = Result<Option<BlockPlace>, ChainViewError>> + Send;
    /// Height of the node's best chain.
    fn tip_height(&self) -> impl Future<Output = Result<u32, ChainViewError>> + Send;
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
const RPC_INVALID_ADDRESS_OR_KEY: i64 = -5;
/// Largest answer accepted from the node.
const MAX_BODY: usize = 1 << 20;

impl BitcoinRpc {
    /// A client for `config`.
    pub fn new(config: ChainRpcConfig) -> Self {
        Self { config }
    }

    fn authorization(&self) -> Result<Option<String>, ChainViewError> {
        let credentials = match (&self.config.cookie_file, &self.config.user) {
            (Some(path), _) => std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .map_err(|e| ChainViewError::Credentials {
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
    pub async fn call(&self, method: &'static str, params: Value) -> Result<Value, ChainViewError> {
        let transport = |reason: String| ChainViewError::Transport {
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
            Some(err) => Err(ChainViewError::Rpc {
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

impl ChainView for BitcoinRpc {
    async fn block_place(&self, hash: [u8; 32]) -> Result<Option<BlockPlace>, ChainViewError> {
        let mut shown = hash;
        shown.reverse();
        match self
            .call("getblockheader", json!([hex::encode(shown), true]))
            .await
        {
            Ok(header) => {
                let field = |name: &str| header.get(name).and_then(Value::as_i64);
                match (field("height"), field("confirmations")) {
                    (Some(height), Some(confirmations)) => Ok(Some(BlockPlace {
                        height: u32::try_from(height).unwrap_or(0),
                        confirmations,
                    })),
                    _ => Err(ChainViewError::Transport {
                        url: self.config.url.clone(),
                        reason: "getblockheader answer lacks height or confirmations".into(),
                    }),
                }
            }
            Err(ChainViewError::Rpc { code, .. }) if code == RPC_INVALID_ADDRESS_OR_KEY => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn tip_height(&self) -> Result<u32, ChainViewError> {
        let v = self.call("getblockcount", json!([])).await?;
        v.as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .ok_or_else(|| ChainViewError::Transport {
                url: self.config.url.clone(),
                reason: format!("getblockcount answered {v}"),
            })
    }
}
