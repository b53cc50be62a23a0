//! jd-client configuration (`jd-client.toml`).

use hashpool_ops_http::config_check::{host_port, seconds, ConfigProblem, Validate};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Configuration of the jd-client role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JdClientConfig {
    /// Directory for the authority key translators pin (generated on first run).
    pub data_dir: PathBuf,
    /// Where translators and SV2 miners connect (Noise, SV2 mining).
    pub listen: SocketAddr,
    /// The pool (SV2 mining).
    pub pool_address: String,
    /// The pool's authority public key.
    pub pool_authority: String,
    /// The jd-server (SV2 job declaration).
    pub jd_server_address: String,
    /// The jd-server's authority public key.
    pub jd_server_authority: String,
    /// The miner's own template provider (sv2-tp next to its node, or the devnet's).
    pub tp_address: String,
    /// The template provider's authority public key.
    pub tp_authority: String,
    /// How this client identifies itself to the jd-server.
    #[serde(default = "default_user")]
    pub user_identifier: String,
    /// Seconds between attempts to reach a jd-server that refused or disappeared (meanwhile
    /// new miners mine pool templates).
    #[serde(default = "default_retry")]
    pub jd_server_retry_secs: f64,
    /// Where to serve `/metrics` and `/health` (none if absent).
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
}

fn default_user() -> String {
    "hashpool-jdc".into()
}
fn default_retry() -> f64 {
    30.0
}

impl Validate for JdClientConfig {
    fn validate(&self) -> Result<(), ConfigProblem> {
        host_port("pool_address", &self.pool_address)?;
        host_port("jd_server_address", &self.jd_server_address)?;
        host_port("tp_address", &self.tp_address)?;
        for (key, value) in [
            ("pool_authority", &self.pool_authority),
            ("jd_server_authority", &self.jd_server_authority),
            ("tp_authority", &self.tp_authority),
        ] {
            value
                .parse::<sv2_io::AuthorityPublicKey>()
                .map_err(|e| ConfigProblem::new(key, e))?;
        }
        if self.user_identifier.len() > 255 {
            return Err(ConfigProblem::new("user_identifier", "at most 255 bytes"));
        }
        seconds("jd_server_retry_secs", self.jd_server_retry_secs, 3_600.0).map(|_| ())
    }
}
