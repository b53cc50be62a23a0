//! Pool counters, shared by all tasks.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub use hashpool_ops_http::status::{now_ms, ServiceLink, ServiceStatus};

/// A block the pool found and submitted.
#[derive(Debug, Clone, Serialize)]
pub struct FoundBlock {
    /// Template it was built on.
    pub template_id: u64,
    /// Block hash (display order hex).
    pub hash: String,
    /// Coinbase value paid to the pool.
    pub reward: u64,
}

/// Live counters of the pool.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Shares accepted.
    pub shares_accepted: AtomicU64,
    /// Shares rejected.
    pub shares_rejected: AtomicU64,
    /// Sum of ehash amounts of accepted shares sent to the mint.
    pub ehash_requested: AtomicU64,
    /// Sum of ehash amounts the mint signed and the pool forwarded.
    pub ehash_signed: AtomicU64,
    /// Sign requests the mint refused.
    pub ehash_refused: AtomicU64,
    /// Sign requests the share journal recorded: the mint did not answer in time.
    pub ehash_journaled: AtomicU64,
    /// Work (HASH) of every accepted share, paid in ehash or not.
    pub work_accepted: AtomicU64,
    /// Template provider link.
    pub tp: ServiceLink,
    /// Mint link.
    pub mint: ServiceLink,
    /// Which template provider of the list is in use, and hand-overs.
    pub tp_failover: std::sync::Arc<sv2_io::FailoverState>,
    /// Which mint endpoint of the list is in use, and hand-overs.
    pub mint_failover: std::sync::Arc<sv2_io::FailoverState>,
    /// Bitcoin node JSON-RPC (found blocks are followed through it).
    pub node: ServiceLink,
    /// The node's best height at the last poll.
    pub chain_tip_height: AtomicU64,
    /// Blocks found (solutions meeting the network target, submitted to the TP).
    pub blocks: Mutex<Vec<FoundBlock>>,
    /// Custom jobs (job declaration) set on channels.
    pub custom_jobs: AtomicU64,
    /// Custom jobs refused, by SV2 error code.
    pub custom_jobs_refused: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Rejected shares by SV2 error code.
    pub rejected_by_reason: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Time from new work at the pool to its jobs queued for each connection.
    pub work_latency: WorkLatency,
}

/// Histograms of how long new work takes to reach the connections' send queues.
#[derive(Debug, Clone)]
pub struct WorkLatency {
    /// New template to job.
    pub template: prometheus::Histogram,
    /// New prev hash to channel update.
    pub prev_hash: prometheus::Histogram,
}

impl Default for WorkLatency {
    fn default() -> Self {
        Self {
            template: hashpool_ops_http::latency_histogram(
                "hashpool_pool_template_to_job_seconds",
                "From a template arriving at the pool to its job queued for a connection",
            ),
            prev_hash: hashpool_ops_http::latency_histogram(
                "hashpool_pool_prev_hash_to_job_seconds",
                "From a new prev hash arriving at the pool to it being queued for a connection",
            ),
        }
    }
}

impl WorkLatency {
    /// Records one connection's delay for `event`.
    pub fn observe(&self, event: &crate::work::WorkEvent, delay: std::time::Duration) {
        match event {
            crate::work::WorkEvent::Template(_) => self.template.observe(delay.as_secs_f64()),
            crate::work::WorkEvent::PrevHash(_) => self.prev_hash.observe(delay.as_secs_f64()),
        }
    }
}

/// Snapshot for status lines and JSON.
#[derive(Debug, Clone, Serialize)]
pub struct PoolSnapshot {
    /// Shares accepted.
    pub shares_accepted: u64,
    /// Shares rejected.
    pub shares_rejected: u64,
    /// Ehash requested from the mint.
    pub ehash_requested: u64,
    /// Ehash signed.
    pub ehash_signed: u64,
    /// Sign requests refused.
    pub ehash_refused: u64,
    /// Sign requests journaled.
    pub ehash_journaled: u64,
    /// Blocks found.
    pub blocks_found: u64,
    /// Custom jobs (job declaration) set on channels.
    pub custom_jobs: u64,
}

impl PoolStats {
    /// Snapshot of the counters.
    pub fn snapshot(&self) -> PoolSnapshot {
        PoolSnapshot {
            shares_accepted: self.shares_accepted.load(Ordering::Relaxed),
            shares_rejected: self.shares_rejected.load(Ordering::Relaxed),
            ehash_requested: self.ehash_requested.load(Ordering::Relaxed),
            ehash_signed: self.ehash_signed.load(Ordering::Relaxed),
            ehash_refused: self.ehash_refused.load(Ordering::Relaxed),
            ehash_journaled: self.ehash_journaled.load(Ordering::Relaxed),
            blocks_found: self.blocks.lock().map(|b| b.len() as u64).unwrap_or(0),
            custom_jobs: self.custom_jobs.load(Ordering::Relaxed),
        }
    }
}
