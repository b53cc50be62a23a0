//! The pool's link to the mint: authenticates with the pool key, forwards sign requests for
//! accepted shares and routes signatures back to the connection that submitted the share.
//! Requests in flight when the link drops are sent again after reconnecting, marked as replays:
//! the mint answers a replay with the signature it already stored, and never signs a B_ twice.
//! A request the mint has not answered within [`JOURNAL_AFTER`] (the link is down, or the mint
//! is slow) is recorded in the share journal, which replays it after a restart; its entry is
//! closed when the answer comes. Most requests are answered sooner and never touch the disk
//! here: their claim is the signature the mint stored.

use crate::found_blocks::BlockStore;
use crate::journal::{RecordOutcome, ShareJournal};
use crate::sign_batches::{self, AbortOnDrop, Outgoing};
use crate::sign_requests::InFlight;
use crate::stats::PoolStats;
use ehash_protocol::sign_batch::{self as batch, ResponseRecord, SignResponses};
use ehash_protocol::{auth, messages as m, EXTENSION_TYPE_MINT_LINK};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sv2_io::{AuthorityKeypair, AuthorityPublicKey, Backoff, Failover, FrameSender};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// What the mint announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintInfo {
    /// Epoch of the active keyset (0 until the mint announced one).
    pub epoch: u32,
    /// Active keyset id bytes.
    pub keyset_id: Vec<u8>,
    /// Keyset of the previous epoch while the mint still signs for it.
    pub previous_keyset_id: Option<Vec<u8>>,
    /// Largest amount exponent.
    pub max_amount_log2: u8,
    /// Mint HTTP base URL.
    pub http_url: String,
}

/// Outcome routed back to a downstream connection.
#[derive(Debug, Clone)]
pub enum EhashReply {
    /// Signed.
    Signed {
        /// B_ of the request.
        blinded: [u8; 33],
        /// The signature, addressed to the share.
        signature: m::EhashSignature,
    },
    /// The share journal's verdict on an accepted ehash share.
    Recorded {
        /// B_ of the share.
        blinded: [u8; 33],
        /// Outcome.
        outcome: RecordOutcome,
    },
    /// Refused.
    Refused {
        /// B_ of the request.
        blinded: [u8; 33],
        /// Channel.
        channel_id: u32,
        /// Share sequence number.
        sequence_number: u32,
        /// Error code.
        code: String,
    },
}

/// A request waiting for the mint.
#[derive(Debug, Clone)]
pub struct PendingSign {
    /// Where the outcome goes (`None` for entries replayed from the journal after a restart).
    pub reply: Option<mpsc::UnboundedSender<EhashReply>>,
    /// Channel of the share.
    pub channel_id: u32,
    /// Sequence number of the share.
    pub sequence_number: u32,
    /// Amount.
    pub amount: u64,
    /// Keyset id.
    pub keyset_id: Vec<u8>,
    /// B_.
    pub blinded: [u8; 33],
    /// Sent before (resend after a reconnect or a restart).
    pub replay: bool,
    /// Recorded in the share journal (its entry is closed when the answer comes).
    pub journaled: bool,
}

/// How long a sign request may wait for the mint before the share journal records it.
pub const JOURNAL_AFTER: Duration = Duration::from_millis(10);

/// Shared handle to the mint link.
pub struct MintLink {
    info: watch::Sender<Option<MintInfo>>,
    sender: Mutex<Option<FrameSender>>,
    /// The session's request queue (see [`sign_batches`]); `None` while the link is down.
    requests: Mutex<Option<mpsc::UnboundedSender<Outgoing>>>,
    pending: Mutex<InFlight>,
    next_id: AtomicU64,
    stats: Arc<PoolStats>,
    journal: ShareJournal,
    blocks: Arc<BlockStore>,
    tip: Mutex<Option<m::ChainTip>>,
    unacked_blocks: Mutex<HashMap<[u8; 32], m::BlockReport>>,
}

fn link_frame<T: m::Wire>(msg: T, t: u8) -> Result<sv2_io::Frame, String> {
    sv2_io::encode(msg, t, EXTENSION_TYPE_MINT_LINK, false).map_err(|e| e.to_string())
}

