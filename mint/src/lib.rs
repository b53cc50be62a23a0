//! The mint role: the only holder of ehash keyset private keys.
//!
//! It signs blinded messages for accepted shares on behalf of authenticated pools (the mint
//! link, SV2 frames over Noise), persists every signature before answering, and serves the
//! standard Cashu HTTP API (keys, keysets, swap, checkstate, restore, info) through cdk-axum.

pub mod admin;
pub mod config;
pub mod dleq;
pub mod epoch_keys;
pub mod epochs;
pub mod error;
pub mod exchange;
pub mod faucet;
pub mod http;
pub mod ledger;
pub mod link;
pub mod metrics;
pub mod signer;
pub mod testing;

pub use config::MintConfig;
pub use error::MintError;
pub use ledger::{EhashLedger, MintStats};
pub use signer::{ShareSigner, SignJob, SignOutcome};

use hashpool_ops_http::config_check::Validate;
use std::net::SocketAddr;
use std::sync::Arc;
use sv2_io::{AuthorityKeypair, AuthorityPublicKey};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A running mint role.
pub struct MintHandle {
    /// Address of the mint link (Noise).
    pub link_addr: SocketAddr,
    /// Address of the Cashu HTTP API.
    pub http_addr: SocketAddr,
    /// Public base URL wallets use.
    pub http_url: String,
    /// Authority key pools pin.
    pub authority: AuthorityPublicKey,
    /// Where `/metrics` and `/health` are served, if configured.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the admin API is served, if configured.
    pub admin_addr: Option<SocketAddr>,
    /// The ledger (CDK mint + stats).
    pub ledger: Arc<EhashLedger>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl MintHandle {
    /// Stops accepting, closes links and the HTTP server, and stops the CDK mint.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        if let Err(e) = self.ledger.mint().stop().await {
            tracing::warn!(error = %e, "stopping the CDK mint failed");
        }
    }
}

/// Starts the mint role: opens the database, binds both listeners and spawns the services.
pub async fn start(config: MintConfig) -> Result<MintHandle, MintError> {
    config.validate()?;
    if config.pool_keys.is_empty() {
        // Legitimate on a first start (to generate the mint's key), useless after it.
        tracing::warn!("pool_keys is empty: no pool can request signatures until one is added");
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|source| MintError::Io {
        path: config.data_dir.clone(),
        source,
    })?;
    let keys = AuthorityKeypair::load_or_generate(&config.data_dir.join("authority.key"))?;
    let http_listener = bind(config.http_listen).await?;
    let http_addr = local(&http_listener)?;
    let http_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{http_addr}"));
    let ledger = Arc::new(EhashLedger::open(&config, &http_url).await?);
    let signer =
        ShareSigner::spawn_workers(ledger.clone(), config.signer_batch, config.signer_workers())
            .map_err(|source| MintError::Io {
                path: config.data_dir.clone(),
                source,
            })?;
    let link_listener = bind(config.link_listen).await?;
    let link_addr = local(&link_listener)?;
    let pools = config.allowed_pools()?;
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(link::serve(
        link_listener,
        keys.clone(),
        pools,
        signer.clone(),
        ledger.clone(),
        http_url.clone(),
        shutdown.clone(),
    )));
    if ledger.epochs().shared() {
        tasks.push(tokio::spawn(ledger::follow_peers(
            ledger.clone(),
            shutdown.clone(),
        )));
    }
    tasks.push(tokio::spawn(ledger::sample_sign_rate(
        ledger.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(epochs::receipts::sweep_until(
        ledger.clone(),
        shutdown.clone(),
    )));
    let buyback = Arc::new(exchange::Buyback::new(
        config.buyback_discount_ppm,
        std::time::Duration::from_secs(config.buyback_quote_secs),
    ));
    let faucet = config
        .devnet_faucet
        .map(|amount| Arc::new(faucet::Faucet::new(amount, signer.clone())));
    let router = http::router(ledger.clone(), buyback, faucet).await?;
    let sd = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        let serve = axum::serve(http_listener, router).with_graceful_shutdown(sd.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "mint HTTP server failed");
        }
    }));
    let metrics_addr = hashpool_ops_http::serve_configured(
        config.metrics_listen,
        || metrics::registry(ledger.clone()),
        || metrics::health(ledger.clone()),
        axum::Router::new,
        shutdown.clone(),
        &mut tasks,
    )
    .await
    .map_err(|e| MintError::Http(e.to_string()))?;
    let admin_addr = hashpool_ops_http::admin::serve_configured(
        config.admin(),
        &config.data_dir,
        || admin::router(ledger.clone()),
        shutdown.clone(),
        &mut tasks,
    )
    .await
    .map_err(|e| MintError::Http(e.to_string()))?;
    tracing::info!(%link_addr, %http_addr, ?metrics_addr, ?admin_addr, authority = %keys.public(), "mint started");
    Ok(MintHandle {
        link_addr,
        http_addr,
        http_url,
        authority: keys.public(),
        metrics_addr,
        admin_addr,
        ledger,
        shutdown,
        tasks,
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, MintError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| MintError::Bind { addr, source })
}

fn local(l: &TcpListener) -> Result<SocketAddr, MintError> {
    l.local_addr().map_err(|source| MintError::Bind {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}
