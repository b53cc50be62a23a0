//! The translator's `/metrics` and `/health`.

use crate::board::ProxyBoard;
use crate::stats::TranslatorStats;
use crate::EhashWallet;
use hashpool_ops_http::{counter, float_gauge, gauge, register_all, FnCollector, HealthCheck};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Registry with the translator's metrics, read at scrape time.
pub fn registry(stats: Arc<TranslatorStats>, board: Arc<ProxyBoard>) -> prometheus::Registry {
    let round_trip = stats.share_round_trip.0.clone();
    let collect = FnCollector::new(move || {
        let s = stats.snapshot();
        [
            counter(
                "hashpool_translator_miner_shares_total",
                "SV1 shares that met their miner's own target",
                s.miner_shares,
            ),
            counter(
                "hashpool_translator_shares_rejected_locally_total",
                "SV1 shares refused by the translator (low difficulty, stale, duplicate, malformed)",
                s.shares_rejected_locally,
            ),
            counter(
                "hashpool_translator_shares_submitted_total",
                "Shares forwarded to the pool",
                s.shares_submitted,
            ),
            counter(
                "hashpool_translator_shares_accepted_total",
                "Shares the pool accepted",
                s.shares_accepted,
            ),
            counter(
                "hashpool_translator_shares_rejected_total",
                "Shares the pool rejected",
                s.shares_rejected,
            ),
            counter(
                "hashpool_translator_ehash_accepted_total",
                "Ehash (HASH) of the shares the pool accepted",
                s.accepted_amount,
            ),
            counter(
                "hashpool_translator_ehash_received_total",
                "Ehash (HASH) received, verified and stored",
                s.ehash_received,
            ),
            counter(
                "hashpool_translator_ehash_errors_total",
                "Signatures that failed verification or came back as errors",
                s.ehash_errors,
            ),
            gauge("hashpool_translator_miners", "SV1 miners connected", s.miners as i64),
            gauge(
                "hashpool_translator_pool_up",
                "1 while the pool link is up",
                i64::from(stats.pool_link.is_up()),
            ),
            gauge(
                "hashpool_translator_wallet_balance",
                "Unspent ehash (HASH) in the wallet, refreshed every 5 s",
                stats.wallet_balance.load(Ordering::Relaxed) as i64,
            ),
            counter(
                "hashpool_translator_pool_failovers_total",
                "Hand-overs to the next pool in the list",
                stats.pool_failover.failovers(),
            ),
            float_gauge(
                "hashpool_translator_hashrate",
                "Hashes per second of the miners' accepted shares over the last 30 s",
                board.hashrate(),
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    });
    register_all(collect.registry(), vec![Box::new(round_trip)])
}

/// Healthy while the pool link is up.
pub fn health(stats: Arc<TranslatorStats>) -> HealthCheck {
    Arc::new(move || {
        let (up, pool, failovers) = (
            stats.pool_link.is_up(),
            stats.pool_failover.active(),
            stats.pool_failover.failovers(),
        );
        Box::pin(async move {
            if up {
                Ok(serde_json::json!({ "pool": pool, "pool_failovers": failovers }))
            } else {
                Err(format!("pool unreachable (trying {pool})"))
            }
        })
    })
}

/// Keeps the wallet-balance gauge fresh (it reads the wallet database, which a scrape should
/// not wait for).
pub async fn refresh_balance(
    stats: Arc<TranslatorStats>,
    mut wallet: watch::Receiver<Option<Arc<EhashWallet>>>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let w = wallet.borrow_and_update().clone();
        if let Some(w) = w {
            match w.balance().await {
                Ok(b) => stats.wallet_balance.store(b, Ordering::Relaxed),
                Err(e) => tracing::warn!(error = %e, "cannot read the wallet balance"),
            }
        }
    }
}
