//! The pool's `/metrics` and `/health`.

use crate::board::MiningBoard;
use crate::stats::PoolStats;
use hashpool_ops_http::{
    counter, float_gauge, gauge, labelled_counter, register_all, FnCollector, HealthCheck,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Registry with the pool's metrics, read from its counters at scrape time.
pub fn registry(
    stats: Arc<PoolStats>,
    board: Arc<MiningBoard>,
    jd_server: Option<Arc<hashpool_jd_server::JdServerStats>>,
) -> prometheus::Registry {
    let latency = stats.work_latency.clone();
    let collect = FnCollector::new(move || {
        let s = stats.snapshot();
        let reasons: Vec<(String, u64)> = stats
            .rejected_by_reason
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        let custom_refused: Vec<(String, u64)> = stats
            .custom_jobs_refused
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        let jds = jd_server
            .as_ref()
            .map(|j| hashpool_jd_server::metrics::families(j))
            .unwrap_or_default();
        [
            counter(
                "hashpool_pool_custom_jobs_total",
                "Custom jobs (job declaration) set on channels",
                s.custom_jobs,
            ),
            labelled_counter(
                "hashpool_pool_custom_jobs_refused_total",
                "Custom jobs refused, by SV2 error code",
                "reason",
                &custom_refused,
            ),
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
                "Ehash (HASH) of accepted shares sent to the mint",
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
                "hashpool_pool_sign_journaled_total",
                "Sign requests the share journal recorded: no answer within 10 ms, or the mint could not sign",
                s.ehash_journaled,
            ),
            counter(
                "hashpool_pool_blocks_found_total",
                "Blocks found",
                s.blocks_found,
            ),
            gauge(
                "hashpool_pool_channels",
                "Open mining channels",
                board.channel_count() as i64,
            ),
            gauge(
                "hashpool_pool_template_provider_up",
                "1 while the template provider link is up",
                i64::from(stats.tp.is_up()),
            ),
            gauge(
                "hashpool_pool_mint_up",
                "1 while the mint link is up",
                i64::from(stats.mint.is_up()),
            ),
            gauge(
                "hashpool_pool_node_up",
                "1 while the node's JSON-RPC answers",
                i64::from(stats.node.is_up()),
            ),
            gauge(
                "hashpool_pool_chain_height",
                "The node's best height at the last poll",
                stats.chain_tip_height.load(Ordering::Relaxed) as i64,
            ),
            counter(
                "hashpool_pool_work_accepted_total",
                "Work of accepted shares, in HASH (2^share_unit_log2 expected hashes each)",
                stats.work_accepted.load(Ordering::Relaxed),
            ),
            counter(
                "hashpool_pool_template_provider_failovers_total",
                "Hand-overs to the next template provider in the list",
                stats.tp_failover.failovers(),
            ),
            counter(
                "hashpool_pool_mint_failovers_total",
                "Hand-overs to the next mint endpoint in the list",
                stats.mint_failover.failovers(),
            ),
            float_gauge(
                "hashpool_pool_hashrate",
                "Hashes per second of accepted shares over the last 30 s",
                board.hashrate(),
            ),
        ]
        .into_iter()
        .flatten()
        .chain(jds)
        .collect()
    });
    register_all(
        collect.registry(),
        vec![Box::new(latency.template), Box::new(latency.prev_hash)],
    )
}

/// Healthy while both the template provider and the mint links are up.
pub fn health(stats: Arc<PoolStats>) -> HealthCheck {
    Arc::new(move || {
        let stats = stats.clone();
        Box::pin(async move {
            let (tp, mint) = (stats.tp_failover.active(), stats.mint_failover.active());
            let mut down = Vec::new();
            if !stats.tp.is_up() {
                down.push(format!("template provider unreachable (trying {tp})"));
            }
            if !stats.mint.is_up() {
                down.push(format!("mint unreachable (trying {mint})"));
            }
            if down.is_empty() {
                Ok(serde_json::json!({
                    "template_provider": tp,
                    "template_provider_failovers": stats.tp_failover.failovers(),
                    "mint": mint,
                    "mint_failovers": stats.mint_failover.failovers(),
                }))
            } else {
                Err(down.join("; "))
            }
        })
    })
}
