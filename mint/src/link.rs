//! The mint link: pools connect over Noise, prove their key, then send sign requests.

use crate::epochs::{EpochAnnouncement, TipFacts};
use crate::signer::{ShareSigner, SignJob, SignOutcome};
use crate::EhashLedger;
use ehash_protocol::sign_batch::{self as batch, ResponseRecord, SignRequests, SignResponses};
use ehash_protocol::{auth, messages as m, EXTENSION_TYPE_MINT_LINK};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use sv2_io::{AuthorityKeypair, AuthorityPublicKey, FrameReader, FrameSender};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts pool connections until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    keys: AuthorityKeypair,
    pools: Vec<AuthorityPublicKey>,
    signer: ShareSigner,
    ledger: Arc<EhashLedger>,
    http_url: String,
    shutdown: CancellationToken,
) {
    let ctx = Arc::new(LinkContext {
        keys: keys.clone(),
        pools: Arc::new(pools),
        signer,
        ledger,
        http_url,
    });
    sv2_io::serve(listener, keys, "mint-link", shutdown, move |r, s, _peer| {
        let ctx = ctx.clone();
        async move { ctx.handle(r, s).await }
    })
    .await;
}

struct LinkContext {
    keys: AuthorityKeypair,
    pools: Arc<Vec<AuthorityPublicKey>>,
    signer: ShareSigner,
    ledger: Arc<EhashLedger>,
    http_url: String,
}

fn encode<T: m::Wire>(msg: T, t: u8) -> Result<sv2_io::Frame, String> {
    sv2_io::encode(msg, t, EXTENSION_TYPE_MINT_LINK, false).map_err(|e| e.to_string())
}

impl LinkContext {
    async fn handle(&self, mut reader: FrameReader, sender: FrameSender) -> Result<(), String> {
        // While the operator pauses signing no pool is served: pools then refuse ehash shares
        // as for a mint that is down, and replay what they journaled once it is back.
        let mut paused = self.ledger.signing_paused.subscribe();
        if *paused.borrow_and_update() {
            return Err("share signing is paused by the operator".into());
        }
        let pool = self.authenticate(&mut reader, &sender).await?;
        tracing::info!(peer = %reader.peer(), %pool, "pool authenticated on mint link");
        let keyset = self.ledger.active_keyset().map_err(|e| e.to_string())?;
        let ready = m::MintReady {
            keyset_id: m::b0255(&keyset.to_bytes()).map_err(|e| e.to_string())?,
            max_amount_log2: self.ledger.max_amount_log2(),
            http_url: m::str0255(&self.http_url).map_err(|e| e.to_string())?,
        };
        sender
            .send(encode(ready, m::MSG_MINT_READY)?)
            .await
            .map_err(|e| e.to_string())?;

        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let epochs = self.ledger.epochs().announcements();
        // Answered in the form asked: batches to a pool that sends batches.
        let batched = Arc::new(AtomicBool::new(false));
        let forwarder = tokio::spawn(forward_outcomes(
            out_rx,
            epochs,
            sender.clone(),
            batched.clone(),
        ));
        let result = tokio::select! {
            r = self.serve_requests(&mut reader, &sender, out_tx, &batched) => r,
            _ = paused.wait_for(|p| *p) => Err("share signing paused by the operator".into()),
        };
        forwarder.abort();
        result
    }

    async fn authenticate(
        &self,
        reader: &mut FrameReader,
        sender: &FrameSender,
    ) -> Result<AuthorityPublicKey, String> {
        let nonce: [u8; 32] = rand::random();
        let challenge = m::MintChallenge {
            nonce: nonce.into(),
        };
        sender
            .send(encode(challenge, m::MSG_MINT_CHALLENGE)?)
            .await
            .map_err(|e| e.to_string())?;
        let mut frame = tokio::time::timeout(AUTH_TIMEOUT, reader.next())
            .await
            .map_err(|_| "pool did not authenticate in time".to_string())?
            .map_err(|e| e.to_string())?;
        let (ext, t) = sv2_io::frame::kind(&frame);
        if (ext, t) != (EXTENSION_TYPE_MINT_LINK, m::MSG_MINT_AUTH) {
            return Err(format!(
                "expected MintAuth, got ext {ext:#06x} type {t:#04x}"
            ));
        }
        let msg: m::MintAuth = m::decode(frame.payload()).map_err(|e| format!("{e:?}"))?;
        let pk = msg.pool_pubkey.to_array();
        let sig = msg.signature.to_array();
        let allowed = self.pools.iter().any(|p| p.0 == pk);
        let valid = auth::verify_challenge(&pk, &sig, &nonce, &self.keys.public().0);
        if !(allowed && valid) {
            let code = if allowed {
                "invalid-signature"
            } else {
                "unknown-pool-key"
            };
            if let Ok(f) = encode(
                m::MintAuthError {
                    error_code: m::str0255(code).map_err(|e| e.to_string())?,
                },
                m::MSG_MINT_AUTH_ERROR,
            ) {
                let _ = sender.send(f).await;
            }
            return Err(format!("pool authentication failed: {code}"));
        }
        Ok(AuthorityPublicKey(pk))
    }

