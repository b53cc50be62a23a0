//! Pool role configuration.

use hashpool_ops_http::config_check::{ConfigProblem, Validate};
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
    /// Template providers to fail over to, in order, when the one in use cannot be reached.
    #[serde(default)]
    pub fallback_template_providers: Vec<sv2_io::EndpointConfig>,
    /// Further endpoints of the mint (same mint key or another mint process on the same
    /// database), in order, for when the one in use cannot be reached.
    #[serde(default)]
    pub fallback_mints: Vec<sv2_io::EndpointConfig>,
    /// Where the operators' admin API listens (off if absent; keep it on localhost).
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    /// Bearer token of the admin API; absent: generated into `data_dir/admin.token`.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Accept admin requests from other hosts (still with the token).
    #[serde(default)]
    pub admin_allow_remote: bool,
    /// A jd-server inside the pool process (job declaration; needs `chain_rpc`).
    #[serde(default)]
    pub job_declaration: Option<PoolJobDeclaration>,
    /// Authority keys of standalone jd-servers whose declared-job tokens the pool accepts.
    #[serde(default)]
    pub trusted_jd_servers: Vec<String>,
}

/// `[job_declaration]`: the embedded jd-server (it signs with the pool's authority key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolJobDeclaration {
    /// Where job declarator clients connect (Noise, SV2 job declaration).
    pub listen: SocketAddr,
    /// Declaration rules and lifetimes.
    #[serde(flatten)]
    pub declaration: hashpool_jd_server::config::DeclarationSettings,
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

/// Longest coinbase tag: the scriptSig holds at most 100 bytes, of which the BIP34 height and
/// the 16-byte extranonce take up to 21.
const MAX_POOL_TAG: usize = 64;

/// `first` then `rest`, keys parsed, each address checked; problems name `key`.
fn endpoint_list(
    key: &'static str,
    first: sv2_io::EndpointConfig,
    rest: &[sv2_io::EndpointConfig],
) -> Result<Vec<sv2_io::Endpoint>, ConfigProblem> {
    std::iter::once(&first)
        .chain(rest)
        .map(|e| {
            hashpool_ops_http::config_check::host_port(key, &e.address)?;
            e.parse()
                .map_err(|err| ConfigProblem::new(key, format!("{}: {err}", e.address)))
        })
        .collect()
}

impl PoolConfig {
    /// Template providers in order: `tp_address` first, then `fallback_template_providers`.
    pub fn template_providers(&self) -> Result<Vec<sv2_io::Endpoint>, ConfigProblem> {
        let first = sv2_io::EndpointConfig {
            address: self.tp_address.clone(),
            authority: self.tp_authority.clone(),
        };
        endpoint_list(
            "fallback_template_providers",
            first,
            &self.fallback_template_providers,
        )
    }

