//! The commit stage: stores every signed batch waiting in one database transaction, then
//! answers. Signatures leave the mint only after this commit.

use super::signing::{Signed, SignedBatch};
use super::{refuse, SignOutcome};
use crate::epochs::receipts;
use crate::EhashLedger;
use cdk::nuts::{BlindSignature, PublicKey};
use ehash_protocol::messages as m;
use ehash_protocol::sign_batch as batch;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Passes at storing a batch before its requests are refused.
const STORE_ATTEMPTS: u32 = 5;

/// Commits until every signing thread is gone.
pub(super) async fn run(
    ledger: Arc<EhashLedger>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<SignedBatch>>>,
    max_batch: usize,
) {
    loop {
        let mut batches = Vec::new();
        {
            // Held only while taking: another committer (PostgreSQL) takes the next ones.
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut n = first.items.len();
            batches.push(first);
            while n < max_batch {
                match rx.try_recv() {
                    Ok(b) => {
                        n += b.items.len();
                        batches.push(b);
                    }
                    Err(_) => break,
                }
            }
        }
        // Batches waiting together were signed under rotation guards held at once, so they
        // share one keyset; a mismatch would still be committed apart, never mixed.
        while !batches.is_empty() {
            let keyset = batches[0].keyset;
            let (same, rest): (Vec<_>, Vec<_>) =
                batches.into_iter().partition(|b| b.keyset == keyset);
            commit(&ledger, same).await;
            batches = rest;
        }
    }
}

