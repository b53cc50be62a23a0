//! Pool counters, shared by all tasks.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

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
    /// Template provider link is up.
    pub tp_connected: AtomicBool,
    /// Mint link is up.
    pub mint_connected: AtomicBool,
    /// Blocks found (solutions meeting the network target, submitted to the TP).
    pub blocks: Mutex<Vec<FoundBlock>>,
    /// Rejected shares by SV2 error code.
    pub rejected_by_reason: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Open channels.
    pub channels: AtomicU64,
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
    /// Blocks found.
    pub blocks_found: u64,
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
            blocks_found: self.blocks.lock().map(|b| b.len() as u64).unwrap_or(0),
        }
    }
}
