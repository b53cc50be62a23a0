//! The signing stage: takes queued requests, checks them and signs them with the active
//! keyset. No database is written here; the batch goes on to a committer.

use super::{refuse, SignJob};
use crate::epoch_keys::EpochKeys;
use crate::EhashLedger;
use cdk::nuts::{BlindSignature, BlindedMessage, Id, PublicKey};
use cdk::Amount;
use ehash_protocol::messages as m;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, OwnedRwLockReadGuard};

/// A request that passed the checks, with its signature.
pub(super) struct Signed {
    /// The request.
    pub job: SignJob,
    /// The message as signed (active keyset).
    pub message: BlindedMessage,
    /// Its signature, not yet stored.
    pub signature: BlindSignature,
}

/// Signatures of one batch, on their way to a committer.
pub(super) struct SignedBatch {
    /// Held from signing until stored: no rotation between the two.
    pub no_rotation: OwnedRwLockReadGuard<()>,
    /// The keyset every signature is made with.
    pub keyset: Id,
    /// When signing began.
    pub started: Instant,
    /// The signed requests.
    pub items: Vec<Signed>,
}

/// Signs batches of at most `take` requests until the queue closes.
pub(super) async fn run(
    ledger: Arc<EhashLedger>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<SignJob>>>,
    out: mpsc::Sender<SignedBatch>,
    take: usize,
) {
    let mut batch = Vec::with_capacity(take);
    loop {
        // The queue is held only while taking a batch, not while signing it.
        let taken = rx.lock().await.recv_many(&mut batch, take).await;
        if taken == 0 {
            return;
        }
        let Some(signed) = sign_batch(&ledger, &mut batch).await else {
            continue;
        };
        if let Err(mpsc::error::SendError(lost)) = out.send(signed).await {
            tracing::error!("no committer left; refusing batch");
            for s in &lost.items {
                refuse(&ledger, &s.job, m::ERR_MINT_INTERNAL);
            }
            return;
        }
    }
}

/// Checks requests that need no database: keyset (any keyset of an epoch that is not final —
/// the signature is always made with the active one), amount, curve point, duplicates.
fn check(
    ledger: &EhashLedger,
    active: Id,
    batch: &mut Vec<SignJob>,
) -> Vec<(SignJob, BlindedMessage)> {
    let mut seen = HashSet::with_capacity(batch.len());
    let mut ok = Vec::with_capacity(batch.len());
    for job in batch.drain(..) {
        let code = match Id::from_bytes(&job.keyset_id) {
            Ok(id) => ledger.epochs().check_request_keyset(&id).err(),
            Err(_) => Some(m::ERR_UNKNOWN_KEYSET),
        };
        let amount_ok = job.amount.is_power_of_two()
            && job.amount.trailing_zeros() <= u32::from(ledger.max_amount_log2());
        let code = code.or((!amount_ok).then_some(m::ERR_INVALID_AMOUNT));
        let point = PublicKey::from_slice(&job.blinded).ok();
        let code = code.or(point.is_none().then_some(m::ERR_INVALID_POINT));
        match (code, point) {
            (None, Some(b)) => {
                if !seen.insert(b) {
                    refuse(ledger, &job, m::ERR_ALREADY_SIGNED);
                    continue;
                }
                let message = BlindedMessage::new(Amount::from(job.amount), active, b);
                ok.push((job, message));
            }
            (code, _) => refuse(ledger, &job, code.unwrap_or(m::ERR_INVALID_POINT)),
        }
    }
    ok
}

/// Checks and signs a batch; `None` if nothing is left to store (all answered already).
async fn sign_batch(ledger: &EhashLedger, batch: &mut Vec<SignJob>) -> Option<SignedBatch> {
    let started = Instant::now();
    let no_rotation = ledger.epochs().signing_guard().await;
    let refuse_all = |batch: &mut Vec<SignJob>| {
        for job in batch.drain(..) {
            refuse(ledger, &job, m::ERR_MINT_INTERNAL);
        }
    };
    let active = match ledger.active_keyset() {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "no active keyset; refusing batch");
            refuse_all(batch);
            return None;
        }
    };
    let keys = match ledger.epoch_keys().keyset(&active).await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "active keyset keys unavailable; refusing batch");
            refuse_all(batch);
            return None;
        }
    };
    let checked = check(ledger, active, batch);
    if checked.is_empty() {
        return None;
    }
    let batch_len = checked.len();
    let mut items = Vec::with_capacity(batch_len);
    let mut failed = None;
    for (job, message) in checked {
        if failed.is_some() {
            refuse(ledger, &job, m::ERR_MINT_INTERNAL);
            continue;
        }
        match EpochKeys::sign_one(&keys, &message) {
            Ok(signature) => items.push(Signed {
                job,
                message,
                signature,
            }),
            Err(e) => {
                refuse(ledger, &job, m::ERR_MINT_INTERNAL);
                failed = Some(e);
            }
        }
    }
    if let Some(e) = failed {
        tracing::error!(error = %e, batch = batch_len, "signing failed; refusing batch");
        for s in &items {
            refuse(ledger, &s.job, m::ERR_MINT_INTERNAL);
        }
        return None;
    }
    Some(SignedBatch {
        no_rotation,
        keyset: active,
        started,
        items,
    })
}