/// Stores and answers batches of one keyset.
async fn commit(ledger: &EhashLedger, batches: Vec<SignedBatch>) {
    let started = batches
        .iter()
        .map(|b| b.started)
        .min()
        .unwrap_or_else(Instant::now);
    // The guards stay held until the answers are out.
    let mut guards = Vec::with_capacity(batches.len());
    let mut items: Vec<Signed> = Vec::new();
    let mut seen = HashSet::new();
    for batch in batches {
        guards.push(batch.no_rotation);
        for s in batch.items {
            // The same B_ signed by two signing threads at once: only the first is stored.
            if seen.insert(s.message.blinded_secret) {
                items.push(s);
            } else {
                refuse(ledger, &s.job, m::ERR_ALREADY_SIGNED);
            }
        }
    }
    let mut stored = store(ledger, &items).await;
    for attempt in 1..STORE_ATTEMPTS {
        let Err(e) = &stored else { break };
        // Another mint process on the same database may have committed some of these blinded
        // messages between our check and our commit; the next pass finds their signatures and
        // stores the rest instead of failing the whole batch.
        tracing::warn!(error = %e, batch = items.len(), attempt, "storing signatures failed; retrying");
        tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
        stored = store(ledger, &items).await;
    }
    match stored {
        Ok(results) => answer(ledger, &items, results),
        Err(e) => {
            tracing::error!(error = %e, batch = items.len(), "storing signatures failed; nothing stored");
            for s in &items {
                refuse(ledger, &s.job, m::ERR_MINT_INTERNAL);
            }
        }
    }
    let took = started.elapsed();
    ledger.counters.latency.batch.observe(took.as_secs_f64());
    ledger.counters.batch_micros.fetch_add(
        u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    drop(guards);
}

/// Sends each request its signature: the one just stored, or for a replay the one stored
/// before; any other request for a message stored before is refused.
fn answer(ledger: &EhashLedger, items: &[Signed], results: Vec<Option<BlindSignature>>) {
    let (mut signed, mut replayed) = (0u64, 0u64);
    for (s, existing) in items.iter().zip(results) {
        let signature = match existing {
            None => {
                signed += 1;
                s.signature.clone()
            }
            // Handing the same signature to the same pool again issues nothing new (it may be
            // of an earlier epoch's keyset).
            Some(old) if s.job.replay && old.amount == s.message.amount => {
                replayed += 1;
                old
            }
            Some(_) => {
                refuse(ledger, &s.job, m::ERR_ALREADY_SIGNED);
                continue;
            }
        };
        let _ = s.job.reply.send(SignOutcome::Signed {
            request_id: s.job.request_id,
            signature,
        });
    }
    ledger.counters.signed.fetch_add(signed, Ordering::Relaxed);
    ledger
        .counters
        .replayed
        .fetch_add(replayed, Ordering::Relaxed);
    ledger.counters.commits.fetch_add(1, Ordering::Relaxed);
}

/// Stores the signatures of messages not signed before, in one transaction. Returns, per
/// item, `None` if its new signature was stored, or the signature stored earlier.
async fn store(
    ledger: &EhashLedger,
    items: &[Signed],
) -> Result<Vec<Option<BlindSignature>>, String> {
    // New shares carry new messages: storing them all at once is the usual case, and needs no
    // look-up first. A replay, or any failure (a message stored before, another mint process
    // on the same database), takes the path that looks first.
    if !items.iter().any(|s| s.job.replay) {
        match store_all_new(ledger, items).await {
            Ok(()) => return Ok(vec![None; items.len()]),
            Err(e) => {
                tracing::debug!(error = %e, batch = items.len(), "batch not stored as all new; looking up what was stored before")
            }
        }
    }
    store_checked(ledger, items).await
}

/// Stores every item's signature, or nothing (an error) if any message was stored before.
async fn store_all_new(ledger: &EhashLedger, items: &[Signed]) -> Result<(), String> {
    let db = ledger.mint().localstore();
    let tx = db.begin_transaction().await.map_err(|e| e.to_string())?;
    let fresh: Vec<&Signed> = items.iter().collect();
    store_and_settle(ledger, tx, &fresh).await
}

/// Adds the signatures of `fresh` and their lane's receipt to `tx`, commits, then counts them.
async fn store_and_settle(
    ledger: &EhashLedger,
    mut tx: Box<dyn cdk::cdk_database::MintTransaction<cdk::cdk_database::Error> + Send + Sync>,
    fresh: &[&Signed],
) -> Result<(), String> {
    let mut lane = ledger.epochs().receipts().take();
    // Summed per keyset first: the id is formatted once per keyset, not once per share.
    let per_keyset = batch::group_by_keyset(
        fresh
            .iter()
            .map(|s| (s.message.keyset_id, s.message.amount)),
    );
    let receipt = lane.receipt_with(per_keyset.into_iter().map(|(keyset, amounts)| {
        let total = amounts
            .into_iter()
            .fold(0u64, |t, a| t.saturating_add(u64::from(a)));
        (keyset.to_string(), total)
    }));
    let messages: Vec<PublicKey> = fresh.iter().map(|s| s.message.blinded_secret).collect();
    let signatures: Vec<BlindSignature> = fresh.iter().map(|s| s.signature.clone()).collect();
    let (ns, sub) = receipts::NAMESPACE;
    // The receipt goes in the signatures' transaction: it says what CDK holds.
    let added = match tx.add_blind_signatures(&messages, &signatures, None).await {
        Ok(()) => tx.kv_write(ns, sub, &receipt.key, &receipt.encode()).await,
        Err(e) => Err(e),
    };
    if let Err(e) = added {
        let _ = tx.rollback().await;
        return Err(e.to_string());
    }
    let commit_started = Instant::now();
    if let Err(e) = tx.commit().await {
        // It may still have reached the disk: the sweep settles whatever the lane holds.
        lane.retire();
        return Err(e.to_string());
    }
    lane.committed(&receipt);
    ledger
        .counters
        .latency
        .db_commit
        .observe(commit_started.elapsed().as_secs_f64());
    let settled = ledger
        .epochs()
        .settle_receipts(std::slice::from_ref(&receipt), &[])
        .await;
    if let Err(e) = settled {
        // The lane's next settlement, or the sweep, counts it: totals are cumulative.
        tracing::error!(error = %e, receipt = %receipt.key, "issuance not settled yet");
    }
    Ok(())
}

/// Looks up which messages were signed before, and stores the signatures of the others.
async fn store_checked(
    ledger: &EhashLedger,
    items: &[Signed],
) -> Result<Vec<Option<BlindSignature>>, String> {
    let db = ledger.mint().localstore();
    let mut tx = db.begin_transaction().await.map_err(|e| e.to_string())?;
    let points: Vec<PublicKey> = items.iter().map(|s| s.message.blinded_secret).collect();
    let mut existing = match tx.get_blind_signatures(&points).await {
        Ok(v) => v,
        Err(e) => {
            let _ = tx.rollback().await;
            return Err(e.to_string());
        }
    };
    existing.resize(items.len(), None);
    let fresh: Vec<&Signed> = items
        .iter()
        .zip(&existing)
        .filter(|(_, old)| old.is_none())
        .map(|(s, _)| s)
        .collect();
    if fresh.is_empty() {
        let _ = tx.rollback().await;
        return Ok(existing);
    }
    store_and_settle(ledger, tx, &fresh).await?;
    Ok(existing)
}