impl MintLink {
    /// A link that is not connected yet.
    pub fn new(stats: Arc<PoolStats>, journal: ShareJournal, blocks: Arc<BlockStore>) -> Arc<Self> {
        let (info, _) = watch::channel(None);
        Arc::new(Self {
            info,
            sender: Mutex::new(None),
            requests: Mutex::new(None),
            pending: Mutex::new(InFlight::default()),
            next_id: AtomicU64::new(1),
            stats,
            journal,
            blocks,
            tip: Mutex::new(None),
            unacked_blocks: Mutex::new(HashMap::new()),
        })
    }

    /// Tells the mint the block being mined now (and again after every reconnect).
    pub fn report_tip(&self, tip: m::ChainTip) {
        if let Ok(mut t) = self.tip.lock() {
            *t = Some(tip.clone());
        }
        self.send_now(tip, m::MSG_CHAIN_TIP);
    }

    /// Reports a found block's state; resent after reconnects until the mint acknowledges it.
    pub fn report_block(&self, report: m::BlockReport) {
        if let Ok(mut u) = self.unacked_blocks.lock() {
            u.insert(report.hash.to_array(), report.clone());
        }
        self.send_now(report, m::MSG_BLOCK_REPORT);
    }

    /// Sends if the link is up; whatever is lost here is sent again on the next session.
    fn send_now<T: m::Wire>(&self, msg: T, t: u8) {
        let sender = self.sender.lock().ok().and_then(|s| s.clone());
        if let Some(sender) = sender {
            match link_frame(msg, t) {
                Ok(f) => {
                    let _ = sender.try_send(f);
                }
                Err(e) => {
                    tracing::error!(error = %e, msg_type = t, "cannot encode mint-link message")
                }
            }
        }
    }

    fn on_block_ack(&self, ack: m::BlockAck) {
        let hash = ack.hash.to_array();
        let done = self
            .unacked_blocks
            .lock()
            .map(|mut u| match u.get(&hash) {
                Some(r) if r.status == ack.status => u.remove(&hash).is_some(),
                _ => false,
            })
            .unwrap_or(false);
        if done {
            if let Err(e) = self.blocks.mark_acked(hash, ack.status) {
                tracing::error!(error = %e, "block acknowledgement not stored; it will be reported again");
            }
        }
    }

    fn on_epoch(&self, e: m::MintEpoch) {
        let previous = e.previous_keyset_id.into_bytes();
        let keyset_id = e.keyset_id.into_bytes();
        self.info.send_if_modified(|info| match info {
            Some(i) => {
                let next = MintInfo {
                    epoch: e.epoch,
                    keyset_id,
                    previous_keyset_id: (!previous.is_empty()).then_some(previous),
                    ..i.clone()
                };
                let changed = *i != next;
                *i = next;
                changed
            }
            None => false,
        });
        tracing::info!(epoch = e.epoch, "mint announced epoch keysets");
    }

    /// The share journal behind every request.
    pub fn journal(&self) -> &ShareJournal {
        &self.journal
    }

    /// Watches the mint's announced keyset (None while the link is down).
    pub fn info(&self) -> watch::Receiver<Option<MintInfo>> {
        self.info.subscribe()
    }

    /// Current keyset info, if the link is up.
    pub fn current(&self) -> Option<MintInfo> {
        self.info.borrow().clone()
    }

    /// True while the link is authenticated and ready.
    pub fn is_up(&self) -> bool {
        self.info.borrow().is_some()
    }

