//! Pool role configuration.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Configuration of the pool role (`pool.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Directory for the authority key.
    pub data_dir: PathBuf,
    /// Where translators and miners connect (Noise, SV2 mining protocol).
    pub listen: SocketAddr,
    /// Template provider address.
    pub tp_address: String,
    /// Template provider authority public key.
    pub tp_authority: String,
    /// Mint link address.
    pub mint_address: String,
    /// Mint authority public key.
    pub mint_authority: String,
    /// Tag written into coinbases (`Sv2/<tag>//`).
    #[serde(default = "default_tag")]
    pub pool_tag: String,
    /// Hex scriptPubKey paid by coinbases; default: P2TR of the pool's authority key.
    #[serde(default)]
    pub payout_script: Option<String>,
    /// log2 of expected hashes per HASH (32 = difficulty 1).
    pub share_unit_log2: u8,
    /// Shares per minute vardiff aims at, per channel.
    #[serde(default = "default_spm")]
    pub shares_per_minute: f64,
    /// Seconds between vardiff checks.
    #[serde(default = "default_vardiff_secs")]
    pub vardiff_interval_secs: f64,
    /// Where to serve `/metrics` and `/health` (none if absent).
    #[serde(default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The node's JSON-RPC, to follow found blocks to maturity (Bitcoin Core, or the devnet
    /// template provider's RPC).
    #[serde(default)]
    pub chain_rpc: Option<crate::chain_view::ChainRpcConfig>,
    /// Confirmations after which a found block's reward counts as matured.
    #[serde(default = "default_maturity")]
    pub maturity: u32,
    /// Seconds between checks of found blocks.
    #[serde(default = "default_block_poll_secs")]
    pub block_poll_secs: f64,
}

fn default_maturity() -> u32 {
    100
}
fn default_block_poll_secs() -> f64 {
    10.0
}

fn default_tag() -> String {
    "hashpool".into()
}
fn default_spm() -> f64 {
    20.0
}
fn default_vardiff_secs() -> f64 {
    5.0
}