    /// Mint endpoints in order: `mint_address` first, then `fallback_mints`.
    pub fn mints(&self) -> Result<Vec<sv2_io::Endpoint>, ConfigProblem> {
        let first = sv2_io::EndpointConfig {
            address: self.mint_address.clone(),
            authority: self.mint_authority.clone(),
        };
        endpoint_list("fallback_mints", first, &self.fallback_mints)
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

impl Validate for PoolConfig {
    /// Checks every value before the pool touches anything; the error names the key.
    fn validate(&self) -> Result<(), ConfigProblem> {
        use hashpool_ops_http::config_check::{host_port, http_url, positive, seconds, within};
        ehash_protocol::ShareUnit::new(self.share_unit_log2)
            .map_err(|e| ConfigProblem::new("share_unit_log2", e))?;
        host_port("tp_address", &self.tp_address)?;
        host_port("mint_address", &self.mint_address)?;
        self.tp_authority
            .parse::<sv2_io::AuthorityPublicKey>()
            .map_err(|e| ConfigProblem::new("tp_authority", e))?;
        self.mint_authority
            .parse::<sv2_io::AuthorityPublicKey>()
            .map_err(|e| ConfigProblem::new("mint_authority", e))?;
        self.template_providers()?;
        self.mints()?;
        if self.pool_tag.len() > MAX_POOL_TAG {
            return Err(ConfigProblem::new(
                "pool_tag",
                format!("at most {MAX_POOL_TAG} bytes fit in the coinbase"),
            ));
        }
        if let Some(script) = &self.payout_script {
            let bytes = hex::decode(script).map_err(|e| ConfigProblem::new("payout_script", e))?;
            if bytes.is_empty() {
                return Err(ConfigProblem::new(
                    "payout_script",
                    "is empty (anyone could spend the reward); remove the key to pay the pool's own key",
                ));
            }
        }
        positive("shares_per_minute", self.shares_per_minute)?;
        seconds("vardiff_interval_secs", self.vardiff_interval_secs, 3_600.0)?;
        seconds("block_poll_secs", self.block_poll_secs, 3_600.0)?;
        within("maturity", self.maturity, 1, 10_000)?;
        if let Some(rpc) = &self.chain_rpc {
            http_url("chain_rpc.url", &rpc.url)?;
            match (&rpc.cookie_file, &rpc.user, &rpc.password) {
                (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                    return Err(ConfigProblem::new(
                        "chain_rpc.cookie_file",
                        "set either cookie_file or user/password, not both",
                    ))
                }
                (None, Some(_), None) | (None, None, Some(_)) => {
                    return Err(ConfigProblem::new(
                        "chain_rpc.user",
                        "user and password go together",
                    ))
                }
                (None, None, None) => {
                    return Err(ConfigProblem::new(
                        "chain_rpc",
                        "needs cookie_file or user and password",
                    ))
                }
                _ => {}
            }
        }
        if let Some(jd) = &self.job_declaration {
            if self.chain_rpc.is_none() {
                return Err(ConfigProblem::new(
                    "job_declaration",
                    "the jd-server checks declarations against the node: set chain_rpc",
                ));
            }
            jd.declaration
                .policy(stratum_core::bitcoin::ScriptBuf::new())
                .map_err(|e| match e {
                    hashpool_jd_server::JdServerError::Config { key, reason } => {
                        ConfigProblem::new("job_declaration", format!("{key}: {reason}"))
                    }
                    other => ConfigProblem::new("job_declaration", other),
                })?;
        }
        for key in &self.trusted_jd_servers {
            key.parse::<sv2_io::AuthorityPublicKey>()
                .map_err(|e| ConfigProblem::new("trusted_jd_servers", format!("{key}: {e}")))?;
        }
        hashpool_ops_http::config_check::admin(self.admin())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PoolConfig {
        toml::from_str(
            r#"
            data_dir = "/tmp/x"
            listen = "127.0.0.1:3333"
            tp_address = "127.0.0.1:8442"
            tp_authority = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"
            mint_address = "mint.example.com:8443"
            mint_authority = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"
            share_unit_log2 = 32
            "#,
        )
        .unwrap()
    }

    /// Makes one value of a good config bad.
    type Spoil = Box<dyn Fn(&mut PoolConfig)>;

    #[test]
    fn every_bad_value_names_its_key() {
        assert_eq!(config().validate(), Ok(()));
        let cases: Vec<(&str, Spoil)> = vec![
            ("tp_address", Box::new(|c| c.tp_address = "nohost".into())),
            (
                "mint_authority",
                Box::new(|c| c.mint_authority = "xx".into()),
            ),
            ("pool_tag", Box::new(|c| c.pool_tag = "t".repeat(65))),
            (
                "payout_script",
                Box::new(|c| c.payout_script = Some(String::new())),
            ),
            (
                "payout_script",
                Box::new(|c| c.payout_script = Some("zz".into())),
            ),
            (
                "vardiff_interval_secs",
                Box::new(|c| c.vardiff_interval_secs = 1e30),
            ),
            (
                "block_poll_secs",
                Box::new(|c| c.block_poll_secs = f64::NAN),
            ),
            ("maturity", Box::new(|c| c.maturity = 0)),
            ("share_unit_log2", Box::new(|c| c.share_unit_log2 = 255)),
            (
                "chain_rpc.user",
                Box::new(|c| {
                    c.chain_rpc = Some(crate::chain_view::ChainRpcConfig {
                        url: "http://127.0.0.1:8332".into(),
                        cookie_file: None,
                        user: Some("u".into()),
                        password: None,
                    })
                }),
            ),
        ];
        for (key, spoil) in cases {
            let mut c = config();
            spoil(&mut c);
            assert_eq!(c.validate().map_err(|e| e.key), Err(key));
        }
    }
}
