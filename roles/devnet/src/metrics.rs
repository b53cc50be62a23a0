//! The template provider's `/metrics` and `/health`.

use crate::server::TemplateState;
use hashpool_ops_http::{counter, gauge, FnCollector, HealthCheck};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Registry read from the template provider's state at scrape time.
pub fn registry(state: Arc<TemplateState>) -> prometheus::Registry {
    FnCollector::new(move || {
        let height = state.chain.tip().map(|t| i64::from(t.height)).unwrap_or(-1);
        [
            gauge(
                "hashpool_tp_chain_height",
                "Height of the kernel's active chain (-1 if unreadable)",
                height,
            ),
            counter(
                "hashpool_tp_blocks_accepted_total",
                "Blocks the kernel accepted from pools since start",
                state.blocks_accepted.load(Ordering::Relaxed),
            ),
            counter(
                "hashpool_tp_templates_total",
                "Templates issued since start",
                state.templates_issued(),
            ),
            gauge(
                "hashpool_tp_pools",
                "Pools connected",
                state.pools_connected.load(Ordering::Relaxed) as i64,
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    })
    .registry()
}

/// Healthy while the kernel's chain answers.
pub fn health(state: Arc<TemplateState>) -> HealthCheck {
    Arc::new(move || {
        let state = state.clone();
        Box::pin(async move {
            state
                .chain
                .tip()
                .map(|t| serde_json::json!({ "height": t.height }))
                .map_err(|e| format!("kernel chain unreadable: {e}"))
        })
    })
}
