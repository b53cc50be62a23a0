//! The jd-client role: the miner's side of job declaration. It takes templates from the
//! miner's own template provider, declares them to the pool's jd-server, and sits between the
//! miner's translator and the pool, setting the declared jobs on the translator's channels as
//! custom jobs. Shares still carry their ehash blinded messages to the pool, which pays them as
//! on pool templates. Found blocks go to the miner's node and to the jd-server.

pub mod config;
pub mod declarer;
pub mod metrics;
pub mod proxy;
pub mod templates;

pub use config::JdClientConfig;

use hashpool_ops_http::config_check::Validate;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use sv2_io::{AuthorityKeypair, AuthorityPublicKey};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Errors starting the jd-client.
#[derive(Debug, thiserror::Error)]
pub enum JdClientError {
    /// Invalid configuration value.
    #[error("invalid jd-client config `{key}`: {reason}")]
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
}

impl From<hashpool_ops_http::config_check::ConfigProblem> for JdClientError {
    fn from(p: hashpool_ops_http::config_check::ConfigProblem) -> Self {
        JdClientError::Config {
            key: p.key,
            reason: p.reason,
        }
    }
}

/// Counters of the jd-client.
#[derive(Debug, Default)]
pub struct JdClientStats {
    /// Complete templates (with their transactions) from the template provider.
    pub templates: AtomicU64,
    /// Jobs the jd-server accepted.
    pub declared_jobs: AtomicU64,
    /// Declarations the jd-server refused.
    pub declarations_refused: AtomicU64,
    /// Transactions given to the jd-server on request.
    pub transactions_provided: AtomicU64,
    /// Custom jobs the pool set on channels.
    pub custom_jobs: AtomicU64,
    /// Custom jobs the pool refused.
    pub custom_jobs_refused: AtomicU64,
    /// Blocks found on declared jobs.
    pub blocks_found: AtomicU64,
    /// Solutions pushed to the jd-server.
    pub solutions_pushed: AtomicU64,
    /// Times the client fell back to pool templates.
    pub fallbacks: AtomicU64,
}

/// A running jd-client.
pub struct JdClientHandle {
    /// Where translators connect.
    pub addr: SocketAddr,
    /// Authority key translators pin.
    pub authority: AuthorityPublicKey,
    /// Counters.
    pub stats: Arc<JdClientStats>,
    /// Declaring or on pool templates.
    pub mode: watch::Receiver<declarer::Mode>,
    /// Where `/metrics` and `/health` are served, if configured.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl JdClientHandle {
    /// Stops everything.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn key(value: &str, name: &'static str) -> Result<AuthorityPublicKey, JdClientError> {
    value
        .parse()
        .map_err(|e: sv2_io::KeyError| JdClientError::Config {
            key: name,
            reason: e.to_string(),
        })
}

/// Starts the jd-client.
pub async fn start(config: JdClientConfig) -> Result<JdClientHandle, JdClientError> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| JdClientError::Config {
        key: "data_dir",
        reason: format!("{}: {e}", config.data_dir.display()),
    })?;
    let keys = AuthorityKeypair::load_or_generate(&config.data_dir.join("authority.key"))?;
    let retry = Duration::from_secs_f64(config.jd_server_retry_secs);
    let stats = Arc::new(JdClientStats::default());
    let shutdown = CancellationToken::new();
    let (work_tx, work_rx) = watch::channel(None);
    let (extranonce_tx, extranonce_rx) = watch::channel(None);
    let (declared_tx, declared_rx) = watch::channel(None);
    let (mode_tx, mode_rx) = watch::channel(declarer::Mode::Starting);
    let (outputs_tx, mut outputs_rx) = watch::channel(None);
    let (tp_solutions, tp_solutions_rx) = mpsc::channel(16);
    let (jds_solutions, jds_solutions_rx) = mpsc::channel(16);
    let (listener, addr) =
        sv2_io::bind(config.listen)
            .await
            .map_err(|source| JdClientError::Bind {
                addr: config.listen,
                source,
            })?;
    let declarer = declarer::Declarer {
        address: config.jd_server_address.clone(),
        authority: key(&config.jd_server_authority, "jd_server_authority")?,
        user: config.user_identifier.clone(),
        retry,
        work: work_rx,
        extranonce: extranonce_rx,
        declared: declared_tx,
        mode: mode_tx,
        outputs: outputs_tx,
        solutions: jds_solutions_rx,
        stats: stats.clone(),
    };
    let ctx = Arc::new(proxy::ProxyContext {
        pool_address: config.pool_address.clone(),
        pool_authority: key(&config.pool_authority, "pool_authority")?,
        declared: declared_rx,
        mode: mode_rx.clone(),
        extranonce: extranonce_tx,
        tp_solutions,
        jds_solutions,
        stats: stats.clone(),
        pool_refused_at: Mutex::new(None),
        retry,
    });
    let tp_address = config.tp_address.clone();
    let tp_authority = key(&config.tp_authority, "tp_authority")?;
    let (tp_stats, tp_shutdown) = (stats.clone(), shutdown.clone());
    let templates = tokio::spawn(async move {
        // The template provider needs the size of the pool's outputs: the jd-server tells.
        let outputs = tokio::select! {
            _ = tp_shutdown.cancelled() => return,
            o = outputs_rx.wait_for(Option::is_some) => match o {
                Ok(o) => o.clone().unwrap_or_default(),
                Err(_) => return,
            },
        };
        templates::run(
            tp_address,
            tp_authority,
            outputs,
            work_tx,
            tp_solutions_rx,
            tp_stats,
            tp_shutdown,
        )
        .await
    });
    let mut tasks = vec![
        tokio::spawn(declarer.run(shutdown.clone())),
        templates,
        tokio::spawn(sv2_io::serve(
            listener,
            keys.clone(),
            "jd-client",
            shutdown.clone(),
            move |r, s, peer| proxy::serve(ctx.clone(), r, s, peer),
        )),
    ];
    let metrics_addr = hashpool_ops_http::serve_configured(
        config.metrics_listen,
        || metrics::registry(stats.clone(), mode_rx.clone()),
        || metrics::health(mode_rx.clone()),
        axum::Router::new,
        shutdown.clone(),
        &mut tasks,
    )
    .await
    .map_err(|e| JdClientError::Config {
        key: "metrics_listen",
        reason: e.to_string(),
    })?;
    tracing::info!(%addr, authority = %keys.public(), ?metrics_addr, "jd-client started");
    Ok(JdClientHandle {
        addr,
        authority: keys.public(),
        stats,
        mode: mode_rx,
        metrics_addr,
        shutdown,
        tasks,
    })
}
