//! The devnet faucet: a little ehash of the current epoch for anyone who asks, so the wallet
//! page can be tried before a miner earned anything. Enabled only by `devnet_faucet` in the
//! mint's config (which `hashpool devnet` sets); production configs never set it.
//!
//! Faucet outputs go through the [`ShareSigner`] like shares: they are durably stored,
//! counted in the epoch's issued ehash, and signed with the active keyset.

use crate::signer::{ShareSigner, SignJob, SignOutcome};
use cdk::nuts::BlindSignature;
pub use ehash_api::{FaucetInfo, FaucetRequest, FaucetResponse, FAUCET_PATH};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Shortest time between two gifts.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Why the faucet gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum FaucetError {
    /// Asked more than one gift.
    #[error("the faucet gives at most {limit} HASH per request, asked {asked}")]
    TooMuch {
        /// Limit.
        limit: u64,
        /// Asked.
        asked: u64,
    },
    /// Asked again too soon.
    #[error("the faucet gives at most once per second")]
    TooSoon,
    /// The signer refused an output.
    #[error("output refused: {0}")]
    Refused(&'static str),
    /// The signer stopped.
    #[error("the signer is not running")]
    Stopped,
}

/// The faucet.
pub struct Faucet {
    amount: u64,
    signer: ShareSigner,
    last: Mutex<Option<Instant>>,
}

impl Faucet {
    /// A faucet giving `amount` HASH per request.
    pub fn new(amount: u64, signer: ShareSigner) -> Self {
        Self {
            amount,
            signer,
            last: Mutex::new(None),
        }
    }

    /// What it gives.
    pub fn info(&self) -> FaucetInfo {
        FaucetInfo {
            amount: self.amount,
        }
    }

    /// Signs the outputs of one gift.
    pub async fn give(&self, request: FaucetRequest) -> Result<FaucetResponse, FaucetError> {
        let asked = request
            .outputs
            .iter()
            .try_fold(0u64, |s, o| s.checked_add(u64::from(o.amount)))
            .unwrap_or(u64::MAX);
        if asked > self.amount {
            return Err(FaucetError::TooMuch {
                limit: self.amount,
                asked,
            });
        }
        {
            let mut last = self.last.lock().map_err(|_| FaucetError::Stopped)?;
            if last.is_some_and(|t| t.elapsed() < MIN_INTERVAL) {
                return Err(FaucetError::TooSoon);
            }
            *last = Some(Instant::now());
        }
        let (reply, mut outcomes) = mpsc::unbounded_channel();
        for (i, o) in request.outputs.iter().enumerate() {
            let job = SignJob {
                request_id: i as u64,
                amount: u64::from(o.amount),
                keyset_id: o.keyset_id.to_bytes(),
                blinded: o.blinded_secret.to_bytes().to_vec(),
                replay: false,
                reply: reply.clone(),
            };
            self.signer
                .submit(job)
                .await
                .map_err(|_| FaucetError::Stopped)?;
        }
        drop(reply);
        let mut signatures: Vec<Option<BlindSignature>> = vec![None; request.outputs.len()];
        while let Some(outcome) = outcomes.recv().await {
            match outcome {
                SignOutcome::Signed {
                    request_id,
                    signature,
                } => {
                    if let Some(slot) = signatures.get_mut(request_id as usize) {
                        *slot = Some(signature);
                    }
                }
                SignOutcome::Refused { code, .. } => return Err(FaucetError::Refused(code)),
            }
        }
        let signatures = signatures
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or(FaucetError::Stopped)?;
        tracing::info!(
            amount = asked,
            outputs = signatures.len(),
            "devnet faucet gave ehash"
        );
        Ok(FaucetResponse { signatures })
    }
}