    async fn serve_requests(
        &self,
        reader: &mut FrameReader,
        sender: &FrameSender,
        outcomes: mpsc::UnboundedSender<SignOutcome>,
        batched: &AtomicBool,
    ) -> Result<(), String> {
        loop {
            let mut frame = reader.next().await.map_err(|e| e.to_string())?;
            match sv2_io::frame::kind(&frame) {
                (EXTENSION_TYPE_MINT_LINK, batch::MSG_SIGN_REQUESTS) => {
                    let requests: SignRequests = m::decode(frame.payload())
                        .map_err(|e| format!("bad SignRequests: {e:?}"))?;
                    let records = requests
                        .unpack()
                        .map_err(|e| format!("bad SignRequests: {e}"))?;
                    batched.store(true, Ordering::Relaxed);
                    let keyset_id = requests.keyset_id.as_bytes();
                    for r in records {
                        let job = SignJob {
                            request_id: r.request_id,
                            amount: r.amount,
                            keyset_id: keyset_id.to_vec(),
                            blinded: r.blinded.to_vec(),
                            replay: r.replay,
                            reply: outcomes.clone(),
                        };
                        if self.signer.submit(job).await.is_err() {
                            return Err("signer stopped".into());
                        }
                    }
                }
                (EXTENSION_TYPE_MINT_LINK, m::MSG_SIGN_REQUEST) => {
                    let req: m::SignRequest = m::decode(frame.payload())
                        .map_err(|e| format!("bad SignRequest: {e:?}"))?;
                    let job = SignJob {
                        request_id: req.request_id,
                        amount: req.amount,
                        keyset_id: req.keyset_id.into_bytes(),
                        blinded: req.blinded.into_bytes(),
                        replay: req.replay,
                        reply: outcomes.clone(),
                    };
                    if self.signer.submit(job).await.is_err() {
                        return Err("signer stopped".into());
                    }
                }
                (EXTENSION_TYPE_MINT_LINK, m::MSG_CHAIN_TIP) => {
                    let tip: m::ChainTip =
                        m::decode(frame.payload()).map_err(|e| format!("bad ChainTip: {e:?}"))?;
                    let facts = TipFacts {
                        height: tip.height,
                        target_le: tip.target.to_array(),
                        coinbase_value: tip.coinbase_value,
                        share_unit_log2: tip.share_unit_log2,
                    };
                    if let Err(e) = self.ledger.epochs().on_tip(facts).await {
                        tracing::error!(error = %e, height = tip.height, "epoch rotation failed; retried on the next tip");
                    }
                }
                (EXTENSION_TYPE_MINT_LINK, m::MSG_BLOCK_REPORT) => {
                    let report: m::BlockReport = m::decode(frame.payload())
                        .map_err(|e| format!("bad BlockReport: {e:?}"))?;
                    match self.ledger.epochs().on_block(&report).await {
                        Ok(status) => {
                            let ack = m::BlockAck {
                                hash: report.hash.clone(),
                                status,
                            };
                            sender
                                .send(encode(ack, m::MSG_BLOCK_ACK)?)
                                .await
                                .map_err(|e| e.to_string())?;
                        }
                        // No ack: the pool reports it again.
                        Err(e) => {
                            tracing::error!(error = %e, height = report.height, "block report not recorded")
                        }
                    }
                }
                (ext, t) => return Err(format!("unexpected frame ext {ext:#06x} type {t:#04x}")),
            }
        }
    }
}

