//! Translator configuration.

use hashpool_ops_http::config_check::{ConfigProblem, Validate};
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
    /// Pools to fail over to, in order, when the one in use cannot be reached.
    #[serde(default)]
    pub fallback_pools: Vec<sv2_io::EndpointConfig>,
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

impl TranslatorConfig {
    /// The pools in order of preference: `pool_address` first, then `fallback_pools`.
    pub fn pools(&self) -> Result<Vec<sv2_io::Endpoint>, ConfigProblem> {
        let first = sv2_io::EndpointConfig {
            address: self.pool_address.clone(),
            authority: self.pool_authority.clone(),
        };
        std::iter::once(&first)
            .chain(&self.fallback_pools)
            .map(|p| {
                p.parse().map_err(|e| {
                    ConfigProblem::new("fallback_pools", format!("{}: {e}", p.address))
                })
            })
            .collect()
    }
}

impl Validate for TranslatorConfig {
    /// Checks every value before the translator touches anything; the error names the key.
    fn validate(&self) -> Result<(), ConfigProblem> {
        use hashpool_ops_http::config_check::{host_port, http_url, positive, seconds};
        host_port("pool_address", &self.pool_address)?;
        self.pool_authority
            .parse::<sv2_io::AuthorityPublicKey>()
            .map_err(|e| ConfigProblem::new("pool_authority", e))?;
        for p in &self.fallback_pools {
            host_port("fallback_pools", &p.address)?;
            p.parse()
                .map_err(|e| ConfigProblem::new("fallback_pools", format!("{}: {e}", p.address)))?;
        }
        if self.user_identity.len() > 255 {
            return Err(ConfigProblem::new(
                "user_identity",
                "at most 255 bytes (an SV2 STR0_255)",
            ));
        }
        // Zero is allowed: "unknown", the pool starts from its easiest difficulty.
        if !(self.nominal_hashrate.is_finite() && self.nominal_hashrate >= 0.0) {
            return Err(ConfigProblem::new(
                "nominal_hashrate",
                format!(
                    "must be a number of hashes per second, got {}",
                    self.nominal_hashrate
                ),
            ));
        }
        positive("miner_shares_per_minute", self.miner_shares_per_minute)?;
        seconds(
            "miner_vardiff_interval_secs",
            self.miner_vardiff_interval_secs,
            3_600.0,
        )?;
        seconds(
            "sv1_line_timeout_secs",
            self.sv1_line_timeout_secs,
            86_400.0,
        )?;
        if let Some(url) = &self.mint_url {
            http_url("mint_url", url)?;
        }
        match (&self.metrics_listen, &self.dashboard_token) {
            (_, Some(t)) if t.len() < 16 => Err(ConfigProblem::new(
                "dashboard_token",
                "must be at least 16 characters",
            )),
            (Some(addr), None) if !addr.ip().is_loopback() => Err(ConfigProblem::new(
                "dashboard_token",
                "required when metrics_listen is not a loopback address (the wallet page can spend ehash)",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TranslatorConfig {
        toml::from_str(
            r#"
            data_dir = "/tmp/x"
            sv1_listen = "0.0.0.0:34255"
            pool_address = "pool.example.com:3333"
            pool_authority = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"
            metrics_listen = "127.0.0.1:34256"
            "#,
        )
        .unwrap()
    }

    /// Makes one value of a good config bad.
    type Spoil = Box<dyn Fn(&mut TranslatorConfig)>;

    #[test]
    fn every_bad_value_names_its_key() {
        assert_eq!(config().validate(), Ok(()));
        let cases: Vec<(&str, Spoil)> = vec![
            ("pool_address", Box::new(|c| c.pool_address = "pool".into())),
            (
                "pool_authority",
                Box::new(|c| c.pool_authority = "x".into()),
            ),
            (
                "user_identity",
                Box::new(|c| c.user_identity = "u".repeat(256)),
            ),
            ("nominal_hashrate", Box::new(|c| c.nominal_hashrate = -1.0)),
            (
                "sv1_line_timeout_secs",
                Box::new(|c| c.sv1_line_timeout_secs = 1e30),
            ),
            (
                "mint_url",
                Box::new(|c| c.mint_url = Some("mint:3338".into())),
            ),
            (
                "dashboard_token",
                Box::new(|c| c.metrics_listen = Some("0.0.0.0:34256".parse().unwrap())),
            ),
            (
                "dashboard_token",
                Box::new(|c| c.dashboard_token = Some("short".into())),
            ),
        ];
        for (key, spoil) in cases {
            let mut c = config();
            spoil(&mut c);
            assert_eq!(c.validate().map_err(|e| e.key), Err(key));
        }
        let mut exposed = config();
        exposed.metrics_listen = Some("0.0.0.0:34256".parse().unwrap());
        exposed.dashboard_token = Some("a-long-enough-token".into());
        assert_eq!(exposed.validate(), Ok(()));
    }
}
