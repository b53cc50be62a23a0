//! Template provider configuration.

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
}

fn default_interval() -> f64 {
    10.0
}

fn default_initial_hashes() -> f64 {
    4_000_000.0
}
