//! Devnet template provider: a regtest chain validated by Bitcoin Core's own code
//! (libbitcoinkernel), serving the SV2 Template Distribution Protocol over Noise.

pub mod chain;
pub mod config;
pub mod mempool;
pub mod metrics;
pub mod pacing;
pub mod rpc;
pub mod server;
pub mod template;

pub use chain::{BlockOutcome, KernelChain, Tip};
pub use config::TemplateProviderConfig;
pub use server::TemplateState;

use hashpool_ops_http::config_check::Validate;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use sv2_io::{AuthorityKeypair, AuthorityPublicKey};
use tokio_util::sync::CancellationToken;

/// Errors starting the template provider.
#[derive(Debug, thiserror::Error)]
pub enum TemplateProviderError {
    /// Chain could not open.
    #[error(transparent)]
    Chain(#[from] chain::ChainError),
    /// Key file problem.
    #[error(transparent)]
    Key(#[from] sv2_io::KeyError),
    /// Could not listen.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Invalid configuration value.
    #[error("invalid template provider config `{key}`: {reason}")]
    Config {
        /// Key.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

/// A running template provider.
pub struct TemplateProviderHandle {
    /// Listening address.
    pub addr: SocketAddr,
    /// Authority key pools pin.
    pub authority: AuthorityPublicKey,
    /// Address of the JSON-RPC subset, if enabled.
    pub rpc_addr: Option<SocketAddr>,
    /// Where `/metrics` and `/health` are served, if configured.
    pub metrics_addr: Option<SocketAddr>,
    /// Shared state (chain, counters).
    pub state: Arc<TemplateState>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    rpc_task: Option<tokio::task::JoinHandle<()>>,
    ops_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TemplateProviderHandle {
    /// Stops serving and flushes the chain to disk.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
        if let Some(t) = self.rpc_task {
            let _ = t.await;
        }
        for t in self.ops_tasks {
            let _ = t.await;
        }
        let chain = self.state.chain.clone();
        let _ = tokio::task::spawn_blocking(move || chain.close()).await;
    }
}

/// Blocks pre-mined for the devnet's own transactions: their coinbases mature 100 blocks
/// later, so the first 10 are spendable at once.
pub const PREMINE_BLOCKS: u32 = 110;

/// Loads the devnet coins, pre-mining their blocks on first use.
async fn open_mempool(
    config: &TemplateProviderConfig,
    chain: Arc<KernelChain>,
) -> Result<mempool::DevnetMempool, TemplateProviderError> {
    let coin_err = |e: mempool::MempoolError| TemplateProviderError::Config {
        key: "mempool_txs",
        reason: e.to_string(),
    };
    let mut pool = mempool::DevnetMempool::load(&config.data_dir, config.mempool_txs as usize)
        .map_err(coin_err)?;
    if !pool.is_empty() {
        return Ok(pool);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    let mined = tokio::task::spawn_blocking(move || {
        let mut mined = Vec::with_capacity(PREMINE_BLOCKS as usize);
        for _ in 0..PREMINE_BLOCKS {
            let r = chain.mine_competing_branch(0, now)?;
            let height = r.fork_height + 1;
            for txid in r.coinbase_txids {
                mined.push((txid, height));
            }
        }
        Ok::<_, chain::ChainError>(mined)
    })
    .await
    .map_err(|e| chain::ChainError::Kernel(e.to_string()))??;
    for (txid, height) in mined {
        use stratum_core::bitcoin::hashes::Hash;
        pool.add_coinbase(
            stratum_core::bitcoin::Txid::from_byte_array(txid),
            chain::regtest_subsidy(height),
            height,
        );
    }
    pool.save().map_err(coin_err)?;
    tracing::info!(
        blocks = PREMINE_BLOCKS,
        "pre-mined coins for the devnet's own transactions"
    );
    Ok(pool)
}

/// Opens the chain and starts serving TDP.
pub async fn start(
    config: TemplateProviderConfig,
) -> Result<TemplateProviderHandle, TemplateProviderError> {
    config
        .validate()
        .map_err(|p| TemplateProviderError::Config {
            key: p.key,
            reason: p.reason,
        })?;
    let keys = AuthorityKeypair::load_or_generate(&config.data_dir.join("authority.key"))?;
    let chain_dir = config.data_dir.join("regtest");
    let chain = tokio::task::spawn_blocking(move || KernelChain::open(&chain_dir))
        .await
        .map_err(|e| chain::ChainError::Kernel(e.to_string()))??;
    let chain = Arc::new(chain);
    let pacer = pacing::BlockPacer::new(
        Duration::from_secs_f64(config.block_interval_secs),
        config.initial_block_hashes,
    );
    let mempool = if config.mempool_txs > 0 {
        Some(open_mempool(&config, chain.clone()).await?)
    } else {
        None
    };
    let state = TemplateState::new(chain, pacer, mempool).map_err(chain::ChainError::Kernel)?;
    let (listener, addr) =
        sv2_io::bind(config.listen)
            .await
            .map_err(|source| TemplateProviderError::Bind {
                addr: config.listen,
                source,
            })?;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server::serve(
        listener,
        keys.clone(),
        state.clone(),
        shutdown.clone(),
    ));
    let (rpc_addr, rpc_task) = match config.rpc_listen {
        Some(listen) => {
            let (addr, task) = serve_rpc(listen, &config, state.clone(), shutdown.clone()).await?;
            (Some(addr), Some(task))
        }
        None => (None, None),
    };
    let mut ops_tasks = Vec::new();
    let metrics_addr = hashpool_ops_http::serve_configured(
        config.metrics_listen,
        || metrics::registry(state.clone()),
        || metrics::health(state.clone()),
        axum::Router::new,
        shutdown.clone(),
        &mut ops_tasks,
    )
    .await
    .map_err(|e| TemplateProviderError::Config {
        key: "metrics_listen",
        reason: e.to_string(),
    })?;
    let tip = state.chain.tip()?;
    tracing::info!(%addr, ?rpc_addr, ?metrics_addr, authority = %keys.public(), height = tip.height, "template provider started");
    Ok(TemplateProviderHandle {
        addr,
        rpc_addr,
        metrics_addr,
        ops_tasks,
        authority: keys.public(),
        state,
        shutdown,
        task,
        rpc_task,
    })
}

async fn serve_rpc(
    listen: SocketAddr,
    config: &TemplateProviderConfig,
    state: Arc<TemplateState>,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), TemplateProviderError> {
    let bind = |source| TemplateProviderError::Bind {
        addr: listen,
        source,
    };
    let (listener, addr) = sv2_io::bind(listen).await.map_err(bind)?;
    let router =
        rpc::router(state, &config.data_dir).map_err(|e| TemplateProviderError::Config {
            key: "data_dir",
            reason: format!("cannot write the RPC cookie: {e}"),
        })?;
    let task = tokio::spawn(async move {
        let serve =
            axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "devnet RPC server failed");
        }
    });
    Ok((addr, task))
}
