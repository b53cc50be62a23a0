//! The jd-client's `/metrics` and `/health`.

use crate::declarer::Mode;
use crate::JdClientStats;
use hashpool_ops_http::{counter, gauge, FnCollector, HealthCheck};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::watch;

/// Registry with the jd-client's counters, read at scrape time.
pub fn registry(stats: Arc<JdClientStats>, mode: watch::Receiver<Mode>) -> prometheus::Registry {
    let collect = FnCollector::new(move || {
        let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        [
            gauge(
                "hashpool_jdc_declaring",
                "1 while new miners mine declared templates, 0 on pool templates",
                i64::from(*mode.borrow() == Mode::Declaring),
            ),
            counter(
                "hashpool_jdc_templates_total",
                "Complete templates from the template provider",
                n(&stats.templates),
            ),
            counter(
                "hashpool_jdc_declared_jobs_total",
                "Jobs the jd-server accepted",
                n(&stats.declared_jobs),
            ),
            counter(
                "hashpool_jdc_declarations_refused_total",
                "Declarations the jd-server refused",
                n(&stats.declarations_refused),
            ),
            counter(
                "hashpool_jdc_transactions_provided_total",
                "Transactions given to the jd-server on request",
                n(&stats.transactions_provided),
            ),
            counter(
                "hashpool_jdc_custom_jobs_total",
                "Custom jobs the pool set",
                n(&stats.custom_jobs),
            ),
            counter(
                "hashpool_jdc_custom_jobs_refused_total",
                "Custom jobs the pool refused",
                n(&stats.custom_jobs_refused),
            ),
            counter(
                "hashpool_jdc_blocks_found_total",
                "Blocks found on declared jobs",
                n(&stats.blocks_found),
            ),
            counter(
                "hashpool_jdc_fallbacks_total",
                "Falls back to pool templates",
                n(&stats.fallbacks),
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    });
    collect.registry()
}

/// Healthy while declaring; degraded (503) while on pool templates or before the first
/// jd-server answer, with the reason.
pub fn health(mode: watch::Receiver<Mode>) -> HealthCheck {
    Arc::new(move || {
        let m = *mode.borrow();
        Box::pin(async move {
            match m {
                Mode::Declaring => Ok(serde_json::json!({"mode": "declaring"})),
                Mode::PoolTemplates => {
                    Err("jd-server unusable: miners are on pool templates".into())
                }
                Mode::Starting => Err("waiting for the jd-server".into()),
            }
        })
    })
}
