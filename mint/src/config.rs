//! Mint role configuration.

use crate::MintError;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use sv2_io::AuthorityPublicKey;

/// Configuration of the mint role (`mint.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintConfig {
    /// Directory for the database, the seed and the authority key.
    pub data_dir: PathBuf,
    /// Where pools connect (Noise).
    pub link_listen: SocketAddr,
    /// Where the Cashu HTTP API listens.
    pub http_listen: SocketAddr,
    /// Public base URL of the HTTP API, if not `http://<http_listen>`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Where to serve `/metrics` and `/health` (none if absent).
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Authority public keys of the pools allowed to request signatures.
    pub pool_keys: Vec<String>,
    /// Largest amount exponent of the ehash keyset (at most 62).
    #[serde(default = "default_max_amount_log2")]
    pub max_amount_log2: u8,
    /// Largest number of signatures committed in one database transaction.
    #[serde(default = "default_signer_batch")]
    pub signer_batch: usize,
    /// Threads a signing batch is spread over (the cores the mint may use for signatures).
    #[serde(default = "default_sign_threads")]
    pub sign_threads: u32,
    /// Network blocks per epoch (one ehash keyset each).
    #[serde(default = "default_epoch_blocks")]
    pub epoch_blocks: u32,
    /// Epochs a found block pays, in proportion to their issued ehash (W).
    #[serde(default = "default_accrual_epochs")]
    pub accrual_epochs: u32,
    /// Pool fee taken from each block reward before it is shared, parts per million.
    #[serde(default = "default_pool_fee_ppm")]
    pub pool_fee_ppm: u32,
    /// Discount off the expected value the mint pays when buying back non-final ehash, ppm.
    #[serde(default = "default_buyback_discount_ppm")]
    pub buyback_discount_ppm: u32,
    /// Seconds a buyback quote stays valid.
    #[serde(default = "default_buyback_quote_secs")]
    pub buyback_quote_secs: u64,
    /// Devnet only: HASH the faucet gives per request (`/hashpool/v1/faucet`); absent = no
    /// faucet. Never set it on a mint whose ehash is worth anything.
    #[serde(default)]
    pub devnet_faucet: Option<u64>,
}

fn default_buyback_discount_ppm() -> u32 {
    100_000
}

fn default_buyback_quote_secs() -> u64 {
    60
}

fn default_sign_threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

fn default_epoch_blocks() -> u32 {
    144
}

fn default_accrual_epochs() -> u32 {
    2
}

fn default_pool_fee_ppm() -> u32 {
    20_000
}

fn default_max_amount_log2() -> u8 {
    ehash_protocol::difficulty::MAX_AMOUNT_LOG2
}

fn default_signer_batch() -> usize {
    512
}

impl MintConfig {
    /// The epoch parameters.
    pub fn epochs(&self) -> crate::epochs::EpochConfig {
        crate::epochs::EpochConfig {
            epoch_blocks: self.epoch_blocks,
            accrual_epochs: self.accrual_epochs,
            pool_fee_ppm: self.pool_fee_ppm,
        }
    }

    /// Parses `pool_keys`.
    pub fn allowed_pools(&self) -> Result<Vec<AuthorityPublicKey>, MintError> {
        self.pool_keys
            .iter()
            .map(|k| {
                k.parse().map_err(|e: sv2_io::KeyError| MintError::Config {
                    key: "pool_keys",
                    reason: e.to_string(),
                })
            })
            .collect()
    }
}
