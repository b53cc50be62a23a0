//! The bridge between SV1 miners and the upstream extended channel: jobs down, shares up
//! (each carrying a blinded message), signatures into the wallet.

use crate::stats::TranslatorStats;
use crate::wallet::EhashWallet;
use ehash_protocol::{messages as m, BlindedShare, EXTENSION_TYPE_EHASH};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use stratum_core::bitcoin::Target;
use stratum_core::mining_sv2::{NewExtendedMiningJobOwned, SetNewPrevHashOwned};
use stratum_core::parsers_sv2::{Mining, MiningOwned, TlvList};
use stratum_core::stratum_translation::{sv1_to_sv2, sv2_to_sv1};
use stratum_core::sv1_api::client_to_server::{SubmitError, SubmitOutcome};
use stratum_core::sv1_api::json_rpc::{self, Message};
use stratum_core::sv1_api::methods::Client2Server;
use stratum_core::sv1_api::server_to_client;
use stratum_core::sv1_api::utils::{Extranonce, HexU32Be};
use sv2_io::FrameSender;
use tokio::sync::{mpsc, watch};

/// Id of an SV1 connection.
pub type MinerId = u64;

/// Bytes of extranonce the translator uses to tell its miners apart.
const MINER_PREFIX_LEN: usize = 2;
/// Version bits miners may roll.
const VERSION_MASK: u32 = 0x1fff_e000;

