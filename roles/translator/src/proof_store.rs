//! Stores the proofs of incoming signatures in batches: one task, one database transaction per
//! batch, and a bounded queue, so a burst of signatures never piles up tasks or memory and the
//! bridge feels back-pressure instead.

use crate::stats::TranslatorStats;
use crate::wallet::{EhashWallet, IncomingSignature};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// Signatures queued for storing before the bridge waits.
pub const QUEUE: usize = 16_384;
/// Signatures stored per transaction at most.
const BATCH: usize = 512;

/// Runs until the queue's senders are gone.
pub async fn run(
    mut rx: mpsc::Receiver<IncomingSignature>,
    mut wallet: watch::Receiver<Option<Arc<EhashWallet>>>,
    stats: Arc<TranslatorStats>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let w = loop {
            if let Some(w) = wallet.borrow_and_update().clone() {
                break w;
            }
            if wallet.changed().await.is_err() {
                return;
            }
        };
        for (s, result) in batch.iter().zip(w.receive_batch(&batch).await) {
            match result {
                Ok(a) => {
                    stats.ehash_received.fetch_add(a, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.ehash_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, blinded = %hex::encode(s.blinded), "signature not stored");
                }
            }
        }
        batch.clear();
    }
}
