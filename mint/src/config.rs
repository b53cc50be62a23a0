//! Mint role configuration.

use crate::MintError;
use hashpool_ops_http::config_check::{ConfigProblem, Validate};
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
    /// PostgreSQL URL of the mint's database (CDK's tables and the epoch ledger), e.g.
    /// `postgresql://mint:secret@db.example.com/hashpool?sslmode=require`; absent: SQLite files in
    /// `data_dir`. Several mint processes (same `mint.seed`) may serve one database.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Largest amount exponent of the ehash keyset (at most 62).
    #[serde(default = "default_max_amount_log2")]
    pub max_amount_log2: u8,
    /// Largest number of signatures committed in one database transaction.
    #[serde(default = "default_signer_batch")]
    pub signer_batch: usize,
    /// Committers: database transactions of signed batches in flight at once (default: 1 on
    /// SQLite, which has one writer; 4 on PostgreSQL).
    #[serde(default)]
    pub signer_workers: Option<u32>,
    /// Threads that sign share requests, each its own batches (the cores the mint may use
    /// for signatures); their batches are committed together.
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
    /// Where the operators' admin API listens (off if absent; keep it on localhost).
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    /// Bearer token of the admin API; absent: generated into `data_dir/admin.token`.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Accept admin requests from other hosts (still with the token).
    #[serde(default)]
    pub admin_allow_remote: bool,
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

    /// Committers of signed batches.
    pub fn signer_workers(&self) -> u32 {
        self.signer_workers
            .unwrap_or(if self.database_url.is_some() { 4 } else { 1 })
    }

    /// The admin API settings.
    pub fn admin(&self) -> hashpool_ops_http::admin::AdminSettings<'_> {
        hashpool_ops_http::admin::AdminSettings {
            listen: self.admin_listen,
            token: self.admin_token.as_deref(),
            allow_remote: self.admin_allow_remote,
        }
    }
}

impl Validate for MintConfig {
    /// Checks every value before the mint touches anything; the error names the key.
    fn validate(&self) -> Result<(), ConfigProblem> {
        use hashpool_ops_http::config_check::{http_url, within};
        for k in &self.pool_keys {
            k.parse::<AuthorityPublicKey>()
                .map_err(|e| ConfigProblem::new("pool_keys", format!("{k:?}: {e}")))?;
        }
        if let Some(url) = &self.public_url {
            http_url("public_url", url)?;
        }
        if let Some(url) = &self.database_url {
            // The error names the problem, never the URL: it may hold a password.
            url.parse::<tokio_postgres::Config>().map_err(|e| {
                ConfigProblem::new("database_url", format!("not a PostgreSQL URL: {e}"))
            })?;
        }
        within(
            "max_amount_log2",
            self.max_amount_log2,
            0,
            ehash_protocol::difficulty::MAX_AMOUNT_LOG2,
        )?;
        within("signer_batch", self.signer_batch, 1, 65_536)?;
        within("sign_threads", self.sign_threads, 1, 1_024)?;
        if let Some(workers) = self.signer_workers {
            within("signer_workers", workers, 1, 64)?;
        }
        within("epoch_blocks", self.epoch_blocks, 1, 1_000_000)?;
        within("accrual_epochs", self.accrual_epochs, 1, 10_000)?;
        within("pool_fee_ppm", self.pool_fee_ppm, 0, 1_000_000)?;
        within(
            "buyback_discount_ppm",
            self.buyback_discount_ppm,
            0,
            1_000_000,
        )?;
        within("buyback_quote_secs", self.buyback_quote_secs, 1, 86_400)?;
        if let Some(amount) = self.devnet_faucet {
            within("devnet_faucet", amount, 1, 1 << 20)?;
        }
        hashpool_ops_http::config_check::admin(self.admin())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MintConfig {
        toml::from_str(
            r#"
            data_dir = "/tmp/x"
            link_listen = "127.0.0.1:18443"
            http_listen = "127.0.0.1:13338"
            pool_keys = ["9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"]
            "#,
        )
        .unwrap()
    }

    /// Makes one value of a good config bad.
    type Spoil = Box<dyn Fn(&mut MintConfig)>;

    #[test]
    fn every_bad_value_names_its_key() {
        assert_eq!(config().validate(), Ok(()));
        let cases: Vec<(&str, Spoil)> = vec![
            ("pool_keys", Box::new(|c| c.pool_keys.push("nope".into()))),
            (
                "public_url",
                Box::new(|c| c.public_url = Some("mint.example.com".into())),
            ),
            ("max_amount_log2", Box::new(|c| c.max_amount_log2 = 63)),
            ("signer_batch", Box::new(|c| c.signer_batch = 0)),
            ("sign_threads", Box::new(|c| c.sign_threads = 0)),
            ("signer_workers", Box::new(|c| c.signer_workers = Some(0))),
            ("epoch_blocks", Box::new(|c| c.epoch_blocks = 0)),
            ("accrual_epochs", Box::new(|c| c.accrual_epochs = 0)),
            ("pool_fee_ppm", Box::new(|c| c.pool_fee_ppm = 1_000_001)),
            ("buyback_quote_secs", Box::new(|c| c.buyback_quote_secs = 0)),
            ("devnet_faucet", Box::new(|c| c.devnet_faucet = Some(0))),
            (
                "database_url",
                Box::new(|c| c.database_url = Some("postgresql://h/db?sslmode=sometimes".into())),
            ),
        ];
        for (key, spoil) in cases {
            let mut c = config();
            spoil(&mut c);
            assert_eq!(c.validate().map_err(|e| e.key), Err(key));
        }
    }
}
