//! `ShareSigner`: signs blinded messages for accepted shares with group commit.
//!
//! Requests queue on a channel; one worker takes everything queued (up to `max_batch`), checks
//! them, signs them and stores all signatures in one SQLite transaction, and only then answers.
//! A signature is therefore durable before the pool sees it, at one fsync per batch rather than
//! per share; the blinded message is the table's primary key, so nothing is ever signed twice.

use crate::epoch_keys::EpochKeys;
use crate::epochs::store::IssueEntry;
use crate::EhashLedger;
use cdk::nuts::{BlindSignature, BlindedMessage, Id, PublicKey};
use cdk::Amount;
use ehash_protocol::messages as m;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Passes at storing a batch before its requests are refused.
const STORE_ATTEMPTS: u32 = 5;

/// Depth of the request queue.
const QUEUE: usize = 65_536;

/// One sign request and where to send its outcome.
pub struct SignJob {
    /// Requester's id.
    pub request_id: u64,
    /// Amount to sign.
    pub amount: u64,
    /// Keyset id bytes.
    pub keyset_id: Vec<u8>,
    /// B_ bytes.
    pub blinded: Vec<u8>,
    /// A resend: an existing signature for the same B_, amount and keyset is returned.
    pub replay: bool,
    /// Outcome channel of the requester.
    pub reply: mpsc::UnboundedSender<SignOutcome>,
}

/// Outcome of one request.
#[derive(Debug, Clone)]
pub enum SignOutcome {
    /// Signed and stored.
    Signed {
        /// Requester's id.
        request_id: u64,
        /// The signature (with DLEQ).
        signature: BlindSignature,
    },
    /// Refused with an `ERR_*` code.
    Refused {
        /// Requester's id.
        request_id: u64,
        /// Error code.
        code: &'static str,
    },
}

/// Handle to the signing worker.
#[derive(Clone)]
pub struct ShareSigner {
    tx: mpsc::Sender<SignJob>,
}

impl ShareSigner {
    /// Starts the worker.
    ///
    /// The worker gets a thread of its own (with a single-threaded runtime for CDK's async
    /// database API): its SQLite commits wait on fsync, which must not stall the tasks that
    /// serve the pools and the HTTP API.
    pub fn spawn(ledger: Arc<EhashLedger>, max_batch: usize) -> Result<Self, std::io::Error> {
        Self::spawn_workers(ledger, max_batch, 1)
    }

    /// Starts `workers` workers on one queue, each committing its own batches. On PostgreSQL
    /// a batch's commit is mostly waiting on round trips (CDK stores signatures row by row),
    /// so several batches in flight use the database and the cores better; SQLite has one
    /// writer, so one worker is right there.
    pub fn spawn_workers(
        ledger: Arc<EhashLedger>,
        max_batch: usize,
        workers: u32,
    ) -> Result<Self, std::io::Error> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for worker in 0..workers.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (ledger, rx) = (ledger.clone(), rx.clone());
            std::thread::Builder::new()
                .name(format!("mint-signer-{worker}"))
                .spawn(move || runtime.block_on(run(ledger, rx, max_batch.max(1))))?;
        }
        Ok(Self { tx })
    }

    /// Queues a request; fails only if the worker stopped.
    pub async fn submit(&self, job: SignJob) -> Result<(), SignJob> {
        self.tx.send(job).await.map_err(|e| e.0)
    }
}

async fn run(
    ledger: Arc<EhashLedger>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<SignJob>>>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        // The queue is held only while taking a batch, not while signing it.
        let taken = rx.lock().await.recv_many(&mut batch, max_batch).await;
        if taken == 0 {
            return;
        }
        sign_batch(&ledger, &mut batch).await;
        batch.clear();
    }
}

struct Checked {
    job: SignJob,
    message: BlindedMessage,
}

fn refuse(ledger: &EhashLedger, job: &SignJob, code: &'static str) {
    ledger.counters.refused.fetch_add(1, Ordering::Relaxed);
    let _ = job.reply.send(SignOutcome::Refused {
        request_id: job.request_id,
        code,
    });
}

/// Checks requests that need no database: keyset (any keyset of an epoch that is not final —
/// the signature is always made with the active one), amount, curve point, duplicates.
fn check(ledger: &EhashLedger, active: Id, batch: &mut Vec<SignJob>) -> Vec<Checked> {
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
                ok.push(Checked { job, message });
            }
            (code, _) => refuse(ledger, &job, code.unwrap_or(m::ERR_INVALID_POINT)),
        }
    }
    ok
}

