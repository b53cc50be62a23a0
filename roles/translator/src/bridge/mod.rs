//! The bridge between SV1 miners and the upstream extended channel: jobs down, shares up
//! (each carrying a blinded message), signatures into the wallet.
//!
//! Each miner mines at its own power-of-two difficulty (at most the channel's); the bridge
//! judges every SV1 share locally and forwards only those that meet the channel target.

mod sv1_requests;
mod upstream_frames;

use crate::board::{MinerRow, ProxyBoard, UpstreamView};
use crate::miners::{MinerSession, MinerVardiffConfig};
use crate::share_check::SeenShares;
use crate::stats::TranslatorStats;
use crate::wallet::EhashWallet;
use ehash_protocol::difficulty::{ladder_target_le, work_log2};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use stratum_core::bitcoin::Target;
use stratum_core::mining_sv2::{NewExtendedMiningJobOwned, SetNewPrevHashOwned};
use stratum_core::stratum_translation::sv2_to_sv1;
use stratum_core::sv1_api::json_rpc::{self, Message};
use stratum_core::sv1_api::methods::Client2Server;
use sv2_io::FrameSender;
use tokio::sync::{mpsc, watch};

/// Id of an SV1 connection.
pub type MinerId = u64;

/// Bytes of extranonce the translator uses to tell its miners apart.
const MINER_PREFIX_LEN: usize = 2;
/// How often miners' vardiff is looked at (each miner retargets on its own interval).
const VARDIFF_TICK: Duration = Duration::from_secs(1);
/// Miners' hashrate is sampled every this many ticks (5 s).
const MINER_SAMPLE_TICKS: u64 = 5;

/// Events the bridge reacts to.
pub enum BridgeEvent {
    /// A miner connected.
    MinerConnected {
        /// Id.
        id: MinerId,
        /// Its outgoing lines.
        lines: mpsc::Sender<String>,
        /// Remote address.
        peer: std::net::SocketAddr,
    },
    /// A parsed SV1 request.
    Request {
        /// Miner.
        id: MinerId,
        /// Request.
        request: Client2Server,
    },
    /// An SV1 request we do not support.
    Unsupported {
        /// Miner.
        id: MinerId,
        /// Request id.
        request_id: u64,
    },
    /// A miner left.
    MinerGone {
        /// Id.
        id: MinerId,
    },
    /// The upstream link is up.
    UpstreamUp(FrameSender),
    /// The upstream link went down.
    UpstreamDown,
    /// A frame from upstream.
    Upstream(sv2_io::Frame),
}

/// An SV1 error answer to request `id`.
fn error_response(id: u64, code: i32, message: &str) -> Message {
    Message::from(json_rpc::Response {
        id,
        error: Some(json_rpc::JsonRpcError {
            code,
            message: message.into(),
            data: None,
        }),
        result: serde_json::Value::Null,
    })
}

/// The upstream extended channel as the bridge sees it.
struct ChannelState {
    channel_id: u32,
    prefix: Vec<u8>,
    rollable: usize,
    target: Target,
    /// `log2` of the hashes a channel share proves (rounded down).
    work_log2: u32,
    jobs: HashMap<u32, NewExtendedMiningJobOwned>,
    prev_hash: Option<SetNewPrevHashOwned>,
    active_job: Option<u32>,
    seen: SeenShares,
}

impl ChannelState {
    fn set_target(&mut self, target: Target) {
        self.target = target;
        self.work_log2 = work_log2(&target.to_le_bytes());
    }
}

/// A forwarded share waiting for the pool's verdict.
struct PendingShare {
    miner: MinerId,
    request_id: u64,
    blinded: Option<[u8; 33]>,
    sent: std::time::Instant,
}

/// The bridge task's state.
pub struct Bridge {
    miners: HashMap<MinerId, MinerSession>,
    next_index: u16,
    vardiff: MinerVardiffConfig,
    upstream: Option<FrameSender>,
    channel: Option<ChannelState>,
    ehash: bool,
    keyset: Option<cdk::nuts::Id>,
    pending: HashMap<u32, PendingShare>,
    next_seq: u32,
    wallet: watch::Receiver<Option<Arc<EhashWallet>>>,
    mint_url: watch::Sender<Option<String>>,
    signatures: mpsc::Sender<crate::wallet::IncomingSignature>,
    stats: Arc<TranslatorStats>,
    board: Arc<ProxyBoard>,
    view: UpstreamView,
    ticks: u64,
    /// Unix ms of the last job or tip sent to miners.
    work_ms: i64,
}

