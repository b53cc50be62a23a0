//! Template provider configuration.

use hashpool_ops_http::config_check::{ConfigProblem, Validate};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Configuration of the devnet template provider (`template-provider.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateProviderConfig {
    /// Directory of the regtest chain and the authority key.
    pub data_dir: PathBuf,
    /// Where pools connect (Noise, Template Distribution Protocol).
    pub listen: SocketAddr,
    /// Where the JSON-RPC subset (Bitcoin Core's, for following blocks) listens; off if unset.
    #[serde(default)]
    pub rpc_listen: Option<SocketAddr>,
    /// Target seconds between blocks.
    #[serde(default = "default_interval")]
    pub block_interval_secs: f64,
    /// Expected hashes per block at start, before the pacer has seen blocks.
    #[serde(default = "default_initial_hashes")]
    pub initial_block_hashes: f64,
    /// Where to serve `/metrics` and `/health` (none if absent).
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Transactions of its own each template carries (0: coinbase-only templates). On first
    /// use the template provider pre-mines 110 blocks whose coinbases these transactions spend.
    #[serde(default)]
    pub mempool_txs: u32,
}

fn default_interval() -> f64 {
    10.0
}

fn default_initial_hashes() -> f64 {
    4_000_000.0
}

impl Validate for TemplateProviderConfig {
    /// Checks every value before the template provider touches anything.
    fn validate(&self) -> Result<(), ConfigProblem> {
        use hashpool_ops_http::config_check::{positive, seconds};
        // Benchmarks use a huge interval for "never a block"; only the Duration range is a limit.
        seconds("block_interval_secs", self.block_interval_secs, 1e12)?;
        positive("initial_block_hashes", self.initial_block_hashes)?;
        hashpool_ops_http::config_check::within("mempool_txs", self.mempool_txs, 0, 1_000)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_key() {
        let mut c = TemplateProviderConfig {
            data_dir: "/tmp/x".into(),
            listen: "127.0.0.1:1".parse().unwrap(),
            rpc_listen: None,
            block_interval_secs: 10.0,
            initial_block_hashes: 1e6,
            metrics_listen: None,
            mempool_txs: 0,
        };
        assert_eq!(c.validate(), Ok(()));
        c.initial_block_hashes = f64::INFINITY;
        assert_eq!(c.validate().unwrap_err().key, "initial_block_hashes");
        c.block_interval_secs = 1e30;
        assert_eq!(c.validate().unwrap_err().key, "block_interval_secs");
    }
}
