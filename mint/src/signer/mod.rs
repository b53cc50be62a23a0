//! `ShareSigner`: signs blinded messages for accepted shares, with group commit.
//!
//! Two stages, each on threads of its own. Signing threads (`sign_threads`) take what is
//! queued, check it and sign it: CPU only, no database, so they never wait on a disk.
//! Committers (`signer_workers`: one on SQLite) take every signed batch waiting, store it in
//! one database transaction and only then answer. A signature is therefore durable before the
//! pool sees it, at one fsync per commit rather than per share, and signing the next batch
//! overlaps committing the last. The blinded message is the signature table's primary key, so
//! nothing is ever signed twice: a signature made for a message found stored already is
//! dropped, never sent.

mod commit;
mod signing;

use crate::EhashLedger;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Depth of the request queue.
const QUEUE: usize = 65_536;

/// Signed batches waiting for a committer, per signing thread; beyond this signing waits.
const SIGNED_PER_THREAD: usize = 4;

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
        signature: cdk::nuts::BlindSignature,
    },
    /// Refused with an `ERR_*` code.
    Refused {
        /// Requester's id.
        request_id: u64,
        /// Error code.
        code: &'static str,
    },
}

/// Handle to the signing and commit threads.
#[derive(Clone)]
pub struct ShareSigner {
    tx: mpsc::Sender<SignJob>,
}

impl ShareSigner {
    /// Starts the signing threads (`sign_threads` of the ledger) and one committer.
    pub fn spawn(ledger: Arc<EhashLedger>, max_batch: usize) -> Result<Self, std::io::Error> {
        Self::spawn_workers(ledger, max_batch, 1)
    }

    /// Starts the signing threads and `committers` committers. On PostgreSQL a commit is
    /// mostly waiting on round trips (CDK stores signatures row by row), so several commits in
    /// flight use the database better; SQLite has one writer, so one committer is right there.
    ///
    /// Each thread has a single-threaded runtime for CDK's async database API: its waits must
    /// not stall the tasks that serve the pools and the HTTP API.
    pub fn spawn_workers(
        ledger: Arc<EhashLedger>,
        max_batch: usize,
        committers: u32,
    ) -> Result<Self, std::io::Error> {
        let max_batch = max_batch.max(1);
        let threads = ledger.sign_threads().max(1);
        let (tx, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let (signed_tx, signed_rx) = mpsc::channel(SIGNED_PER_THREAD * threads);
        let signed_rx = Arc::new(tokio::sync::Mutex::new(signed_rx));
        // When requests pile up, each signing thread takes its part of a batch, so all of
        // them sign; one committer joins their batches into one transaction, several
        // committers (PostgreSQL) each take a part, so that all of them have work.
        let committers = committers.max(1);
        let per_commit = max_batch.div_ceil(committers as usize);
        let take = max_batch.div_ceil(threads.max(committers as usize));
        for thread in 0..threads {
            let (ledger, rx, out) = (ledger.clone(), rx.clone(), signed_tx.clone());
            spawn_thread(format!("mint-sign-{thread}"), async move {
                signing::run(ledger, rx, out, take).await
            })?;
        }
        for committer in 0..committers {
            let (ledger, rx) = (ledger.clone(), signed_rx.clone());
            spawn_thread(format!("mint-commit-{committer}"), async move {
                commit::run(ledger, rx, per_commit).await
            })?;
        }
        Ok(Self { tx })
    }

    /// Queues a request; fails only if the signing threads stopped.
    pub async fn submit(&self, job: SignJob) -> Result<(), SignJob> {
        self.tx.send(job).await.map_err(|e| e.0)
    }
}

fn spawn_thread(
    name: String,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), std::io::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(name)
        .spawn(move || runtime.block_on(work))?;
    Ok(())
}

/// Answers a request with a refusal.
fn refuse(ledger: &EhashLedger, job: &SignJob, code: &'static str) {
    ledger.counters.refused.fetch_add(1, Ordering::Relaxed);
    let _ = job.reply.send(SignOutcome::Refused {
        request_id: job.request_id,
        code,
    });
}
