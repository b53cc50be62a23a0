//! Translator configuration.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Configuration of the translator role (`translator.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranslatorConfig {
    /// Directory of the wallet database and seed.
    pub data_dir: PathBuf,
    /// Where SV1 miners connect.
    pub sv1_listen: SocketAddr,
    /// Pool address.
    pub pool_address: String,
    /// Pool authority public key (the translator refuses any other pool).
    pub pool_authority: String,
    /// User identity sent upstream.
    #[serde(default = "default_user")]
    pub user_identity: String,
    /// Expected hashrate of all miners behind this translator (H/s), for the first target.
    #[serde(default = "default_hashrate")]
    pub nominal_hashrate: f32,
    /// Shares per minute vardiff aims at for each SV1 miner.
    #[serde(default = "default_miner_spm")]
    pub miner_shares_per_minute: f64,
    /// Seconds between a miner's vardiff retargets.
    #[serde(default = "default_miner_vardiff_secs")]
    pub miner_vardiff_interval_secs: f64,
    /// Seconds an SV1 miner may take to send a complete line (idle or slow-loris miners are
    /// dropped).
    #[serde(default = "default_sv1_timeout")]
    pub sv1_line_timeout_secs: f64,
    /// Mint HTTP URL override (default: the URL the pool announces).
    #[serde(default)]
    pub mint_url: Option<String>,
    /// Where to serve `/metrics`, `/health` and the dashboard with the wallet page (none if
    /// absent). Keep it on localhost unless `dashboard_token` is set.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer token the dashboard's API requires (`?token=` in the page URL). Required when
    /// `metrics_listen` is not a loopback address: the wallet page can spend ehash.
    #[serde(default)]
    pub dashboard_token: Option<String>,
}

fn default_user() -> String {
    "hashpool-translator".into()
}
fn default_hashrate() -> f32 {
    1_000_000.0
}
fn default_miner_spm() -> f64 {
    20.0
}
fn default_miner_vardiff_secs() -> f64 {
    30.0
}
fn default_sv1_timeout() -> f64 {
    600.0
}
