//! The translator role: SV1 miners in, one SV2 extended channel (Noise, pinned pool key) out,
//! and the ehash wallet that turns every accepted share into a verified proof.

pub mod board;
pub mod bridge;
pub mod config;
pub mod dashboard;
pub mod metrics;
pub mod miners;
pub mod proof_store;
pub mod share_check;
pub mod stats;
pub mod sv1;
pub mod upstream;
pub mod wallet;

pub use config::TranslatorConfig;
pub use stats::{TranslatorSnapshot, TranslatorStats};
pub use wallet::EhashWallet;

use hashpool_ops_http::config_check::Validate;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Errors starting the translator.
#[derive(Debug, thiserror::Error)]
pub enum TranslatorError {
    /// Invalid configuration value.
    #[error("invalid translator config `{key}`: {reason}")]
    Config {
        /// Key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// Listener.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Wallet.
    #[error(transparent)]
    Wallet(#[from] wallet::WalletError),
}

/// A running translator.
pub struct TranslatorHandle {
    /// SV1 listening address.
    pub sv1_addr: SocketAddr,
    /// Where `/metrics` and `/health` are served, if configured.
    pub metrics_addr: Option<SocketAddr>,
    /// Counters.
    pub stats: Arc<TranslatorStats>,
    /// The wallet, once the mint is known.
    pub wallet: watch::Receiver<Option<Arc<EhashWallet>>>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TranslatorHandle {
    /// Stops the translator.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts the translator.
pub async fn start(config: TranslatorConfig) -> Result<TranslatorHandle, TranslatorError> {
    config.validate().map_err(|p| TranslatorError::Config {
        key: p.key,
        reason: p.reason,
    })?;
    let vardiff = miners::MinerVardiffConfig {
        interval: positive_secs(
            "miner_vardiff_interval_secs",
            config.miner_vardiff_interval_secs,
        )?,
        shares_per_minute: positive("miner_shares_per_minute", config.miner_shares_per_minute)?,
    };
    let line_timeout = positive_secs("sv1_line_timeout_secs", config.sv1_line_timeout_secs)?;

    std::fs::create_dir_all(&config.data_dir).map_err(|e| TranslatorError::Config {
        key: "data_dir",
        reason: format!("{}: {e}", config.data_dir.display()),
    })?;
    let (listener, sv1_addr) =
        sv2_io::bind(config.sv1_listen)
            .await
            .map_err(|source| TranslatorError::Bind {
                addr: config.sv1_listen,
                source,
            })?;
    let stats = Arc::new(TranslatorStats::default());
    let board = Arc::new(board::ProxyBoard::default());
    let (wallet_tx, wallet_rx) = watch::channel(None);
    let (mint_url_tx, mint_url_rx) = watch::channel(config.mint_url.clone());
    let (events_tx, events_rx) = mpsc::channel(4096);
    let shutdown = CancellationToken::new();
    let (signatures_tx, signatures_rx) = mpsc::channel(proof_store::QUEUE);
    let bridge = bridge::Bridge::new(
        vardiff,
        wallet_rx.clone(),
        mint_url_tx,
        signatures_tx,
        stats.clone(),
        board.clone(),
    );
    let mut tasks = vec![
        tokio::spawn(bridge.run(events_rx)),
        tokio::spawn(proof_store::run(
            signatures_rx,
            wallet_rx.clone(),
            stats.clone(),
        )),
    ];
    tasks.push(tokio::spawn(open_wallet(
        config.data_dir.clone(),
        mint_url_rx,
        wallet_tx,
        shutdown.clone(),
    )));
    let pools = config.pools().map_err(|p| TranslatorError::Config {
        key: p.key,
        reason: p.reason,
    })?;
    tasks.push(tokio::spawn(upstream::run(
        sv2_io::Failover::new("pool", pools, stats.pool_failover.clone()),
        config.user_identity.clone(),
        config.nominal_hashrate,
        events_tx.clone(),
        stats.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(metrics::refresh_balance(
        stats.clone(),
        wallet_rx.clone(),
        shutdown.clone(),
    )));
    let metrics_addr = hashpool_ops_http::serve_configured(
        config.metrics_listen,
        || metrics::registry(stats.clone(), board.clone()),
        || metrics::health(stats.clone()),
        || {
            dashboard::router(Arc::new(dashboard::ProxyDashboard::new(
                stats.clone(),
                board.clone(),
                wallet_rx.clone(),
                config.dashboard_token.clone(),
            )))
        },
        shutdown.clone(),
        &mut tasks,
    )
    .await
    .map_err(|e| TranslatorError::Config {
        key: "metrics_listen",
        reason: e.to_string(),
    })?;
    tasks.push(tokio::spawn(accept_miners(
        listener,
        events_tx,
        line_timeout,
        shutdown.clone(),
    )));
    tracing::info!(%sv1_addr, pool = %config.pool_address, ?metrics_addr, "translator started");
    Ok(TranslatorHandle {
        sv1_addr,
        metrics_addr,
        stats,
        wallet: wallet_rx,
        shutdown,
        tasks,
    })
}

fn positive(key: &'static str, value: f64) -> Result<f64, TranslatorError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(TranslatorError::Config {
            key,
            reason: format!("must be a positive number, got {value}"),
        })
    }
}

fn positive_secs(key: &'static str, value: f64) -> Result<std::time::Duration, TranslatorError> {
    positive(key, value).map(std::time::Duration::from_secs_f64)
}

/// Opens the wallet once the mint URL is known, and restores what the mint signed for us.
async fn open_wallet(
    data_dir: std::path::PathBuf,
    mut mint_url: watch::Receiver<Option<String>>,
    wallet: watch::Sender<Option<Arc<EhashWallet>>>,
    shutdown: CancellationToken,
) {
    let url = loop {
        if let Some(u) = mint_url.borrow_and_update().clone() {
            break u;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = mint_url.changed() => if r.is_err() { return },
        }
    };
    let w = match EhashWallet::open(&data_dir, &url).await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the ehash wallet; shares will carry no ehash");
            return;
        }
    };
    wallet.send_replace(Some(w.clone()));
    match w.restore().await {
        Ok(r) => tracing::info!(
            restored_unspent = r.unspent,
            proofs = r.unspent_proofs,
            "wallet restored from the mint"
        ),
        Err(e) => tracing::warn!(error = %e, "wallet restore failed"),
    }
    // Signatures lost between the mint and us (a pool or mint crash after signing) are fetched
    // from the mint by B_.
    let mut tick = tokio::time::interval(RECOVERY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match w
            .recover_outstanding(RECOVERY_AFTER, RECOVERY_GIVE_UP)
            .await
        {
            Ok((0, _)) => {}
            Ok((proofs, amount)) => {
                tracing::info!(
                    proofs,
                    amount,
                    "recovered signatures that never arrived in-band"
                )
            }
            Err(e) => tracing::warn!(error = %e, "signature recovery failed; will retry"),
        }
    }
}

/// How often the wallet looks for signatures that never arrived.
const RECOVERY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// A blinded message unanswered this long is looked up at the mint.
const RECOVERY_AFTER: std::time::Duration = std::time::Duration::from_secs(15);
/// A blinded message the mint never signed within this time belonged to a lost share.
const RECOVERY_GIVE_UP: std::time::Duration = std::time::Duration::from_secs(600);

async fn accept_miners(
    listener: tokio::net::TcpListener,
    events: mpsc::Sender<bridge::BridgeEvent>,
    line_timeout: std::time::Duration,
    shutdown: CancellationToken,
) {
    let next = AtomicU64::new(1);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => { tracing::warn!(error = %e, "SV1 accept failed"); continue; }
            },
        };
        let id = next.fetch_add(1, Ordering::Relaxed);
        let events = events.clone();
        let sd = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = sd.cancelled() => {}
                _ = sv1::serve_miner(id, stream, peer, events, line_timeout) => {}
            }
        });
    }
}
