//! The mint's `/metrics` and `/health`.

use crate::EhashLedger;
use hashpool_ops_http::{
    counter, float_gauge, gauge, labelled_counter, labelled_gauge, register_all, FnCollector,
    HealthCheck,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Registry with the mint's metrics, read at scrape time.
pub fn registry(ledger: Arc<EhashLedger>) -> prometheus::Registry {
    let latency = ledger.counters.latency.clone();
    let collect = FnCollector::new(move || {
        let c = &ledger.counters;
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let book = ledger.epochs();
        let issued: Vec<(String, u64)> = book
            .issued_by_epoch()
            .into_iter()
            .map(|(e, n)| (e.to_string(), n))
            .collect();
        let blocks: Vec<(String, i64)> = book
            .blocks_by_status()
            .into_iter()
            .map(|(s, n)| (s.to_string(), n as i64))
            .collect();
        [
            counter(
                "hashpool_mint_signatures_total",
                "Share signatures issued",
                l(&c.signed),
            ),
            counter(
                "hashpool_mint_sign_refused_total",
                "Sign requests refused",
                l(&c.refused),
            ),
            counter(
                "hashpool_mint_sign_replayed_total",
                "Resent requests answered with the stored signature",
                l(&c.replayed),
            ),
            counter(
                "hashpool_mint_sign_batches_total",
                "Signing batches committed to the database",
                l(&c.commits),
            ),
            counter(
                "hashpool_mint_sign_batch_microseconds_total",
                "Time spent in signing batches (database transaction included), microseconds",
                l(&c.batch_micros),
            ),
            labelled_counter(
                "hashpool_mint_ehash_issued_total",
                "Ehash (HASH) issued for shares, by epoch",
                "epoch",
                &issued,
            ),
            gauge(
                "hashpool_mint_epoch",
                "Current epoch",
                i64::from(book.current_epoch()),
            ),
            labelled_gauge(
                "hashpool_mint_blocks",
                "Found blocks the pools reported, by status",
                "status",
                &blocks,
            ),
            gauge(
                "hashpool_mint_signing_paused",
                "1 while the operator paused share signing",
                i64::from(*ledger.signing_paused.borrow()),
            ),
            float_gauge(
                "hashpool_mint_signatures_per_second",
                "Share signatures per second over the last 30 s",
                f64::from_bits(l(&c.sign_rate_bits)),
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    });
    register_all(
        collect.registry(),
        vec![Box::new(latency.batch), Box::new(latency.db_commit)],
    )
}

/// Healthy while the mint's database answers.
pub fn health(ledger: Arc<EhashLedger>) -> HealthCheck {
    Arc::new(move || {
        let ledger = ledger.clone();
        Box::pin(async move {
            if *ledger.signing_paused.borrow() {
                return Err("share signing paused by the operator".to_string());
            }
            ledger
                .mint()
                .total_issued()
                .await
                .map(|_| serde_json::json!({}))
                .map_err(|e| format!("mint database unreachable: {e}"))
        })
    })
}
