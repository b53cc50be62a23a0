//! The pool's `/metrics` and `/health`.

use crate::stats::PoolStats;
use hashpool_ops_http::{counter, gauge, labelled_counter, FnCollector, HealthCheck};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Registry with the pool's metrics, read from its counters at scrape time.
pub fn registry(stats: Arc<PoolStats>) -> prometheus::Registry {
    FnCollector::new(move || {
        let s = stats.snapshot();
        let reasons: Vec<(String, u64)> = stats
            .rejected_by_reason
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        let up = |b: &std::sync::atomic::AtomicBool| i64::from(b.load(Ordering::Relaxed));
        [
            counter(
                "hashpool_pool_shares_accepted_total",
                "Shares accepted",
                s.shares_accepted,
            ),
            labelled_counter(
                "hashpool_pool_shares_rejected_total",
                "Shares rejected, by SV2 error code",
                "reason",
                &reasons,
            ),
            counter(
                "hashpool_pool_ehash_requested_total",
                "Ehash (HASH) of acknowledged shares sent to the mint",
                s.ehash_requested,
            ),
            counter(
                "hashpool_pool_ehash_signed_total",
                "Ehash (HASH) the mint signed",
                s.ehash_signed,
            ),
            counter(
                "hashpool_pool_sign_refused_total",
                "Sign requests the mint refused",
                s.ehash_refused,
            ),
            counter(
                "hashpool_pool_blocks_found_total",
                "Blocks found",
                s.blocks_found,
            ),
            gauge(
                "hashpool_pool_channels",
                "Open mining channels",
                stats.channels.load(Ordering::Relaxed) as i64,
            ),
            gauge(
                "hashpool_pool_template_provider_up",
                "1 while the template provider link is up",
                up(&stats.tp_connected),
            ),
            gauge(
                "hashpool_pool_mint_up",
                "1 while the mint link is up",
                up(&stats.mint_connected),
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    })
    .registry()
}

/// Healthy while both the template provider and the mint links are up.
pub fn health(stats: Arc<PoolStats>) -> HealthCheck {
    Arc::new(move || {
        let stats = stats.clone();
        Box::pin(async move {
            let mut down = Vec::new();
            if !stats.tp_connected.load(Ordering::Relaxed) {
                down.push("template provider unreachable");
            }
            if !stats.mint_connected.load(Ordering::Relaxed) {
                down.push("mint unreachable");
            }
            if down.is_empty() {
                Ok(())
            } else {
                Err(down.join("; "))
            }
        })
    })
}
