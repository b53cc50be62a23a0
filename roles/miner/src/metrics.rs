//! The CPU miner's `/metrics` and `/health`.

use crate::MinerStats;
use hashpool_ops_http::{counter, gauge, FnCollector, HealthCheck};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Registry read from the miner's counters at scrape time.
pub fn registry(stats: Arc<MinerStats>) -> prometheus::Registry {
    FnCollector::new(move || {
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        [
            counter(
                "hashpool_miner_hashes_total",
                "Header hashes computed",
                l(&stats.hashes),
            ),
            counter(
                "hashpool_miner_shares_submitted_total",
                "Shares sent to the translator",
                l(&stats.submitted),
            ),
            counter(
                "hashpool_miner_shares_accepted_total",
                "Shares the translator accepted",
                l(&stats.accepted),
            ),
            counter(
                "hashpool_miner_shares_rejected_total",
                "Shares the translator rejected",
                l(&stats.rejected),
            ),
            gauge(
                "hashpool_miner_connected",
                "1 while connected to the translator",
                i64::from(stats.connected.load(Ordering::Relaxed)),
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    })
    .registry()
}

/// Healthy while connected to the translator.
pub fn health(stats: Arc<MinerStats>) -> HealthCheck {
    Arc::new(move || {
        let up = stats.connected.load(Ordering::Relaxed);
        Box::pin(async move {
            if up {
                Ok(serde_json::json!({}))
            } else {
                Err("translator unreachable".to_string())
            }
        })
    })
}

/// Serves `/metrics` and `/health` on `listen`, if set, until `shutdown`.
pub async fn serve(
    listen: Option<std::net::SocketAddr>,
    stats: Arc<MinerStats>,
    shutdown: tokio_util::sync::CancellationToken,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Option<std::net::SocketAddr>, hashpool_ops_http::OpsHttpError> {
    hashpool_ops_http::serve_configured(
        listen,
        || registry(stats.clone()),
        || health(stats.clone()),
        axum::Router::new,
        shutdown,
        tasks,
    )
    .await
}