/// Events the bridge reacts to.
pub enum BridgeEvent {
    /// A miner connected.
    MinerConnected {
        /// Id.
        id: MinerId,
        /// Its outgoing lines.
        lines: mpsc::Sender<String>,
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

struct Miner {
    lines: mpsc::Sender<String>,
    index: u16,
    subscribed: bool,
    authorized: bool,
    version_rolling: bool,
    user: String,
}

struct ChannelState {
    channel_id: u32,
    prefix: Vec<u8>,
    rollable: usize,
    target: Target,
    jobs: HashMap<u32, NewExtendedMiningJobOwned>,
    prev_hash: Option<SetNewPrevHashOwned>,
    active_job: Option<u32>,
}

struct PendingShare {
    miner: MinerId,
    request_id: u64,
    blinded: Option<[u8; 33]>,
}

/// The bridge task's state.
pub struct Bridge {
    miners: HashMap<MinerId, Miner>,
    next_index: u16,
    upstream: Option<FrameSender>,
    channel: Option<ChannelState>,
    ehash: bool,
    keyset: Option<cdk::nuts::Id>,
    pending: HashMap<u32, PendingShare>,
    next_seq: u32,
    wallet: watch::Receiver<Option<Arc<EhashWallet>>>,
    mint_url: watch::Sender<Option<String>>,
    stats: Arc<TranslatorStats>,
}

impl Bridge {
    /// A bridge with no upstream yet.
    pub fn new(
        wallet: watch::Receiver<Option<Arc<EhashWallet>>>,
        mint_url: watch::Sender<Option<String>>,
        stats: Arc<TranslatorStats>,
    ) -> Self {
        Self {
            miners: HashMap::new(),
            next_index: 0,
            upstream: None,
            channel: None,
            ehash: false,
            keyset: None,
            pending: HashMap::new(),
            next_seq: 0,
            wallet,
            mint_url,
            stats,
        }
    }

    /// Runs until all event senders are gone.
    pub async fn run(mut self, mut events: mpsc::Receiver<BridgeEvent>) {
        while let Some(event) = events.recv().await {
            if let Err(e) = self.on_event(event).await {
                tracing::warn!(error = %e, "bridge event failed");
            }
        }
    }

    async fn on_event(&mut self, event: BridgeEvent) -> Result<(), String> {
        match event {
            BridgeEvent::MinerConnected { id, lines } => {
                let index = self.next_index;
                self.next_index = self.next_index.wrapping_add(1);
                self.stats.miners.fetch_add(1, Ordering::Relaxed);
                self.miners.insert(
                    id,
                    Miner {
                        lines,
                        index,
                        subscribed: false,
                        authorized: false,
                        version_rolling: false,
                        user: String::new(),
                    },
                );
                Ok(())
            }
            BridgeEvent::MinerGone { id } => {
                if self.miners.remove(&id).is_some() {
                    self.stats.miners.fetch_sub(1, Ordering::Relaxed);
                }
                Ok(())
            }
            BridgeEvent::Unsupported { id, request_id } => {
                let resp = json_rpc::Response {
                    id: request_id,
                    error: Some(json_rpc::JsonRpcError {
                        code: 20,
                        message: "unsupported method".into(),
                        data: None,
                    }),
                    result: serde_json::Value::Null,
                };
                self.send_line(id, &Message::from(resp)).await;
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
                    self.answer_submit(p.miner, p.request_id, false).await;
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

    async fn on_request(&mut self, id: MinerId, request: Client2Server) -> Result<(), String> {
        match request {
            Client2Server::Configure(c) => {
                let requested = c.version_rolling_mask();
                let vr = requested.map(|mask| {
                    server_to_client::VersionRollingParams::new(
                        HexU32Be(mask.0 & VERSION_MASK),
                        HexU32Be(0),
                    )
                });
                if let Some(m) = self.miners.get_mut(&id) {
                    m.version_rolling = vr.is_some();
                }
                let resp = c.respond(vr, None);
                self.send_line(id, &Message::from(resp)).await;
            }
            Client2Server::Subscribe(s) => {
                let index = self
                    .miners
                    .get(&id)
                    .map(|m| m.index)
                    .ok_or("unknown miner")?;
                let Some((en1, en2_size)) = self.miner_extranonce1(index) else {
                    let resp = json_rpc::Response {
                        id: s.id,
                        error: Some(json_rpc::JsonRpcError {
                            code: 20,
                            message: "no upstream channel yet".into(),
                            data: None,
                        }),
                        result: serde_json::Value::Null,
                    };
                    self.send_line(id, &Message::from(resp)).await;
                    return Ok(());
                };
                let en1 = Extranonce::try_from(en1).map_err(|e| format!("{e:?}"))?;
                let subs = vec![
                    ("mining.set_difficulty".to_string(), id.to_string()),
                    ("mining.notify".to_string(), id.to_string()),
                ];
                let resp = s.respond(subs, en1, en2_size);
                self.send_line(id, &Message::from(resp)).await;
                if let Some(m) = self.miners.get_mut(&id) {
                    m.subscribed = true;
                }
            }
            Client2Server::Authorize(a) => {
                if let Some(m) = self.miners.get_mut(&id) {
                    m.authorized = true;
                    m.user = a.name.clone();
                }
                let resp = a.respond(true);
                self.send_line(id, &Message::from(resp)).await;
                self.send_work(id, true).await;
            }
            Client2Server::ExtranonceSubscribe(e) => {
                let resp = e.respond();
                self.send_line(id, &Message::from(resp)).await;
            }
            Client2Server::SuggestDifficulty() => {}
            Client2Server::Submit(s) => self.on_submit(id, s).await?,
        }
        Ok(())
    }

    async fn answer_submit(&self, miner: MinerId, request_id: u64, ok: bool) {
        let resp = json_rpc::Response {
            id: request_id,
            error: (!ok).then(|| json_rpc::JsonRpcError {
                code: 23,
                message: "share rejected by pool".into(),
                data: None,
            }),
            result: serde_json::Value::Bool(ok),
        };
        self.send_line(miner, &Message::from(resp)).await;
    }

    async fn reject_submit(
        &self,
        miner: MinerId,
        submit: stratum_core::sv1_api::client_to_server::Submit,
        e: SubmitError,
    ) {
        let resp = submit.respond(SubmitOutcome::Rejected(e));
        self.send_line(miner, &Message::from(resp)).await;
    }

    async fn on_submit(
        &mut self,
        id: MinerId,
        s: stratum_core::sv1_api::client_to_server::Submit,
    ) -> Result<(), String> {
        let Some(miner) = self.miners.get(&id) else {
            return Ok(());
        };
        if !miner.authorized {
            self.reject_submit(id, s, SubmitError::UnauthorizedWorker)
                .await;
            return Ok(());
        }
        let (index, version_rolling) = (miner.index, miner.version_rolling);
        let (Some(ch), Some(upstream)) = (self.channel.as_ref(), self.upstream.clone()) else {
            self.reject_submit(id, s, SubmitError::Other).await;
            return Ok(());
        };
        let Some(job) = s.job_id.parse::<u32>().ok().and_then(|j| ch.jobs.get(&j)) else {
            self.reject_submit(id, s, SubmitError::JobNotFound).await;
            return Ok(());
        };
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let mask = (version_rolling && s.version_bits.is_some()).then_some(HexU32Be(VERSION_MASK));
        let mut submit = s.clone();
        if mask.is_none() {
            submit.version_bits = None;
        }
        let mut share = sv1_to_sv2::build_sv2_submit_shares_extended_from_sv1_submit(
            &submit,
            ch.channel_id,
            seq,
            job.version,
            mask,
        )
        .map_err(|e| format!("{e:?}"))?;
        let mut extranonce = index.to_be_bytes().to_vec();
        extranonce.extend_from_slice(share.extranonce.as_bytes());
        if extranonce.len() != ch.rollable {
            self.reject_submit(id, s, SubmitError::Other).await;
            return Ok(());
        }
        share.extranonce =
            binary_sv2::B032Owned::try_from(extranonce).map_err(|_| "extranonce too long")?;
        let wallet = self.wallet.borrow().clone();
        let blinded = match (self.ehash, self.keyset, wallet) {
            (true, Some(keyset), Some(w)) => match w.next_blinded(keyset).await {
                Ok(b) => Some((keyset, b)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot derive blinded message; submitting without ehash");
                    None
                }
            },
            _ => None,
        };
        let frame = match blinded {
            Some((keyset, b)) => {
                let tlv = BlindedShare {
                    keyset_id: keyset.to_bytes(),
                    blinded: b,
                }
                .to_tlv();
                let list = TlvList::from_slice(&[tlv]).map_err(|e| format!("{e:?}"))?;
                let bytes = list
                    .build_frame_bytes_with_tlvs(MiningOwned::SubmitSharesExtended(share.clone()))
                    .map_err(|e| format!("{e:?}"))?;
                sv2_io::frame::from_bytes(bytes).map_err(|e| e.to_string())?
            }
            None => sv2_io::frame::encode_standard(MiningOwned::SubmitSharesExtended(share))
                .map_err(|e| e.to_string())?,
        };
        self.pending.insert(
            seq,
            PendingShare {
                miner: id,
                request_id: s.id,
                blinded: blinded.map(|b| b.1),
            },
        );
        self.stats.shares_submitted.fetch_add(1, Ordering::Relaxed);
        upstream.send(frame).await.map_err(|e| e.to_string())
    }

    /// Sends difficulty and the current job to one miner.
    async fn send_work(&self, id: MinerId, clean: bool) {
        let Some(ch) = self.channel.as_ref() else {
            return;
        };
        let Some(miner) = self.miners.get(&id) else {
            return;
        };
        if !(miner.subscribed && miner.authorized) {
            return;
        }
        match sv2_to_sv1::build_sv1_set_difficulty_from_sv2_target(ch.target) {
            Ok(msg) => self.send_line(id, &msg).await,
            Err(e) => tracing::warn!(error = ?e, "cannot express target as SV1 difficulty"),
        }
        let (Some(prev), Some(job)) = (
            ch.prev_hash.clone(),
            ch.active_job.and_then(|j| ch.jobs.get(&j)).cloned(),
        ) else {
            return;
        };
        match sv2_to_sv1::build_sv1_notify_from_sv2(prev, job, clean) {
            Ok(n) => self.send_line(id, &Message::from(n)).await,
            Err(e) => tracing::warn!(error = ?e, "cannot build mining.notify"),
        }
    }

    async fn broadcast_work(&self, clean: bool) {
        let ids: Vec<MinerId> = self.miners.keys().copied().collect();
        for id in ids {
            self.send_work(id, clean).await;
        }
    }

    async fn on_upstream(&mut self, mut frame: sv2_io::Frame) -> Result<(), String> {
        let header = frame.header();
        let ext = header.ext_type_without_channel_msg();
        if ext == EXTENSION_TYPE_EHASH {
            return self.on_ehash(header.msg_type(), frame).await;
        }
        if ext == 0x0001 {
            let parsed = stratum_core::parsers_sv2::Extensions::try_from((
                header.ext_type(),
                header.msg_type(),
                frame.payload(),
            ))
            .map_err(|e| format!("{e:?}"))?;
            use stratum_core::parsers_sv2::{Extensions, ExtensionsNegotiation};
            if let Extensions::ExtensionsNegotiation(
                ExtensionsNegotiation::RequestExtensionsSuccess(s),
            ) = parsed
            {
                self.ehash = s
                    .supported_extensions
                    .into_inner()
                    .contains(&EXTENSION_TYPE_EHASH);
                tracing::info!(ehash = self.ehash, "extension negotiation done");
            }
            return Ok(());
        }
        if ext != 0 {
            return Ok(());
        }
        let msg =
            Mining::try_from((header.msg_type(), frame.payload())).map_err(|e| format!("{e:?}"))?;
        match msg.into_owned() {
            MiningOwned::OpenExtendedMiningChannelSuccess(s) => {
                let prefix = s.extranonce_prefix.into_bytes();
                let rollable = usize::from(s.extranonce_size);
                if rollable <= MINER_PREFIX_LEN {
                    return Err(format!(
                        "pool gave only {rollable} rollable extranonce bytes"
                    ));
                }
                tracing::info!(channel_id = s.channel_id, rollable, "upstream channel open");
                self.channel = Some(ChannelState {
                    channel_id: s.channel_id,
                    prefix,
                    rollable,
                    target: Target::from_le_bytes(s.target.to_array()),
                    jobs: HashMap::new(),
                    prev_hash: None,
                    active_job: None,
                });
            }
            MiningOwned::OpenMiningChannelError(e) => {
                return Err(format!(
                    "pool refused the channel: {}",
                    String::from_utf8_lossy(e.error_code.as_bytes())
                ));
            }
            MiningOwned::NewExtendedMiningJob(job) => {
                let Some(ch) = self.channel.as_mut() else {
                    return Ok(());
                };
                let active = job.min_ntime.clone().into_inner().is_some();
                let job_id = job.job_id;
                ch.jobs.insert(job_id, job);
                if ch.jobs.len() > 64 {
                    let oldest = ch.jobs.keys().min().copied();
                    if let Some(o) = oldest.filter(|o| Some(*o) != ch.active_job) {
                        ch.jobs.remove(&o);
                    }
                }
                if active {
                    ch.active_job = Some(job_id);
                    self.broadcast_work(false).await;
                }
            }
            MiningOwned::SetNewPrevHash(p) => {
                let Some(ch) = self.channel.as_mut() else {
                    return Ok(());
                };
                ch.active_job = Some(p.job_id);
                ch.prev_hash = Some(p);
                self.broadcast_work(true).await;
            }
            MiningOwned::SetTarget(t) => {
                let Some(ch) = self.channel.as_mut() else {
                    return Ok(());
                };
                ch.target = Target::from_le_bytes(t.maximum_target.to_array());
                self.broadcast_work(false).await;
            }
            MiningOwned::SubmitSharesSuccess(s) => {
                self.stats
                    .shares_accepted
                    .fetch_add(u64::from(s.new_submits_accepted_count), Ordering::Relaxed);
                self.stats
                    .accepted_amount
                    .fetch_add(s.new_shares_sum, Ordering::Relaxed);
                // The wallet keeps the blinding secret, keyed by B_, until the signature arrives.
                if let Some(p) = self.pending.remove(&s.last_sequence_number) {
                    self.answer_submit(p.miner, p.request_id, true).await;
                }
            }
            MiningOwned::SubmitSharesError(e) => {
                self.stats.shares_rejected.fetch_add(1, Ordering::Relaxed);
                let code = String::from_utf8_lossy(e.error_code.as_bytes()).to_string();
                tracing::debug!(sequence_number = e.sequence_number, %code, "share rejected");
                if let Some(p) = self.pending.remove(&e.sequence_number) {
                    if let (Some(b), Some(w)) = (p.blinded, self.wallet.borrow().clone()) {
                        w.discard(&b);
                    }
                    self.answer_submit(p.miner, p.request_id, false).await;
                }
            }
            other => tracing::debug!(msg = ?other, "ignoring upstream message"),
        }
        Ok(())
    }

    async fn on_ehash(&mut self, msg_type: u8, mut frame: sv2_io::Frame) -> Result<(), String> {
        match msg_type {
            m::MSG_EHASH_MINT_INFO => {
                let info: m::EhashMintInfo =
                    m::decode(frame.payload()).map_err(|e| format!("{e:?}"))?;
                let keyset = cdk::nuts::Id::from_bytes(info.keyset_id.as_bytes())
                    .map_err(|e| e.to_string())?;
                let url = m::read_str(&info.mint_url).map_err(|e| e.to_string())?;
                tracing::info!(%keyset, %url, "pool announced ehash keyset");
                self.keyset = Some(keyset);
                self.mint_url.send_replace(Some(url));
            }
            m::MSG_EHASH_SIGNATURE => {
                let sig: m::EhashSignature =
                    m::decode(frame.payload()).map_err(|e| format!("{e:?}"))?;
                let Some(w) = self.wallet.borrow().clone() else {
                    return Err("signature arrived before the wallet opened".into());
                };
                let blinded: [u8; 33] = sig
                    .blinded
                    .as_bytes()
                    .try_into()
                    .map_err(|_| "B_ must be 33 bytes")?;
                let stats = self.stats.clone();
                // Storing a proof touches the database: do it off the bridge task.
                tokio::spawn(async move {
                    match w
                        .receive_signature(
                            &blinded,
                            sig.amount,
                            sig.signature.as_bytes(),
                            sig.dleq_e.to_array(),
                            sig.dleq_s.to_array(),
                        )
                        .await
                    {
                        Ok(a) => {
                            stats.ehash_received.fetch_add(a, Ordering::Relaxed);
                        }
                        Err(e) => {
                            stats.ehash_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(error = %e, sequence_number = sig.sequence_number, "signature rejected by the wallet");
                        }
                    }
                });
            }
            m::MSG_EHASH_SIGNATURE_ERROR => {
                let e: m::EhashSignatureError =
                    m::decode(frame.payload()).map_err(|e| format!("{e:?}"))?;
                self.stats.ehash_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    sequence_number = e.sequence_number,
                    code = %m::read_str(&e.error_code).unwrap_or_default(),
                    "no ehash for an accepted share"
                );
            }
            other => tracing::debug!(msg_type = other, "ignoring ehash message"),
        }
        Ok(())
    }
}
