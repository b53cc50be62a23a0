//! Devnet template provider: a regtest chain validated by Bitcoin Core's own code
//! (libbitcoinkernel), serving the SV2 Template Distribution Protocol over Noise.

pub mod chain;
pub mod config;
pub mod pacing;
pub mod server;
pub mod template;

pub use chain::{BlockOutcome, KernelChain, Tip};
pub use config::TemplateProviderConfig;
pub use server::TemplateState;

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
    /// Shared state (chain, counters).
    pub state: Arc<TemplateState>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TemplateProviderHandle {
    /// Stops serving and flushes the chain to disk.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
        let chain = self.state.chain.clone();
        let _ = tokio::task::spawn_blocking(move || chain.close()).await;
    }
}

/// Opens the chain and starts serving TDP.
pub async fn start(
    config: TemplateProviderConfig,
) -> Result<TemplateProviderHandle, TemplateProviderError> {
    if !(config.block_interval_secs.is_finite() && config.block_interval_secs > 0.0) {
        return Err(TemplateProviderError::Config {
            key: "block_interval_secs",
            reason: "must be a positive number of seconds".into(),
        });
    }
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
    let state = TemplateState::new(chain, pacer).map_err(chain::ChainError::Kernel)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| TemplateProviderError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
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
    let tip = state.chain.tip()?;
    tracing::info!(%addr, authority = %keys.public(), height = tip.height, "template provider started");
    Ok(TemplateProviderHandle {
        addr,
        authority: keys.public(),
        state,
        shutdown,
        task,
    })
}
