//! The pool role: an SV2 mining server (Noise responder) that takes work from a template
//! provider, validates shares with `channels_sv2`, submits blocks, and pays every accepted
//! share carrying a blinded message with a blind signature from the mint.

pub mod admin;
pub mod admission;
pub mod board;
pub mod chain_view;
pub mod channel;
pub mod config;
pub mod custom_jobs;
pub mod dashboard;
pub mod downstream;
pub mod found_blocks;
pub mod journal;
pub mod known_txs;
pub mod metrics;
pub mod mint_client;
mod replies;
mod share_race;
pub mod shares;
mod sign_batches;
mod sign_requests;
pub mod stats;
pub mod tp_client;
pub mod work;

pub use config::PoolConfig;
pub use stats::{PoolSnapshot, PoolStats};

use ehash_protocol::ShareUnit;
use hashpool_ops_http::config_check::Validate;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stratum_core::bitcoin::ScriptBuf;
use stratum_core::channels_sv2::extranonce_manager::ExtranonceAllocator;
use stratum_core::template_distribution_sv2::SubmitSolutionOwned;
use sv2_io::{AuthorityKeypair, AuthorityPublicKey};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Errors starting the pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Invalid configuration value.
    #[error("invalid pool config `{key}`: {reason}")]
    Config {
        /// Key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// Key file.
    #[error(transparent)]
    Key(#[from] sv2_io::KeyError),
    /// Listener.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Share journal.
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    /// Metrics endpoint.
    #[error(transparent)]
    Metrics(#[from] hashpool_ops_http::OpsHttpError),
    /// Found-block store.
    #[error(transparent)]
    Blocks(#[from] found_blocks::BlockStoreError),
}

/// Everything connection handlers share.
pub struct PoolContext {
    /// Share unit (HASH per expected hashes).
    pub unit: ShareUnit,
    /// Coinbase payout script.
    pub payout: ScriptBuf,
    /// Current work.
    pub work: Arc<work::WorkState>,
    /// Mint link.
    pub mint: Arc<mint_client::MintLink>,
    /// Counters.
    pub stats: Arc<PoolStats>,
    /// Block solutions to the TP.
    pub solutions: mpsc::Sender<SubmitSolutionOwned>,
    /// Found blocks to record and follow.
    pub found_blocks: mpsc::Sender<found_blocks::NewBlock>,
    /// Extranonce prefixes.
    pub allocator: Mutex<ExtranonceAllocator>,
    /// Next channel id.
    pub next_channel_id: AtomicU32,
    /// Vardiff target.
    pub shares_per_minute: f64,
    /// Vardiff interval.
    pub vardiff_interval: Duration,
    /// Coinbase tag.
    pub pool_tag: String,
    /// Open channels and hashrate, for the dashboard.
    pub board: Arc<board::MiningBoard>,
    /// Next downstream connection number.
    pub next_connection: std::sync::atomic::AtomicU64,
    /// Live connections and bans.
    pub admission: Arc<admission::Admission>,
    /// The jd-servers whose declared-job tokens custom jobs must carry (none: no custom jobs).
    pub jd_tokens: hashpool_jd_server::TokenVerifier,
}

/// File name of the share journal in the pool's data dir.
pub const JOURNAL_FILE: &str = "shares.sqlite";

/// A running pool.
pub struct PoolHandle {
    /// Listening address.
    pub addr: SocketAddr,
    /// Authority key translators pin.
    pub authority: AuthorityPublicKey,
    /// Counters.
    pub stats: Arc<PoolStats>,
    /// Mint link.
    pub mint: Arc<mint_client::MintLink>,
    /// Where `/metrics` and `/health` are served, if configured.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the admin API is served, if configured.
    pub admin_addr: Option<SocketAddr>,
    /// Blocks found, followed to maturity.
    pub blocks: Arc<found_blocks::BlockStore>,
    /// The work from the template provider (templates, tips, their transactions).
    pub work: Arc<work::WorkState>,
    /// The embedded jd-server, if `[job_declaration]` is configured.
    pub jd_server: Option<hashpool_jd_server::JdServerHandle>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PoolHandle {
    /// Stops listening and drops all links.
    pub async fn shutdown(self) {
        // Shares in flight keep their claim: the journal replays them at the next start.
        if tokio::time::timeout(Duration::from_secs(5), self.mint.journal_all())
            .await
            .is_err()
        {
            tracing::error!(
                "share journal did not flush within 5 s; requests in flight not journaled"
            );
        }
        self.shutdown.cancel();
        if let Some(jd) = self.jd_server {
            jd.shutdown().await;
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

impl From<hashpool_ops_http::config_check::ConfigProblem> for PoolError {
    fn from(p: hashpool_ops_http::config_check::ConfigProblem) -> Self {
        PoolError::Config {
            key: p.key,
            reason: p.reason,
        }
    }
}

fn config_err(key: &'static str, reason: impl ToString) -> PoolError {
    PoolError::Config {
        key,
        reason: reason.to_string(),
    }
}

/// Starts the pool.
pub async fn start(config: PoolConfig) -> Result<PoolHandle, PoolError> {
    config.validate()?;
    let keys = AuthorityKeypair::load_or_generate(&config.data_dir.join("authority.key"))?;
    let unit =
        ShareUnit::new(config.share_unit_log2).map_err(|e| config_err("share_unit_log2", e))?;
    let template_providers = config.template_providers()?;
    let mints = config.mints()?;
    let payout = match &config.payout_script {
        Some(h) => {
            ScriptBuf::from_bytes(hex::decode(h).map_err(|e| config_err("payout_script", e))?)
        }
        None => {
            // P2TR paying the pool's own key: spendable by the operator, nothing to configure.
            let mut s = vec![0x51, 0x20];
            s.extend_from_slice(&keys.public().0);
            ScriptBuf::from_bytes(s)
        }
    };
    let allocator = ExtranonceAllocator::new(vec![], 16, 65_536)
        .map_err(|e| config_err("extranonce", format!("{e:?}")))?;
    let stats = Arc::new(PoolStats::default());
    let work = Arc::new(work::WorkState::new());
    let board = Arc::new(board::MiningBoard::new(unit.unit_log2()));
    let admission = Arc::new(admission::Admission::default());
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| config_err("data_dir", format!("{}: {e}", config.data_dir.display())))?;
    let (journal, open_entries) = journal::ShareJournal::open(&config.data_dir.join(JOURNAL_FILE))?;
    let blocks = Arc::new(found_blocks::BlockStore::open(
        &config.data_dir.join(found_blocks::BLOCKS_FILE),
    )?);
    let mint = mint_client::MintLink::new(stats.clone(), journal, blocks.clone());
    if !open_entries.is_empty() {
        tracing::info!(
            open = open_entries.len(),
            "replaying journaled shares to the mint"
        );
    }
    for e in open_entries {
        // The journal's primary key is B_: no two entries claim the same one.
        mint.request(mint_client::PendingSign {
            reply: None,
            channel_id: 0,
            sequence_number: 0,
            amount: e.amount,
            keyset_id: e.keyset_id,
            blinded: e.blinded,
            replay: true,
            journaled: true,
        });
    }
    let (solutions, solutions_rx) = mpsc::channel(64);
    let (found_tx, found_rx) = mpsc::channel(64);
    let mut trusted: Vec<[u8; 32]> = config
        .trusted_jd_servers
        .iter()
        .map(|k| k.parse::<AuthorityPublicKey>().map(|k| k.0))
        .collect::<Result<_, _>>()?;
    if config.job_declaration.is_some() {
        trusted.push(keys.public().0);
    }
    let jd_tokens = hashpool_jd_server::TokenVerifier::new(&trusted)
        .map_err(|e| config_err("trusted_jd_servers", e))?;
    let ctx = Arc::new(PoolContext {
        unit,
        payout: payout.clone(),
        work: work.clone(),
        mint: mint.clone(),
        stats: stats.clone(),
        solutions,
        found_blocks: found_tx,
        allocator: Mutex::new(allocator),
        next_channel_id: AtomicU32::new(1),
        shares_per_minute: config.shares_per_minute,
        vardiff_interval: Duration::from_secs_f64(config.vardiff_interval_secs),
        pool_tag: config.pool_tag.clone(),
        board: board.clone(),
        next_connection: std::sync::atomic::AtomicU64::new(1),
        admission: admission.clone(),
        jd_tokens,
    });
    let (listener, addr) = sv2_io::bind(config.listen)
        .await
        .map_err(|source| PoolError::Bind {
            addr: config.listen,
            source,
        })?;
    let shutdown = CancellationToken::new();
    // The TP only needs the outputs' size for CoinbaseOutputConstraints; values come per template.
    let outputs = channel::reward_outputs(0, &payout);
    let tasks = vec![
        tokio::spawn(found_blocks::follow(
            blocks.clone(),
            config.chain_rpc.clone().map(chain_view::BitcoinRpc::new),
            mint.clone(),
            stats.clone(),
            found_blocks::FollowPolicy {
                maturity: config.maturity,
                poll: Duration::from_secs_f64(config.block_poll_secs),
            },
            found_rx,
            shutdown.clone(),
        )),
        tokio::spawn(board::sample_loop(
            board.clone(),
            stats.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(forward_tips(
            work.clone(),
            mint.clone(),
            unit.unit_log2(),
            shutdown.clone(),
        )),
        tokio::spawn(tp_client::run(
            sv2_io::Failover::new(
                "template provider",
                template_providers,
                stats.tp_failover.clone(),
            ),
            outputs,
            work.clone(),
            stats.clone(),
            solutions_rx,
            shutdown.clone(),
        )),
        tokio::spawn(mint.clone().run(
            sv2_io::Failover::new("mint", mints, stats.mint_failover.clone()),
            keys.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(mint.clone().journal_sweep(shutdown.clone())),
        tokio::spawn(sv2_io::serve(
            listener,
            keys.clone(),
            "pool",
            shutdown.clone(),
            move |r, s, peer| downstream::serve(ctx.clone(), r, s, peer),
        )),
    ];
    let mut tasks = tasks;
    let jd_server = match (&config.job_declaration, &config.chain_rpc) {
        (Some(jd), Some(rpc)) => {
            let policy = jd
                .declaration
                .policy(payout.clone())
                .map_err(|e| config_err("job_declaration", e))?;
            let declarator = hashpool_jd_server::JobDeclarator::new(
                policy,
                &keys,
                chain_view::BitcoinRpc::new(rpc.clone()),
            )
            .map_err(|e| config_err("job_declaration", e))?
            .with_transactions_from(work.clone());
            Some(
                hashpool_jd_server::serve(
                    jd.listen,
                    keys.clone(),
                    Arc::new(declarator),
                    shutdown.child_token(),
                )
                .await
                .map_err(|e| config_err("job_declaration.listen", e))?,
            )
        }
        _ => None,
    };
    let metrics_addr = hashpool_ops_http::serve_configured(
        config.metrics_listen,
        || {
            metrics::registry(
                stats.clone(),
                board.clone(),
                jd_server.as_ref().map(|j| j.stats.clone()),
            )
        },
        || metrics::health(stats.clone()),
        || {
            dashboard::router(Arc::new(dashboard::Dashboard::new(
                stats.clone(),
                board.clone(),
                blocks.clone(),
                mint.clone(),
                dashboard::ServiceFacts {
                    node_configured: config.chain_rpc.is_some(),
                    maturity: config.maturity,
                },
            )))
        },
        shutdown.clone(),
        &mut tasks,
    )
    .await?;
    let admin_addr = hashpool_ops_http::admin::serve_configured(
        config.admin(),
        &config.data_dir,
        || {
            admin::router(Arc::new(admin::PoolAdmin {
                admission,
                board: board.clone(),
            }))
        },
        shutdown.clone(),
        &mut tasks,
    )
    .await
    .map_err(|e| config_err("admin_listen", e))?;
    tracing::info!(%addr, authority = %keys.public(), ?metrics_addr, ?admin_addr, "pool started");
    Ok(PoolHandle {
        addr,
        authority: keys.public(),
        stats,
        mint,
        metrics_addr,
        admin_addr,
        blocks,
        work,
        jd_server,
        shutdown,
        tasks,
    })
}

/// Tells the mint about every new tip: the height being mined drives its epochs, and the
/// target and coinbase value its buyback price.
async fn forward_tips(
    work: Arc<work::WorkState>,
    mint: Arc<mint_client::MintLink>,
    share_unit_log2: u8,
    shutdown: CancellationToken,
) {
    let (_, mut events) = work.subscribe();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = events.recv() => e,
        };
        let prev = match event {
            Ok((_, _, work::WorkEvent::PrevHash(p))) => p,
            Ok(_) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        let Some(facts) = work.template_facts(prev.template_id) else {
            tracing::warn!(
                template_id = prev.template_id,
                "new tip for an unknown template"
            );
            continue;
        };
        let Some(height) = facts.height else {
            tracing::warn!(
                template_id = prev.template_id,
                "template without BIP34 height"
            );
            continue;
        };
        mint.report_tip(ehash_protocol::ChainTip {
            height,
            prev_hash: prev.prev_hash.clone(),
            target: prev.target.clone(),
            coinbase_value: facts.value,
            share_unit_log2,
        });
    }
}
