//! Translator counters.

use hashpool_ops_http::status::ServiceLink;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Histogram of share round trips to the pool.
#[derive(Debug, Clone)]
pub struct RoundTrip(pub prometheus::Histogram);

impl Default for RoundTrip {
    fn default() -> Self {
        Self(hashpool_ops_http::latency_histogram(
            "hashpool_translator_share_round_trip_seconds",
            "From forwarding a share to the pool's verdict",
        ))
    }
}

/// Live counters.
#[derive(Debug, Default)]
pub struct TranslatorStats {
    /// Shares forwarded upstream.
    pub shares_submitted: AtomicU64,
    /// Shares the pool accepted.
    pub shares_accepted: AtomicU64,
    /// Shares the pool rejected.
    pub shares_rejected: AtomicU64,
    /// SV1 shares that met their miner's own target (forwarded or not).
    pub miner_shares: AtomicU64,
    /// SV1 shares refused by the translator itself (low difficulty, stale, duplicate, invalid).
    pub shares_rejected_locally: AtomicU64,
    /// Sum of amounts of accepted shares (from SubmitSharesSuccess).
    pub accepted_amount: AtomicU64,
    /// Ehash received, verified and stored.
    pub ehash_received: AtomicU64,
    /// Signatures that failed verification or came back as errors.
    pub ehash_errors: AtomicU64,
    /// SV1 miners connected now.
    pub miners: AtomicU64,
    /// The pool link.
    pub pool_link: ServiceLink,
    /// Which pool of the list is in use, and hand-overs.
    pub pool_failover: std::sync::Arc<sv2_io::FailoverState>,
    /// Share round trips (forwarded to the pool's verdict).
    pub share_round_trip: RoundTrip,
    /// Unspent ehash in the wallet (refreshed periodically).
    pub wallet_balance: AtomicU64,
}

/// Snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct TranslatorSnapshot {
    /// Shares forwarded.
    pub shares_submitted: u64,
    /// Shares accepted.
    pub shares_accepted: u64,
    /// Shares rejected.
    pub shares_rejected: u64,
    /// Shares meeting miners' own targets.
    pub miner_shares: u64,
    /// Shares refused locally.
    pub shares_rejected_locally: u64,
    /// Accepted amount.
    pub accepted_amount: u64,
    /// Ehash received.
    pub ehash_received: u64,
    /// Ehash errors.
    pub ehash_errors: u64,
    /// Miners.
    pub miners: u64,
}

impl TranslatorStats {
    /// Snapshot.
    pub fn snapshot(&self) -> TranslatorSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TranslatorSnapshot {
            shares_submitted: l(&self.shares_submitted),
            shares_accepted: l(&self.shares_accepted),
            shares_rejected: l(&self.shares_rejected),
            miner_shares: l(&self.miner_shares),
            shares_rejected_locally: l(&self.shares_rejected_locally),
            accepted_amount: l(&self.accepted_amount),
            ehash_received: l(&self.ehash_received),
            ehash_errors: l(&self.ehash_errors),
            miners: l(&self.miners),
        }
    }
}