    /// Whether a blinded message for `keyset_id` worth 2^`k` can be signed now (no copies:
    /// this runs for every share).
    pub fn check(&self, keyset_id: &[u8], k: u8) -> Result<(), &'static str> {
        match self.info.borrow().as_ref() {
            None => Err(m::ERR_MINT_UNAVAILABLE),
            Some(i)
                if i.keyset_id != keyset_id
                    && i.previous_keyset_id.as_deref() != Some(keyset_id) =>
            {
                Err(m::ERR_UNKNOWN_KEYSET)
            }
            Some(i) if k > i.max_amount_log2 => Err(m::ERR_INVALID_AMOUNT),
            Some(_) => Ok(()),
        }
    }

    /// Queues a sign request; it goes out now if the link is up, else when it comes back.
    /// False (nothing queued) if a request for the same B_ is still waiting for the mint: the
    /// share's B_ is then a duplicate.
    pub fn request(&self, p: PendingSign) -> bool {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let outgoing = Outgoing::new(id, &p);
        let Ok(mut pending) = self.pending.lock() else {
            tracing::error!("pending map poisoned; request dropped");
            return true;
        };
        if !pending.insert(id, p, Instant::now()) {
            return false;
        }
        // Queued while the map is held, so a new session either replays it or gets it
        // queued, never both. If the link is down, the request is resent on reconnect.
        if let Ok(Some(queue)) = self.requests.lock().as_deref() {
            let _ = queue.send(outgoing);
        }
        true
    }

    /// Number of requests waiting for the mint.
    pub fn pending(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }

    fn take(&self, id: u64) -> Option<PendingSign> {
        self.pending.lock().ok()?.take(id)
    }

    /// A signature in a `SignResponse` of a mint that answers one at a time.
    fn on_response(&self, r: m::SignResponse) {
        let record = ResponseRecord {
            request_id: r.request_id,
            signature: match r.signature.as_bytes().try_into() {
                Ok(c) => c,
                Err(_) => {
                    tracing::warn!(request_id = r.request_id, "signature of the wrong size");
                    return;
                }
            },
            dleq_e: r.dleq_e.to_array(),
            dleq_s: r.dleq_s.to_array(),
        };
        self.on_signed(r.keyset_id.as_bytes(), &record);
    }

    fn on_responses(&self, batch: SignResponses) -> Result<(), String> {
        let records = batch
            .unpack()
            .map_err(|e| format!("bad SignResponses: {e}"))?;
        for r in &records {
            self.on_signed(batch.keyset_id.as_bytes(), r);
        }
        Ok(())
    }

    fn on_signed(&self, keyset_id: &[u8], r: &ResponseRecord) {
        let Some(p) = self.take(r.request_id) else {
            tracing::warn!(request_id = r.request_id, "signature for unknown request");
            return;
        };
        self.stats
            .ehash_signed
            .fetch_add(p.amount, Ordering::Relaxed);
        if p.journaled {
            // Counted in the totals when it was recorded.
            self.journal.complete(p.blinded);
        }
        let Some(reply) = p.reply else {
            return;
        };
        let sig = (|| {
            Some(m::EhashSignature {
                channel_id: p.channel_id,
                sequence_number: p.sequence_number,
                amount: p.amount,
                keyset_id: m::b0255(keyset_id).ok()?,
                blinded: m::b0255(&p.blinded).ok()?,
                signature: m::b0255(&r.signature).ok()?,
                dleq_e: r.dleq_e.into(),
                dleq_s: r.dleq_s.into(),
            })
        })();
        let Some(sig) = sig else {
            return;
        };
        let signed = EhashReply::Signed {
            blinded: p.blinded,
            signature: sig,
        };
        if p.journaled {
            let _ = reply.send(signed);
        } else {
            // Counted in the journal's totals before the acknowledgement it brings.
            self.journal.count(p.amount, move || {
                let _ = reply.send(signed);
            });
        }
    }

    fn on_error(&self, e: m::SignError) {
        let Some(p) = self.take(e.request_id) else {
            return;
        };
        let code = m::read_str(&e.error_code).unwrap_or_else(|_| "invalid-utf8".into());
        self.stats.ehash_refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(channel_id = p.channel_id, sequence_number = p.sequence_number, %code, "mint refused to sign");
        if code == m::ERR_MINT_INTERNAL || code == m::ERR_MINT_UNAVAILABLE {
            // Not a verdict on the request: it stays in (or goes into) the journal and is
            // replayed after the next restart.
            tracing::error!(blinded = %hex::encode(p.blinded), "sign request left open in the journal");
            if !p.journaled {
                self.record(&p);
            }
        } else if p.journaled {
            self.journal.complete(p.blinded);
        }
        let Some(reply) = p.reply else {
            return;
        };
        let _ = reply.send(EhashReply::Refused {
            blinded: p.blinded,
            channel_id: p.channel_id,
            sequence_number: p.sequence_number,
            code,
        });
    }

    /// Records a request's claim in the journal; the verdict goes to its connection.
    fn record(&self, p: &PendingSign) {
        self.stats.ehash_journaled.fetch_add(1, Ordering::Relaxed);
        let (reply, blinded) = (p.reply.clone(), p.blinded);
        self.journal.record(p.journal_entry(), move |outcome| {
            if let Some(reply) = reply {
                let _ = reply.send(EhashReply::Recorded { blinded, outcome });
            }
        });
    }

    /// Records every request waiting longer than `after` in the journal.
    fn journal_overdue(&self, after: Duration) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        // Recorded while the map is held, so that an answer arriving now closes the entry
        // only after the journal has it.
        for p in pending.overdue(after, Instant::now()) {
            self.record(&p);
        }
    }

    /// On shutdown: records every request still waiting in the journal (the next start
    /// replays it, and the mint answers with the signature it may have stored meanwhile), and
    /// waits until the journal has them.
    pub async fn journal_all(&self) {
        self.journal_overdue(Duration::ZERO);
        self.journal.flushed().await;
    }

    /// Journals overdue requests until shutdown.
    pub async fn journal_sweep(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(JOURNAL_AFTER / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => self.journal_overdue(JOURNAL_AFTER),
            }
        }
    }

    fn set_down(&self) {
        if let Ok(mut s) = self.sender.lock() {
            *s = None;
        }
        if let Ok(mut q) = self.requests.lock() {
            *q = None;
        }
        self.info.send_replace(None);
        self.stats.mint.set_up(false);
    }

    /// Keeps the link up until shutdown.
    pub async fn run(
        self: Arc<Self>,
        mut mints: Failover,
        keys: AuthorityKeypair,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            let Some(mint) = mints.current().cloned() else {
                tracing::error!("no mint configured");
                return;
            };
            let ups = self.stats.mint.ups();
            let result = tokio::select! {
                _ = shutdown.cancelled() => { self.set_down(); return; }
                r = self.session(&mint.address, &mint.authority, &keys) => r,
            };
            self.set_down();
            match result {
                Ok(()) => backoff.reset(),
                Err(e) => {
                    tracing::warn!(address = %mint.address, error = %e, retry_in = ?backoff.delay(), "mint link down")
                }
            }
            mints.session_ended(self.stats.mint.ups() > ups);
            if mints.current().is_some_and(|m| m.address != mint.address) {
                backoff.reset();
            }
            if !backoff.wait(&shutdown).await {
                return;
            }
        }
    }

    async fn session(
        &self,
        address: &str,
        authority: &AuthorityPublicKey,
        keys: &AuthorityKeypair,
    ) -> Result<(), String> {
        let (mut reader, sender) = sv2_io::connect(address, authority)
            .await
            .map_err(|e| e.to_string())?;
        let mut frame = reader.next().await.map_err(|e| e.to_string())?;
        if sv2_io::frame::kind(&frame) != (EXTENSION_TYPE_MINT_LINK, m::MSG_MINT_CHALLENGE) {
            return Err("mint did not send a challenge".into());
        }
        let challenge: m::MintChallenge =
            m::decode(frame.payload()).map_err(|e| format!("{e:?}"))?;
        let kp = keys.keypair().map_err(|e| e.to_string())?;
        let sig = auth::sign_challenge(&kp, &challenge.nonce.to_array(), &authority.0);
        let answer = m::MintAuth {
            pool_pubkey: keys.public().0.into(),
            signature: sig.into(),
        };
        let f = sv2_io::encode(answer, m::MSG_MINT_AUTH, EXTENSION_TYPE_MINT_LINK, false)
            .map_err(|e| e.to_string())?;
        sender.send(f).await.map_err(|e| e.to_string())?;
        let mut frame = reader.next().await.map_err(|e| e.to_string())?;
        let ready: m::MintReady = match sv2_io::frame::kind(&frame) {
            (EXTENSION_TYPE_MINT_LINK, m::MSG_MINT_READY) => {
                m::decode(frame.payload()).map_err(|e| format!("{e:?}"))?
            }
            (EXTENSION_TYPE_MINT_LINK, m::MSG_MINT_AUTH_ERROR) => {
                let e: m::MintAuthError =
                    m::decode(frame.payload()).map_err(|e| format!("{e:?}"))?;
                return Err(format!(
                    "mint refused the pool key: {}",
                    m::read_str(&e.error_code).unwrap_or_default()
                ));
            }
            other => return Err(format!("unexpected mint frame {other:?}")),
        };
        let info = MintInfo {
            epoch: 0,
            previous_keyset_id: None,
            keyset_id: ready.keyset_id.into_bytes(),
            max_amount_log2: ready.max_amount_log2,
            http_url: m::read_str(&ready.http_url).map_err(|e| e.to_string())?,
        };
        tracing::info!(%address, keyset = %hex::encode(&info.keyset_id), "mint link up");
        // The tip first (the mint may rotate on it), then unacknowledged blocks, then sign
        // requests: those in flight are replayed, new ones queued from then on.
        let tip = self.tip.lock().ok().and_then(|t| t.clone());
        if let Some(tip) = tip {
            sender
                .send(link_frame(tip, m::MSG_CHAIN_TIP)?)
                .await
                .map_err(|e| e.to_string())?;
        }
        let blocks: Vec<m::BlockReport> = self
            .unacked_blocks
            .lock()
            .map(|u| u.values().cloned().collect())
            .unwrap_or_default();
        for b in blocks {
            sender
                .send(link_frame(b, m::MSG_BLOCK_REPORT)?)
                .await
                .map_err(|e| e.to_string())?;
        }
        let (queue, queued) = mpsc::unbounded_channel();
        let _requests = AbortOnDrop(tokio::spawn(sign_batches::send_requests(
            queued,
            sender.clone(),
        )));
        // Every request in flight now is replayed; every later one is queued (see `request`).
        let resend: Vec<Outgoing> = match self.pending.lock() {
            Ok(mut pending) => {
                if let Ok(mut q) = self.requests.lock() {
                    *q = Some(queue);
                }
                pending
                    .replays()
                    .iter()
                    .map(|(id, p)| Outgoing::new(*id, p))
                    .collect()
            }
            Err(_) => return Err("pending map poisoned".into()),
        };
        for frame in sign_batches::request_frames(&resend) {
            sender.send(frame?).await.map_err(|e| e.to_string())?;
        }
        if let Ok(mut s) = self.sender.lock() {
            *s = Some(sender);
        }
        self.info.send_replace(Some(info));
        self.stats.mint.set_up(true);
        loop {
            let mut frame = reader.next().await.map_err(|e| e.to_string())?;
            self.stats.mint.seen();
            match sv2_io::frame::kind(&frame) {
                (EXTENSION_TYPE_MINT_LINK, batch::MSG_SIGN_RESPONSES) => {
                    let r: SignResponses =
                        m::decode(frame.payload()).map_err(|e| format!("{e:?}"))?;
                    self.on_responses(r)?;
                }
                (EXTENSION_TYPE_MINT_LINK, m::MSG_SIGN_RESPONSE) => {
                    let r: m::SignResponse =
                        m::decode(frame.payload()).map_err(|e| format!("{e:?}"))?;
                    self.on_response(r);
                }
                (EXTENSION_TYPE_MINT_LINK, m::MSG_SIGN_ERROR) => {
                    let e: m::SignError =
                        m::decode(frame.payload()).map_err(|e| format!("{e:?}"))?;
                    self.on_error(e);
                }
                (EXTENSION_TYPE_MINT_LINK, m::MSG_MINT_EPOCH) => {
                    let e: m::MintEpoch =
                        m::decode(frame.payload()).map_err(|e| format!("{e:?}"))?;
                    self.on_epoch(e);
                }
                (EXTENSION_TYPE_MINT_LINK, m::MSG_BLOCK_ACK) => {
                    let a: m::BlockAck =
                        m::decode(frame.payload()).map_err(|e| format!("{e:?}"))?;
                    self.on_block_ack(a);
                }
                other => return Err(format!("unexpected mint frame {other:?}")),
            }
        }
    }
}