async fn sign_batch(ledger: &EhashLedger, batch: &mut Vec<SignJob>) {
    // No rotation while this batch signs: its signatures all count for one known epoch.
    let _no_rotation = ledger.epochs().signing_guard().await;
    let active = match ledger.active_keyset() {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "no active keyset; refusing batch");
            for job in batch.drain(..) {
                refuse(ledger, &job, m::ERR_MINT_INTERNAL);
            }
            return;
        }
    };
    // The keys are loaded here, before the signing transaction: loading reads the keyset
    // table of the same database, which would wait on our own write lock.
    let keys = match ledger.epoch_keys().keyset(&active).await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "active keyset keys unavailable; refusing batch");
            for job in batch.drain(..) {
                refuse(ledger, &job, m::ERR_MINT_INTERNAL);
            }
            return;
        }
    };
    let checked = check(ledger, active, batch);
    if checked.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let mut stored = store_signatures(ledger, &checked, keys.clone()).await;
    for attempt in 1..STORE_ATTEMPTS {
        let Err(e) = &stored else { break };
        // Another mint process on the same database may have committed some of these blinded
        // messages between our check and our commit; the next pass finds their signatures and
        // signs the rest instead of failing the whole batch.
        tracing::warn!(error = %e, batch = checked.len(), attempt, "signing batch failed; retrying");
        tokio::time::sleep(std::time::Duration::from_millis(5 * u64::from(attempt))).await;
        stored = store_signatures(ledger, &checked, keys.clone()).await;
    }
    let took = started.elapsed();
    ledger.counters.latency.batch.observe(took.as_secs_f64());
    ledger.counters.batch_micros.fetch_add(
        u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    match stored {
        Ok(results) => {
            let (mut signed, mut replayed) = (0u64, 0u64);
            for (c, result) in checked.iter().zip(results) {
                let signature = match result {
                    Stored::Fresh(s) => {
                        signed += 1;
                        s
                    }
                    // Handing the same signature to the same pool again issues nothing new (it
                    // may be of an earlier epoch's keyset).
                    Stored::Existing(s) if c.job.replay && s.amount == c.message.amount => {
                        replayed += 1;
                        s
                    }
                    Stored::Existing(_) => {
                        refuse(ledger, &c.job, m::ERR_ALREADY_SIGNED);
                        continue;
                    }
                };
                let _ = c.job.reply.send(SignOutcome::Signed {
                    request_id: c.job.request_id,
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
        Err(e) => {
            tracing::error!(error = %e, batch = checked.len(), "signing batch failed; nothing stored");
            for c in &checked {
                refuse(ledger, &c.job, m::ERR_MINT_INTERNAL);
            }
        }
    }
}

/// A signature made now, or found in the database from before.
enum Stored {
    Fresh(BlindSignature),
    Existing(BlindSignature),
}

/// Signs the messages not signed before and stores them in one transaction.
/// Returns, per message, the new signature or the one stored earlier.
async fn store_signatures(
    ledger: &EhashLedger,
    checked: &[Checked],
    keys: std::sync::Arc<cdk::nuts::MintKeySet>,
) -> Result<Vec<Stored>, String> {
    let store = ledger.mint().localstore();
    let mut tx = store.begin_transaction().await.map_err(|e| e.to_string())?;
    let points: Vec<PublicKey> = checked.iter().map(|c| c.message.blinded_secret).collect();
    let existing = match tx.get_blind_signatures(&points).await {
        Ok(v) => v,
        Err(e) => {
            let _ = tx.rollback().await;
            return Err(e.to_string());
        }
    };
    let fresh: Vec<usize> = (0..checked.len())
        .filter(|&i| existing.get(i).is_none_or(|s| s.is_none()))
        .collect();
    let messages: Vec<BlindedMessage> = fresh.iter().map(|&i| checked[i].message.clone()).collect();
    let fresh_points: Vec<PublicKey> = fresh.iter().map(|&i| points[i]).collect();
    // Every message of a batch is for the active keyset (see `check`).
    let keyset_text = keys.id.to_string();
    let issue: Vec<IssueEntry> = messages
        .iter()
        .map(|msg| {
            (
                msg.blinded_secret.to_bytes(),
                keyset_text.clone(),
                u64::from(msg.amount),
            )
        })
        .collect();
    let issue_points: Vec<[u8; 33]> = issue.iter().map(|(b, _, _)| *b).collect();
    if let Err(e) = ledger.epochs().begin_issue(&issue).await {
        let _ = tx.rollback().await;
        return Err(e.to_string());
    }
    // Until the CDK commit, a failure means nothing was signed: drop the write-ahead rows.
    let signatures = if messages.is_empty() {
        Vec::new()
    } else {
        match EpochKeys::sign(keys, &messages, ledger.sign_threads()).await {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(abandon(ledger, &issue_points, e.to_string()).await);
            }
        }
    };
    if !signatures.is_empty() {
        if let Err(e) = tx
            .add_blind_signatures(&fresh_points, &signatures, None)
            .await
        {
            let _ = tx.rollback().await;
            return Err(abandon(ledger, &issue_points, e.to_string()).await);
        }
    }
    // A failed commit may still have reached the disk: the write-ahead rows stay and the next
    // start counts whatever CDK holds.
    let commit_started = std::time::Instant::now();
    tx.commit().await.map_err(|e| e.to_string())?;
    ledger
        .counters
        .latency
        .db_commit
        .observe(commit_started.elapsed().as_secs_f64());
    if let Err(e) = ledger.epochs().settle_issue(&issue, &issue_points).await {
        tracing::error!(error = %e, "issuance not settled; counted at the next start");
    }
    let mut fresh_sigs = fresh.into_iter().zip(signatures).peekable();
    let mut out = Vec::with_capacity(checked.len());
    for (i, old) in existing
        .into_iter()
        .chain(std::iter::repeat(None))
        .take(checked.len())
        .enumerate()
    {
        match old {
            Some(s) => out.push(Stored::Existing(s)),
            None => match fresh_sigs.next_if(|(j, _)| *j == i) {
                Some((_, s)) => out.push(Stored::Fresh(s)),
                None => return Err(format!("no signature produced for message {i}")),
            },
        }
    }
    Ok(out)
}

/// Drops the write-ahead rows of a batch that signed nothing; returns the batch's error.
async fn abandon(ledger: &EhashLedger, points: &[[u8; 33]], error: String) -> String {
    if let Err(e) = ledger.epochs().settle_issue(&[], points).await {
        tracing::error!(error = %e, "write-ahead rows left for the next start");
    }
    error
}
