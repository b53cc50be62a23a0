//! One config per devnet role, with the authority keys generated into each role's data dir:
//! the same configs run the in-process devnet and the separate-process stack that
//! `hashpool devnet init` writes.

use crate::DevnetOptions;
use hashpool_devnet::TemplateProviderConfig;
use hashpool_jd_client::JdClientConfig;
use hashpool_miner::MinerOptions;
use hashpool_mint::MintConfig;
use hashpool_pool::PoolConfig;
use hashpool_translator::TranslatorConfig;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use sv2_io::AuthorityKeypair;

/// Errors writing the stack's configs.
#[derive(Debug, thiserror::Error)]
pub enum StackConfigError {
    /// A key could not be created or read.
    #[error("authority key: {0}")]
    Key(#[from] sv2_io::KeyError),
    /// A config could not be serialized.
    #[error("cannot serialize {file}: {source}")]
    Serialize {
        /// File.
        file: String,
        /// Cause.
        source: toml::ser::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// Listening ports of the devnet roles.
#[derive(Debug, Clone, Copy)]
pub struct DevnetPorts {
    /// Template provider (SV2 TDP).
    pub template_provider: u16,
    /// Mint link (SV2, pool -> mint).
    pub mint_link: u16,
    /// Mint HTTP (Cashu API).
    pub mint_http: u16,
    /// Pool (SV2 mining).
    pub pool: u16,
    /// Translator (SV1 for miners).
    pub sv1: u16,
    /// Pool `/metrics` and `/health`.
    pub pool_metrics: u16,
    /// Template provider's JSON-RPC (Bitcoin Core subset, for following blocks).
    pub tp_rpc: u16,
    /// Mint `/metrics` and `/health`.
    pub mint_metrics: u16,
    /// Translator `/metrics` and `/health`.
    pub translator_metrics: u16,
    /// Template provider `/metrics` and `/health`.
    pub tp_metrics: u16,
    /// Pool admin API.
    pub pool_admin: u16,
    /// Mint admin API.
    pub mint_admin: u16,
    /// CPU miner `/metrics` and `/health`.
    pub miner_metrics: u16,
    /// The pool's embedded jd-server (SV2 job declaration), with `--job-declaration`.
    pub jd_server: u16,
    /// The jd-client translators connect to, with `--job-declaration`.
    pub jd_client: u16,
    /// The jd-client's `/metrics` and `/health`.
    pub jd_client_metrics: u16,
}

impl DevnetPorts {
    /// The fixed devnet ports the README and config examples use.
    pub const FIXED: Self = Self {
        template_provider: 18442,
        mint_link: 18443,
        mint_http: 13338,
        pool: 13333,
        sv1: 34255,
        pool_metrics: 13334,
        tp_rpc: 18444,
        mint_metrics: 13339,
        translator_metrics: 34256,
        tp_metrics: 18445,
        pool_admin: 13335,
        mint_admin: 13340,
        miner_metrics: 34257,
        jd_server: 18446,
        jd_client: 34258,
        jd_client_metrics: 34259,
    };
    /// Port 0 everywhere: the OS picks (in-process tests).
    pub const EPHEMERAL: Self = Self {
        template_provider: 0,
        mint_link: 0,
        mint_http: 0,
        pool: 0,
        sv1: 0,
        pool_metrics: 0,
        tp_rpc: 0,
        mint_metrics: 0,
        translator_metrics: 0,
        tp_metrics: 0,
        pool_admin: 0,
        mint_admin: 0,
        miner_metrics: 0,
        jd_server: 0,
        jd_client: 0,
        jd_client_metrics: 0,
    };

    /// Ports taken from `base` on.
    pub const COUNT: u16 = 16;
    /// Ports after the stack's that tests with extra roles (a second pool…) may use.
    pub const SPARE: u16 = 8;

    /// [`Self::COUNT`] consecutive ports from `base`.
    pub fn from_base(base: u16) -> Self {
        Self {
            template_provider: base,
            mint_link: base.saturating_add(1),
            mint_http: base.saturating_add(2),
            pool: base.saturating_add(3),
            sv1: base.saturating_add(4),
            pool_metrics: base.saturating_add(5),
            tp_rpc: base.saturating_add(6),
            mint_metrics: base.saturating_add(7),
            translator_metrics: base.saturating_add(8),
            tp_metrics: base.saturating_add(9),
            pool_admin: base.saturating_add(10),
            mint_admin: base.saturating_add(11),
            miner_metrics: base.saturating_add(12),
            jd_server: base.saturating_add(13),
            jd_client: base.saturating_add(14),
            jd_client_metrics: base.saturating_add(15),
        }
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The configs of every devnet role.
#[derive(Debug, Clone)]
pub struct StackConfigs {
    /// Template provider.
    pub template_provider: TemplateProviderConfig,
    /// Mint.
    pub mint: MintConfig,
    /// Pool.
    pub pool: PoolConfig,
    /// Translator.
    pub translator: TranslatorConfig,
    /// One CPU miner.
    pub miner: MinerOptions,
    /// The jd-client between translator and pool (`--job-declaration`).
    pub jd_client: Option<JdClientConfig>,
}

/// HASH the devnet mint's faucet gives per request.
pub const DEVNET_FAUCET_HASH: u64 = 64;

impl StackConfigs {
    /// Where a newcomer clicks: every dashboard, the mint API, and each role's `/metrics` and
    /// `/health`, one `name url` pair per line.
    pub fn urls(&self) -> Vec<(&'static str, String)> {
        let http = |a: Option<std::net::SocketAddr>, path: &str| {
            a.map(|a| format!("http://{a}{path}")).unwrap_or_default()
        };
        let jdc = self.jd_client.as_ref().and_then(|c| c.metrics_listen);
        let (pool, mint, tr, tp) = (
            self.pool.metrics_listen,
            self.mint.metrics_listen,
            self.translator.metrics_listen,
            self.template_provider.metrics_listen,
        );
        vec![
            ("pool dashboard", http(pool, "/")),
            ("wallet page", http(tr, "/wallet")),
            ("miners page", http(tr, "/miners")),
            ("proxy pool page", http(tr, "/pool")),
            (
                "mint API",
                format!("http://{}/v1/info", self.mint.http_listen),
            ),
            (
                "mint epochs",
                format!("http://{}/hashpool/v1/epochs", self.mint.http_listen),
            ),
            ("pool metrics", http(pool, "/metrics")),
            ("pool health", http(pool, "/health")),
            ("mint metrics", http(mint, "/metrics")),
            ("mint health", http(mint, "/health")),
            ("translator metrics", http(tr, "/metrics")),
            ("translator health", http(tr, "/health")),
            ("template provider metrics", http(tp, "/metrics")),
            ("template provider health", http(tp, "/health")),
            (
                "pool admin (token)",
                http(self.pool.admin_listen, "/admin/v1/connections"),
            ),
            (
                "mint admin (token)",
                http(self.mint.admin_listen, "/admin/v1/signing"),
            ),
            ("jd-client metrics", http(jdc, "/metrics")),
            ("jd-client health", http(jdc, "/health")),
        ]
        .into_iter()
        .filter(|(_, u)| !u.is_empty())
        .collect()
    }

    /// Builds the configs, creating (or reusing) the authority keys in the roles' data dirs.
    pub fn generate(o: &DevnetOptions, ports: DevnetPorts) -> Result<Self, StackConfigError> {
        let d = &o.data_dir;
        let key =
            |role: &str| AuthorityKeypair::load_or_generate(&d.join(role).join("authority.key"));
        let (tp_key, mint_key, pool_key) = (key("template-provider")?, key("mint")?, key("pool")?);
        let jd_client = if o.job_declaration {
            let jdc_key = key("jd-client")?;
            Some((
                JdClientConfig {
                    data_dir: d.join("jd-client"),
                    listen: local(ports.jd_client),
                    pool_address: local(ports.pool).to_string(),
                    pool_authority: pool_key.public().to_string(),
                    // The embedded jd-server authenticates with the pool's key.
                    jd_server_address: local(ports.jd_server).to_string(),
                    jd_server_authority: pool_key.public().to_string(),
                    tp_address: local(ports.template_provider).to_string(),
                    tp_authority: tp_key.public().to_string(),
                    user_identifier: "devnet-jdc".into(),
                    jd_server_retry_secs: 5.0,
                    metrics_listen: Some(local(ports.jd_client_metrics)),
                },
                jdc_key.public().to_string(),
            ))
        } else {
            None
        };
        // With job declaration the translator mines through the jd-client.
        let (upstream_address, upstream_authority) = match &jd_client {
            Some((c, key)) => (c.listen.to_string(), key.clone()),
            None => (local(ports.pool).to_string(), pool_key.public().to_string()),
        };
        Ok(Self {
            template_provider: TemplateProviderConfig {
                data_dir: d.join("template-provider"),
                listen: local(ports.template_provider),
                rpc_listen: Some(local(ports.tp_rpc)),
                block_interval_secs: o.block_interval_secs,
                initial_block_hashes: o.initial_block_hashes,
                metrics_listen: Some(local(ports.tp_metrics)),
                mempool_txs: o.mempool_txs,
            },
            mint: MintConfig {
                data_dir: d.join("mint"),
                link_listen: local(ports.mint_link),
                http_listen: local(ports.mint_http),
                public_url: None,
                metrics_listen: Some(local(ports.mint_metrics)),
                pool_keys: vec![pool_key.public().to_string()],
                max_amount_log2: ehash_protocol::difficulty::MAX_AMOUNT_LOG2,
                signer_batch: 512,
                signer_workers: None,
                sign_threads: 2,
                epoch_blocks: o.epoch_blocks,
                accrual_epochs: o.accrual_epochs,
                pool_fee_ppm: o.pool_fee_ppm,
                buyback_discount_ppm: 100_000,
                buyback_quote_secs: o.buyback_quote_secs,
                devnet_faucet: Some(DEVNET_FAUCET_HASH),
                admin_listen: Some(local(ports.mint_admin)),
                admin_token: None,
                admin_allow_remote: false,
                database_url: o.mint_db.clone(),
            },
            pool: PoolConfig {
                data_dir: d.join("pool"),
                listen: local(ports.pool),
                tp_address: local(ports.template_provider).to_string(),
                tp_authority: tp_key.public().to_string(),
                mint_address: local(ports.mint_link).to_string(),
                mint_authority: mint_key.public().to_string(),
                pool_tag: "hashpool".into(),
                payout_script: None,
                share_unit_log2: o.share_unit_log2,
                shares_per_minute: o.shares_per_minute,
                vardiff_interval_secs: o.vardiff_interval_secs,
                metrics_listen: Some(local(ports.pool_metrics)),
                chain_rpc: Some(hashpool_pool::chain_view::ChainRpcConfig {
                    url: format!("http://{}", local(ports.tp_rpc)),
                    cookie_file: Some(
                        d.join("template-provider")
                            .join(hashpool_devnet::rpc::COOKIE_FILE),
                    ),
                    user: None,
                    password: None,
                }),
                maturity: o.maturity,
                block_poll_secs: 1.0,
                fallback_template_providers: Vec::new(),
                fallback_mints: Vec::new(),
                admin_listen: Some(local(ports.pool_admin)),
                admin_token: None,
                admin_allow_remote: false,
                job_declaration: o.job_declaration.then(|| {
                    hashpool_pool::config::PoolJobDeclaration {
                        listen: local(ports.jd_server),
                        declaration: Default::default(),
                    }
                }),
                trusted_jd_servers: Vec::new(),
            },
            translator: TranslatorConfig {
                data_dir: d.join("translator"),
                sv1_listen: local(ports.sv1),
                pool_address: upstream_address,
                pool_authority: upstream_authority,
                fallback_pools: Vec::new(),
                user_identity: "devnet".into(),
                nominal_hashrate: 500_000.0 * (o.miners.max(1) * o.threads.max(1)) as f32,
                mint_url: None,
                // Miners see twice the pool's share rate: about half their shares stay local.
                miner_shares_per_minute: o.shares_per_minute * 2.0,
                miner_vardiff_interval_secs: o.vardiff_interval_secs,
                sv1_line_timeout_secs: 600.0,
                metrics_listen: Some(local(ports.translator_metrics)),
                dashboard_token: None,
            },
            miner: MinerOptions {
                url: local(ports.sv1).to_string(),
                user: "devnet.worker0".into(),
                threads: o.threads.max(1),
                metrics_listen: Some(local(ports.miner_metrics)),
            },
            jd_client: jd_client.map(|(c, _)| c),
        })
    }

    /// Writes `<role>.toml` for every role into `dir`; returns the paths written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, StackConfigError> {
        std::fs::create_dir_all(dir).map_err(|source| StackConfigError::Write {
            path: dir.display().to_string(),
            source,
        })?;
        let mut written = vec![
            write_toml(dir, "template-provider.toml", &self.template_provider)?,
            write_toml(dir, "mint.toml", &self.mint)?,
            write_toml(dir, "pool.toml", &self.pool)?,
            write_toml(dir, "translator.toml", &self.translator)?,
            write_toml(dir, "miner.toml", &self.miner)?,
        ];
        if let Some(jdc) = &self.jd_client {
            written.push(write_toml(dir, "jd-client.toml", jdc)?);
        }
        Ok(written)
    }
}

fn write_toml<T: Serialize>(
    dir: &Path,
    file: &str,
    value: &T,
) -> Result<PathBuf, StackConfigError> {
    let text = toml::to_string(value).map_err(|source| StackConfigError::Serialize {
        file: file.into(),
        source,
    })?;
    let path = dir.join(file);
    let header = "# Written by `hashpool devnet init`. Keys live in each role's data_dir.\n";
    std::fs::write(&path, format!("{header}{text}")).map_err(|source| StackConfigError::Write {
        path: path.display().to_string(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/devnet");
        let _: TemplateProviderConfig =
            crate::config_file::parse(&dir.join("template-provider.toml")).unwrap();
        let mint: MintConfig = crate::config_file::parse(&dir.join("mint.toml")).unwrap();
        let pool: PoolConfig = crate::config_file::parse(&dir.join("pool.toml")).unwrap();
        let _: TranslatorConfig = crate::config_file::parse(&dir.join("translator.toml")).unwrap();
        assert_eq!(mint.epoch_blocks, 5);
        assert!(pool.chain_rpc.is_some());
    }

    #[test]
    fn written_configs_load_back_and_share_keys() {
        let dir =
            std::env::temp_dir().join(format!("hashpool-stack-configs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let o = DevnetOptions {
            data_dir: dir.clone(),
            ..Default::default()
        };
        let c = StackConfigs::generate(&o, DevnetPorts::from_base(40000)).unwrap();
        c.write(&dir).unwrap();
        let pool: PoolConfig = crate::config_file::load(&dir.join("pool.toml")).unwrap();
        let mint: MintConfig = crate::config_file::load(&dir.join("mint.toml")).unwrap();
        let tr: TranslatorConfig = crate::config_file::load(&dir.join("translator.toml")).unwrap();
        let miner: MinerOptions = crate::config_file::load(&dir.join("miner.toml")).unwrap();
        let _: TemplateProviderConfig =
            crate::config_file::load(&dir.join("template-provider.toml")).unwrap();
        assert_eq!(mint.pool_keys, vec![tr.pool_authority.clone()]);
        assert_eq!(pool.listen.port(), 40003);
        assert_eq!(miner.url, tr.sv1_listen.to_string());
        // A second run reuses the keys already on disk.
        let again = StackConfigs::generate(&o, DevnetPorts::from_base(40000)).unwrap();
        assert_eq!(again.pool.mint_authority, pool.mint_authority);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn job_declaration_puts_the_jd_client_between_translator_and_pool() {
        let dir = std::env::temp_dir().join(format!("hashpool-stack-jd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let o = DevnetOptions {
            data_dir: dir.clone(),
            job_declaration: true,
            ..Default::default()
        };
        let written = StackConfigs::generate(&o, DevnetPorts::from_base(40100))
            .unwrap()
            .write(&dir)
            .unwrap();
        assert!(written.iter().any(|p| p.ends_with("jd-client.toml")));
        let pool: PoolConfig = crate::config_file::load(&dir.join("pool.toml")).unwrap();
        let jdc: JdClientConfig = crate::config_file::load(&dir.join("jd-client.toml")).unwrap();
        let tr: TranslatorConfig = crate::config_file::load(&dir.join("translator.toml")).unwrap();
        let jds = pool.job_declaration.expect("a jd-server in the pool");
        assert_eq!(jdc.jd_server_address, jds.listen.to_string());
        assert_eq!(jdc.pool_address, pool.listen.to_string());
        assert_eq!(tr.pool_address, jdc.listen.to_string());
        assert_ne!(
            tr.pool_authority, jdc.pool_authority,
            "translator pins the jd-client"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