/// Sends sign outcomes and epoch announcements to the pool.
async fn forward_outcomes(
    mut rx: mpsc::UnboundedReceiver<SignOutcome>,
    mut epochs: watch::Receiver<Option<EpochAnnouncement>>,
    sender: FrameSender,
    batched: Arc<AtomicBool>,
) {
    // The current epoch first, then every change.
    epochs.mark_changed();
    let mut outcomes = Vec::new();
    loop {
        let frames = tokio::select! {
            n = rx.recv_many(&mut outcomes, batch::MAX_RESPONSES) => {
                if n == 0 {
                    return;
                }
                if batched.load(Ordering::Relaxed) {
                    outcome_batch_frames(outcomes.drain(..))
                } else {
                    outcomes.drain(..).map(outcome_frame).collect()
                }
            }
            changed = epochs.changed() => {
                if changed.is_err() {
                    return;
                }
                let current = *epochs.borrow_and_update();
                match current {
                    Some(a) => vec![epoch_frame(a)],
                    None => continue,
                }
            }
        };
        for frame in frames {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode mint-link message");
                    continue;
                }
            };
            if sender.send(frame).await.is_err() {
                return;
            }
        }
    }
}

/// Signatures in `SignResponses` frames, one per keyset (and per frame's worth); refusals in
/// `SignError` frames.
fn outcome_batch_frames(
    outcomes: impl Iterator<Item = SignOutcome>,
) -> Vec<Result<sv2_io::Frame, String>> {
    let mut frames = Vec::new();
    let mut signed = Vec::new();
    for outcome in outcomes {
        let (request_id, signature) = match outcome {
            SignOutcome::Signed {
                request_id,
                signature,
            } => (request_id, signature),
            refused @ SignOutcome::Refused { .. } => {
                frames.push(outcome_frame(refused));
                continue;
            }
        };
        let Some(dleq) = signature.dleq else {
            frames.push(Err("signature without DLEQ".into()));
            continue;
        };
        let record = ResponseRecord {
            request_id,
            signature: signature.c.to_bytes(),
            dleq_e: dleq.e.to_secret_bytes(),
            dleq_s: dleq.s.to_secret_bytes(),
        };
        signed.push((signature.keyset_id, record));
    }
    for (keyset, records) in batch::group_by_keyset(signed) {
        let keyset = keyset.to_bytes();
        for chunk in records.chunks(batch::MAX_RESPONSES) {
            frames.push(
                SignResponses::pack(&keyset, chunk)
                    .map_err(|e| e.to_string())
                    .and_then(|msg| encode(msg, batch::MSG_SIGN_RESPONSES)),
            );
        }
    }
    frames
}

fn epoch_frame(a: EpochAnnouncement) -> Result<sv2_io::Frame, String> {
    let msg = m::MintEpoch {
        epoch: a.epoch,
        keyset_id: m::b0255(&a.keyset.to_bytes()).map_err(|e| e.to_string())?,
        previous_keyset_id: m::b0255(&a.previous.map(|p| p.to_bytes()).unwrap_or_default())
            .map_err(|e| e.to_string())?,
    };
    encode(msg, m::MSG_MINT_EPOCH)
}

fn outcome_frame(outcome: SignOutcome) -> Result<sv2_io::Frame, String> {
    match outcome {
        SignOutcome::Signed {
            request_id,
            signature,
        } => {
            let dleq = signature.dleq.ok_or("signature without DLEQ")?;
            let msg = m::SignResponse {
                request_id,
                keyset_id: m::b0255(&signature.keyset_id.to_bytes()).map_err(|e| e.to_string())?,
                signature: m::b0255(&signature.c.to_bytes()).map_err(|e| e.to_string())?,
                dleq_e: dleq.e.to_secret_bytes().into(),
                dleq_s: dleq.s.to_secret_bytes().into(),
            };
            encode(msg, m::MSG_SIGN_RESPONSE)
        }
        SignOutcome::Refused { request_id, code } => {
            let msg = m::SignError {
                request_id,
                error_code: m::str0255(code).map_err(|e| e.to_string())?,
            };
            encode(msg, m::MSG_SIGN_ERROR)
        }
    }
}