impl Bridge {
    /// A bridge with no upstream yet.
    pub fn new(
        vardiff: MinerVardiffConfig,
        wallet: watch::Receiver<Option<Arc<EhashWallet>>>,
        mint_url: watch::Sender<Option<String>>,
        signatures: mpsc::Sender<crate::wallet::IncomingSignature>,
        stats: Arc<TranslatorStats>,
        board: Arc<ProxyBoard>,
    ) -> Self {
        Self {
            miners: HashMap::new(),
            next_index: 0,
            vardiff,
            upstream: None,
            channel: None,
            ehash: false,
            keyset: None,
            pending: HashMap::new(),
            next_seq: 0,
            wallet,
            mint_url,
            signatures,
            stats,
            board,
            view: UpstreamView::default(),
            ticks: 0,
            work_ms: 0,
        }
    }

    /// Runs until all event senders are gone.
    pub async fn run(mut self, mut events: mpsc::Receiver<BridgeEvent>) {
        let mut tick = tokio::time::interval(VARDIFF_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { return };
                    if let Err(e) = self.on_event(event).await {
                        tracing::warn!(error = %e, "bridge event failed");
                    }
                }
                _ = tick.tick() => {
                    self.retarget_miners().await;
                    self.publish();
                }
            }
        }
    }

    async fn on_event(&mut self, event: BridgeEvent) -> Result<(), String> {
        match event {
            BridgeEvent::MinerConnected { id, lines, peer } => {
                let index = self.next_index;
                self.next_index = self.next_index.wrapping_add(1);
                self.stats.miners.fetch_add(1, Ordering::Relaxed);
                self.miners
                    .insert(id, MinerSession::new(lines, index, self.vardiff, peer));
                Ok(())
            }
            BridgeEvent::MinerGone { id } => {
                if self.miners.remove(&id).is_some() {
                    self.stats.miners.fetch_sub(1, Ordering::Relaxed);
                }
                Ok(())
            }
            BridgeEvent::Unsupported { id, request_id } => {
                let resp = error_response(request_id, 20, "unsupported method");
                self.send_line(id, &resp).await;
                Ok(())
            }
            BridgeEvent::Request { id, request } => self.on_request(id, request).await,
            BridgeEvent::UpstreamUp(sender) => {
                self.upstream = Some(sender);
                Ok(())
            }
            BridgeEvent::UpstreamDown => {
                self.upstream = None;
                self.channel = None;
                self.ehash = false;
                // Shares in flight get no answer from this pool; tell the miners they were not
                // accepted so they do not count them.
                let pending: Vec<PendingShare> = self.pending.drain().map(|(_, p)| p).collect();
                for p in pending {
                    self.answer_forwarded(p.miner, p.request_id, None).await;
                }
                Ok(())
            }
            BridgeEvent::Upstream(frame) => self.on_upstream(frame).await,
        }
    }

    async fn send_line(&self, id: MinerId, msg: &Message) {
        let Some(miner) = self.miners.get(&id) else {
            return;
        };
        match serde_json::to_string(msg) {
            Ok(line) => {
                let _ = miner.lines.send(line).await;
            }
            Err(e) => tracing::error!(error = %e, "cannot serialize SV1 message"),
        }
    }

    fn miner_extranonce1(&self, index: u16) -> Option<(Vec<u8>, usize)> {
        let ch = self.channel.as_ref()?;
        let mut en1 = ch.prefix.clone();
        en1.extend_from_slice(&index.to_be_bytes());
        Some((en1, ch.rollable.checked_sub(MINER_PREFIX_LEN)?))
    }

    /// Tells a miner its difficulty.
    async fn send_difficulty(&self, id: MinerId, work_log2: u32) {
        let target = Target::from_le_bytes(ladder_target_le(work_log2));
        match sv2_to_sv1::build_sv1_set_difficulty_from_sv2_target(target) {
            Ok(msg) => self.send_line(id, &msg).await,
            Err(e) => tracing::warn!(error = ?e, "cannot express target as SV1 difficulty"),
        }
    }

    /// The current job as one serialized `mining.notify` line: built once per broadcast, not
    /// once per miner.
    fn notify_line(&self, clean: bool) -> Option<String> {
        let ch = self.channel.as_ref()?;
        let prev = ch.prev_hash.clone()?;
        let job = ch.active_job.and_then(|j| ch.jobs.get(&j)).cloned()?;
        let notify = match sv2_to_sv1::build_sv1_notify_from_sv2(prev, job, clean) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = ?e, "cannot build mining.notify");
                return None;
            }
        };
        serde_json::to_string(&Message::from(notify))
            .map_err(|e| tracing::error!(error = %e, "cannot serialize mining.notify"))
            .ok()
    }

    /// Sends `notify` (the current job) to one ready miner, preceded by its difficulty when
    /// `with_difficulty` or when the channel's difficulty forced it down.
    async fn send_work(&mut self, id: MinerId, notify: Option<&str>, with_difficulty: bool) {
        let Some(channel_work) = self.channel.as_ref().map(|c| c.work_log2) else {
            return;
        };
        let Some(miner) = self.miners.get_mut(&id) else {
            return;
        };
        if !miner.ready() {
            return;
        }
        let fitted = miner.difficulty.fit_to_channel(channel_work);
        let work = miner.difficulty.work_log2().unwrap_or(channel_work);
        let lines = miner.lines.clone();
        if fitted.is_some() || with_difficulty {
            self.send_difficulty(id, work).await;
        }
        if let Some(line) = notify {
            let _ = lines.send(line.to_string()).await;
        }
    }

    async fn broadcast_work(&mut self, clean: bool) {
        self.work_ms = hashpool_ops_http::status::now_ms();
        let notify = self.notify_line(clean);
        let ids: Vec<MinerId> = self.miners.keys().copied().collect();
        for m in self.miners.values_mut() {
            m.difficulty.on_new_job();
        }
        for id in ids {
            self.send_work(id, notify.as_deref(), false).await;
        }
    }

    /// Records a share's round trip to the pool's verdict.
    fn round_trip(&mut self, sent: std::time::Instant) {
        let elapsed = sent.elapsed();
        self.stats.share_round_trip.0.observe(elapsed.as_secs_f64());
        let ms = elapsed.as_secs_f64() * 1000.0;
        self.view.latency_last_ms = Some(ms);
        // A moving average over roughly the last 20 shares.
        self.view.latency_ms = Some(
            self.view
                .latency_ms
                .map_or(ms, |avg| avg + (ms - avg) / 20.0),
        );
    }

    /// The job miners work on now.
    fn job_view(&self) -> Option<crate::board::JobView> {
        let ch = self.channel.as_ref()?;
        let prev = ch.prev_hash.as_ref()?;
        let job = ch.active_job.and_then(|j| ch.jobs.get(&j))?;
        let mut prev_hash = prev.prev_hash.to_array();
        prev_hash.reverse();
        Some(crate::board::JobView {
            job_id: job.job_id,
            prev_hash: hex::encode(prev_hash),
            nbits: format!("{:08x}", prev.nbits),
            version: format!("{:08x}", job.version),
            ntime: job.min_ntime.clone().into_inner().unwrap_or(prev.min_ntime),
            merkle_branches: job.merkle_path.len(),
            coinbase_bytes: job.coinbase_tx_prefix.len() + job.coinbase_tx_suffix.len(),
            received_ms: self.work_ms,
        })
    }

    /// Publishes the dashboard's snapshots: the upstream every tick, the miners (with their
    /// hashrate) every [`MINER_SAMPLE_TICKS`].
    fn publish(&mut self) {
        self.ticks += 1;
        let mut view = self.view.clone();
        view.ehash = self.ehash;
        view.keyset = self.keyset.map(|k| k.to_string());
        view.mint_url = self.mint_url.borrow().clone();
        view.channel = self.channel.as_ref().map(|c| crate::board::ChannelView {
            channel_id: c.channel_id,
            work_log2: c.work_log2,
            extranonce_prefix: hex::encode(&c.prefix),
            extranonce_size: c.rollable,
        });
        view.job = self.job_view();
        self.board.publish_upstream(view);
        if !self.ticks.is_multiple_of(MINER_SAMPLE_TICKS) {
            return;
        }
        let now = hashpool_ops_http::status::now_ms();
        let mut rows: Vec<MinerRow> = self
            .miners
            .iter_mut()
            .map(|(id, m)| {
                let (accepted, rejected, work, last_share_ms) = m.tally.read();
                let work_log2 = m.difficulty.work_log2();
                MinerRow {
                    id: *id,
                    user: m.user.clone(),
                    peer: m.peer.to_string(),
                    difficulty: work_log2.map(|w| 2f64.powi(w as i32 - 32)),
                    work_log2,
                    hashrate: m.rate.push(now, work),
                    accepted,
                    rejected,
                    last_share_ms,
                    connected_ms: m.connected_ms,
                }
            })
            .collect();
        rows.sort_by_key(|r| r.id);
        self.board.publish_miners(rows);
    }

    /// Runs each miner's vardiff; a changed difficulty goes out with the current job again so
    /// the miner applies it at once.
    async fn retarget_miners(&mut self) {
        let Some(channel_work) = self.channel.as_ref().map(|c| c.work_log2) else {
            return;
        };
        let mut changed = Vec::new();
        for (id, m) in self.miners.iter_mut() {
            if let Some(w) = m.difficulty.retarget(channel_work) {
                tracing::debug!(miner = id, user = %m.user, work_log2 = w, "miner vardiff retarget");
                changed.push(*id);
            }
        }
        let notify = self.notify_line(false);
        for id in changed {
            self.send_work(id, notify.as_deref(), true).await;
        }
    }
}
