//! jd-server configuration (`jd-server.toml`), also embedded in the pool's `[job_declaration]`.

use crate::{DeclarationPolicy, JdServerError};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use stratum_core::bitcoin::{Network, ScriptBuf};
use sv2_io::AuthorityKeypair;

/// Configuration of a standalone jd-server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JdServerConfig {
    /// Directory for the authority key (generated on first run).
    pub data_dir: PathBuf,
    /// Where job declarator clients connect (Noise, SV2 job declaration).
    pub listen: SocketAddr,
    /// Hex scriptPubKey the pool's coinbases pay (the pool's `payout_script`).
    pub payout_script: String,
    /// The node whose mempool declarations are checked against and pushed blocks go to.
    pub node_rpc: node_rpc::ChainRpcConfig,
    /// Where to serve `/metrics` and `/health` (none if absent).
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Declaration rules and lifetimes.
    #[serde(flatten)]
    pub declaration: DeclarationSettings,
}

/// Declaration rules shared by the standalone and the embedded jd-server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclarationSettings {
    /// `bitcoin`, `testnet4`, `signet` or `regtest` (the subsidy schedule).
    #[serde(default = "default_network")]
    pub network: String,
    /// Seconds a declared job's token stays valid.
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_secs: u64,
    /// Seconds an allocated token may wait for its declaration.
    #[serde(default = "default_allocation_lifetime")]
    pub allocation_lifetime_secs: u64,
    /// Seconds a declaration waits for transactions it was asked to provide.
    #[serde(default = "default_missing_txs_timeout")]
    pub missing_txs_timeout_secs: f64,
}

fn default_network() -> String {
    "regtest".into()
}
fn default_token_lifetime() -> u64 {
    600
}
fn default_allocation_lifetime() -> u64 {
    600
}
fn default_missing_txs_timeout() -> f64 {
    10.0
}

impl Default for DeclarationSettings {
    fn default() -> Self {
        Self {
            network: default_network(),
            token_lifetime_secs: default_token_lifetime(),
            allocation_lifetime_secs: default_allocation_lifetime(),
            missing_txs_timeout_secs: default_missing_txs_timeout(),
        }
    }
}

fn config_err(key: &'static str, reason: impl ToString) -> JdServerError {
    JdServerError::Config {
        key,
        reason: reason.to_string(),
    }
}

impl DeclarationSettings {
    /// The policy for coinbases paying `payout`.
    pub fn policy(&self, payout: ScriptBuf) -> Result<DeclarationPolicy, JdServerError> {
        let network = match self.network.as_str() {
            "bitcoin" | "mainnet" => Network::Bitcoin,
            "testnet4" => Network::Testnet4,
            "testnet" | "testnet3" => Network::Testnet,
            "signet" => Network::Signet,
            "regtest" => Network::Regtest,
            other => return Err(config_err("network", format!("unknown network {other:?}"))),
        };
        if !self.missing_txs_timeout_secs.is_finite() || self.missing_txs_timeout_secs <= 0.0 {
            return Err(config_err(
                "missing_txs_timeout_secs",
                "must be a positive number",
            ));
        }
        if self.token_lifetime_secs == 0 {
            return Err(config_err("token_lifetime_secs", "must be positive"));
        }
        Ok(DeclarationPolicy {
            payout,
            network,
            token_lifetime: Duration::from_secs(self.token_lifetime_secs),
            allocation_lifetime: Duration::from_secs(self.allocation_lifetime_secs.max(1)),
            missing_txs_timeout: Duration::from_secs_f64(self.missing_txs_timeout_secs),
        })
    }
}

impl JdServerConfig {
    /// The policy and the authority key (loaded or generated in `data_dir`).
    pub fn resolve(&self) -> Result<(DeclarationPolicy, AuthorityKeypair), JdServerError> {
        let payout = hex::decode(&self.payout_script)
            .map_err(|e| config_err("payout_script", e))
            .and_then(|b| {
                if b.is_empty() {
                    Err(config_err("payout_script", "empty script"))
                } else {
                    Ok(ScriptBuf::from_bytes(b))
                }
            })?;
        std::fs::create_dir_all(&self.data_dir)
            .map_err(|e| config_err("data_dir", format!("{}: {e}", self.data_dir.display())))?;
        let keys = AuthorityKeypair::load_or_generate(&self.data_dir.join("authority.key"))?;
        Ok((self.declaration.policy(payout)?, keys))
    }
}

impl hashpool_ops_http::config_check::Validate for JdServerConfig {
    /// Checks every value before anything starts; the error names the key.
    fn validate(&self) -> Result<(), hashpool_ops_http::config_check::ConfigProblem> {
        use hashpool_ops_http::config_check::{http_url, ConfigProblem};
        let problem = |e: JdServerError| match e {
            JdServerError::Config { key, reason } => ConfigProblem::new(key, reason),
            other => ConfigProblem::new("data_dir", other),
        };
        let payout =
            hex::decode(&self.payout_script).map_err(|e| ConfigProblem::new("payout_script", e))?;
        if payout.is_empty() {
            return Err(ConfigProblem::new("payout_script", "empty script"));
        }
        self.declaration
            .policy(ScriptBuf::from_bytes(payout))
            .map_err(problem)?;
        http_url("node_rpc.url", &self.node_rpc.url)
    }
}
