//! One downstream connection (a translator or an SV2 miner), proxied to the pool. Frames pass
//! through unchanged (channels, ehash negotiation and TLVs, shares, signatures) except that,
//! while declaring, the upstream connection selects its own work: the proxy sets each channel's
//! jobs from the declared templates (`SetCustomMiningJob`), hands the pool's job ids to the
//! downstream, and watches shares for blocks to submit itself.

use crate::declarer::{job_factory, DeclaredJob, Mode};
use crate::JdClientStats;
use binary_sv2::{B032Owned, Sv2OptionOwned};
use ehash_protocol::difficulty::meets_target;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_core::bitcoin::consensus::deserialize;
use stratum_core::bitcoin::hashes::Hash;
use stratum_core::bitcoin::Transaction;
use stratum_core::channels_sv2::chain_tip::ChainTip;
use stratum_core::channels_sv2::server::jobs::extended::ExtendedJob;
use stratum_core::common_messages_sv2::Protocol;
use stratum_core::job_declaration_sv2::PushSolutionOwned;
use stratum_core::mining_sv2::{
    SetCustomMiningJobOwned, SetNewPrevHashOwned, SubmitSharesExtendedOwned,
    ERROR_CODE_SET_CUSTOM_MINING_JOB_STALE_CHAIN_TIP,
    MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS, MESSAGE_TYPE_SET_CUSTOM_MINING_JOB_ERROR,
    MESSAGE_TYPE_SET_CUSTOM_MINING_JOB_SUCCESS, MESSAGE_TYPE_SUBMIT_SHARES_EXTENDED,
};
use stratum_core::parsers_sv2::{AnyMessage, Mining, MiningOwned};
use stratum_core::template_distribution_sv2::SubmitSolutionOwned;
use sv2_io::{AuthorityPublicKey, FrameReader, FrameSender};
use tokio::sync::{mpsc, watch};

/// Custom jobs remembered per channel (for shares that find blocks).
const KEEP_JOBS: usize = 16;
/// Retries of a custom job the pool found on a stale tip (the pool learns tips a moment later).
const STALE_RETRIES: u32 = 40;
/// Pause between those retries.
const STALE_RETRY_PAUSE: Duration = Duration::from_millis(250);

/// What every proxied connection shares.
pub struct ProxyContext {
    /// Pool address.
    pub pool_address: String,
    /// Pool authority key.
    pub pool_authority: AuthorityPublicKey,
    /// Declared jobs.
    pub declared: watch::Receiver<Option<Arc<DeclaredJob>>>,
    /// Declaring or pool templates.
    pub mode: watch::Receiver<Mode>,
    /// Full extranonce size of the pool's channels, for the declarer.
    pub extranonce: watch::Sender<Option<usize>>,
    /// Blocks to the miner's own template provider.
    pub tp_solutions: mpsc::Sender<SubmitSolutionOwned>,
    /// Blocks to the jd-server.
    pub jds_solutions: mpsc::Sender<PushSolutionOwned>,
    /// Counters.
    pub stats: Arc<JdClientStats>,
    /// When the pool last refused a custom job (new sessions mine pool templates for a while).
    pub pool_refused_at: Mutex<Option<Instant>>,
    /// How long that while is.
    pub retry: Duration,
}

impl ProxyContext {
    fn may_declare(&self) -> bool {
        let recently_refused = self
            .pool_refused_at
            .lock()
            .ok()
            .and_then(|t| *t)
            .is_some_and(|t| t.elapsed() < self.retry);
        *self.mode.borrow() == Mode::Declaring && !recently_refused
    }
}

/// A custom job the pool accepted on a channel.
struct SetJob {
    job_id: u32,
    declared: Arc<DeclaredJob>,
    job: ExtendedJob,
}

/// A pool channel of this connection.
struct Channel {
    extranonce_prefix: Vec<u8>,
    full_size: usize,
    jobs: VecDeque<SetJob>,
    tip: Option<[u8; 32]>,
    stale_retries: u32,
    retry_at: Option<Instant>,
}

struct Session {
    ctx: Arc<ProxyContext>,
    upstream: FrameSender,
    downstream: FrameSender,
    declaring: bool,
    channels: HashMap<u32, Channel>,
    requests: HashMap<u32, (u32, Arc<DeclaredJob>, SetCustomMiningJobOwned)>,
    next_request: u32,
    solved: HashSet<[u8; 32]>,
}

/// Serves one downstream connection until it or its upstream closes.
pub async fn serve(
    ctx: Arc<ProxyContext>,
    mut down_reader: FrameReader,
    downstream: FrameSender,
    peer: std::net::SocketAddr,
) -> Result<(), String> {
    sv2_io::setup::expect_setup(&mut down_reader, Protocol::MiningProtocol).await?;
    // A jd-server still starting gets a moment before the miner is put on pool templates.
    let mut mode = ctx.mode.clone();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        mode.wait_for(|m| *m != Mode::Starting),
    )
    .await;
    let declaring = ctx.may_declare();
    let flags = if declaring {
        sv2_io::setup::REQUIRES_WORK_SELECTION
    } else {
        0
    };
    let (mut up_reader, upstream) = sv2_io::connect_with_setup(
        &ctx.pool_address,
        &ctx.pool_authority,
        Protocol::MiningProtocol,
        flags,
    )
    .await
    .map_err(|e| e.to_string())?;
    sv2_io::setup::accept_setup(&downstream).await?;
    tracing::info!(%peer, declaring, "miner connected");
    let mut declared = ctx.declared.clone();
    let mut session = Session {
        ctx,
        upstream,
        downstream,
        declaring,
        channels: HashMap::new(),
        requests: HashMap::new(),
        next_request: 1,
        solved: HashSet::new(),
    };
    let mut retry = tokio::time::interval(STALE_RETRY_PAUSE);
    loop {
        tokio::select! {
            frame = down_reader.next() => session.on_downstream(frame.map_err(|e| e.to_string())?).await?,
            frame = up_reader.next() => session.on_upstream(frame.map_err(|e| e.to_string())?).await?,
            changed = declared.changed(), if declaring => {
                changed.map_err(|_| "declarer stopped")?;
                session.set_jobs_everywhere().await?;
            }
            changed = mode.changed() => {
                changed.map_err(|_| "declarer stopped")?;
                let now = *mode.borrow();
                if declaring && now == Mode::PoolTemplates {
                    return Err("the jd-server is gone: reconnect to mine pool templates".into());
                }
                if !declaring && now == Mode::Declaring {
                    // The miner came while the jd-server was unusable: back to its own templates.
                    return Err("the jd-server is back: reconnect to declare".into());
                }
            }
            _ = retry.tick(), if declaring => session.retry_due().await?,
        }
    }
}

fn u256(bytes: [u8; 32]) -> binary_sv2::U256Owned {
    binary_sv2::U256Owned::from(bytes)
}

impl Session {
    async fn send_down(&self, msg: MiningOwned) -> Result<(), String> {
        let frame = sv2_io::frame::encode_standard(msg).map_err(|e| e.to_string())?;
        self.downstream.send(frame).await.map_err(|e| e.to_string())
    }

    async fn on_downstream(&mut self, mut frame: sv2_io::Frame) -> Result<(), String> {
        let header = frame.header();
        if self.declaring
            && header.ext_type_without_channel_msg() == 0
            && header.msg_type() == MESSAGE_TYPE_SUBMIT_SHARES_EXTENDED
        {
            let mut copy = frame.payload().to_vec();
            if let Ok((AnyMessage::Mining(Mining::SubmitSharesExtended(s)), _)) =
                sv2_io::frame::parse_with_tlvs(
                    header,
                    &mut copy,
                    &[ehash_protocol::EXTENSION_TYPE_EHASH],
                )
            {
                self.check_for_block(s.into_owned());
            }
        }
        self.upstream.send(frame).await.map_err(|e| e.to_string())
    }

    async fn on_upstream(&mut self, mut frame: sv2_io::Frame) -> Result<(), String> {
        let header = frame.header();
        if header.ext_type_without_channel_msg() != 0 {
            return self.downstream.send(frame).await.map_err(|e| e.to_string());
        }
        match header.msg_type() {
            MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS => {
                let mut copy = frame.payload().to_vec();
                let opened = Mining::try_from((header.msg_type(), copy.as_mut_slice()))
                    .map_err(|e| format!("malformed OpenExtendedMiningChannelSuccess: {e:?}"))?;
                self.downstream
                    .send(frame)
                    .await
                    .map_err(|e| e.to_string())?;
                if let Mining::OpenExtendedMiningChannelSuccess(o) = opened {
                    let prefix = o.extranonce_prefix.as_bytes().to_vec();
                    let full_size = prefix.len() + usize::from(o.extranonce_size);
                    self.ctx.extranonce.send_if_modified(|s| {
                        let changed = *s != Some(full_size);
                        *s = Some(full_size);
                        changed
                    });
                    self.channels.insert(
                        o.channel_id,
                        Channel {
                            extranonce_prefix: prefix,
                            full_size,
                            jobs: VecDeque::new(),
                            tip: None,
                            stale_retries: 0,
                            retry_at: None,
                        },
                    );
                    if self.declaring {
                        self.set_job(o.channel_id).await?;
                    }
                }
                Ok(())
            }
            MESSAGE_TYPE_SET_CUSTOM_MINING_JOB_SUCCESS
            | MESSAGE_TYPE_SET_CUSTOM_MINING_JOB_ERROR => {
                let mut copy = frame.payload().to_vec();
                match Mining::try_from((header.msg_type(), copy.as_mut_slice())) {
                    Ok(Mining::SetCustomMiningJobSuccess(ok)) => {
                        self.on_job_set(ok.request_id, ok.job_id).await
                    }
                    Ok(Mining::SetCustomMiningJobError(e)) => {
                        let code = e.error_code.as_utf8_or_hex();
                        self.on_job_refused(e.channel_id, e.request_id, &code)
                    }
                    other => Err(format!("malformed custom job answer: {other:?}")),
                }
            }
            _ => self.downstream.send(frame).await.map_err(|e| e.to_string()),
        }
    }

    async fn set_jobs_everywhere(&mut self) -> Result<(), String> {
        let ids: Vec<u32> = self.channels.keys().copied().collect();
        for id in ids {
            if let Some(ch) = self.channels.get_mut(&id) {
                ch.stale_retries = 0;
                ch.retry_at = None;
            }
            self.set_job(id).await?;
        }
        Ok(())
    }

    /// Asks the pool to set the current declared job on `channel_id`.
    async fn set_job(&mut self, channel_id: u32) -> Result<(), String> {
        let Some(declared) = self.ctx.declared.borrow().clone() else {
            return Ok(());
        };
        let Some(ch) = self.channels.get_mut(&channel_id) else {
            return Ok(());
        };
        if declared.full_extranonce_size != ch.full_size {
            tracing::warn!(
                channel_id,
                declared = declared.full_extranonce_size,
                channel = ch.full_size,
                "declared job has another extranonce size; channel keeps its job"
            );
            return Ok(());
        }
        let request_id = self.next_request;
        self.next_request += 1;
        let w = &declared.work;
        let tip = ChainTip::new(
            w.tip.prev_hash.clone(),
            w.tip.n_bits,
            w.tip.header_timestamp,
        );
        let scm = job_factory()
            .new_custom_job(
                channel_id,
                request_id,
                declared.token.clone(),
                tip,
                w.template.clone(),
                declared.outputs.clone(),
                ch.full_size,
            )
            .map_err(|e| format!("cannot build the custom job: {e:?}"))?;
        self.requests
            .insert(request_id, (channel_id, declared.clone(), scm.clone()));
        let frame = sv2_io::frame::encode_standard(MiningOwned::SetCustomMiningJob(scm))
            .map_err(|e| e.to_string())?;
        self.upstream.send(frame).await.map_err(|e| e.to_string())
    }

    async fn on_job_set(&mut self, request_id: u32, job_id: u32) -> Result<(), String> {
        let Some((channel_id, declared, scm)) = self.requests.remove(&request_id) else {
            return Ok(());
        };
        let Some(ch) = self.channels.get_mut(&channel_id) else {
            return Ok(());
        };
        let prev = scm.prev_hash.to_array();
        let mut job = job_factory()
            .new_extended_job_from_custom_job(scm, ch.extranonce_prefix.clone(), ch.full_size)
            .map_err(|e| format!("cannot mirror the custom job: {e:?}"))?;
        let mut msg = job.get_job_message().clone();
        msg.job_id = job_id;
        let new_tip = ch.tip != Some(prev);
        if new_tip {
            msg.min_ntime = Sv2OptionOwned::new(None);
        }
        job.set_extranonce_prefix(ch.extranonce_prefix.clone());
        ch.tip = Some(prev);
        ch.stale_retries = 0;
        ch.jobs.push_back(SetJob {
            job_id,
            declared: declared.clone(),
            job,
        });
        while ch.jobs.len() > KEEP_JOBS {
            ch.jobs.pop_front();
        }
        self.ctx.stats.custom_jobs.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(channel_id, job_id, "custom job set");
        self.send_down(MiningOwned::NewExtendedMiningJob(msg))
            .await?;
        if new_tip {
            let t = &declared.work.tip;
            let p = SetNewPrevHashOwned {
                channel_id,
                job_id,
                prev_hash: t.prev_hash.clone(),
                min_ntime: t.header_timestamp,
                nbits: t.n_bits,
            };
            self.send_down(MiningOwned::SetNewPrevHash(p)).await?;
        }
        Ok(())
    }

    fn on_job_refused(
        &mut self,
        channel_id: u32,
        request_id: u32,
        code: &str,
    ) -> Result<(), String> {
        self.requests.remove(&request_id);
        self.ctx
            .stats
            .custom_jobs_refused
            .fetch_add(1, Ordering::Relaxed);
        let Some(ch) = self.channels.get_mut(&channel_id) else {
            return Ok(());
        };
        if code == ERROR_CODE_SET_CUSTOM_MINING_JOB_STALE_CHAIN_TIP
            && ch.stale_retries < STALE_RETRIES
        {
            // Our template provider told us of the tip before the pool's did.
            ch.stale_retries += 1;
            ch.retry_at = Some(Instant::now() + STALE_RETRY_PAUSE);
            return Ok(());
        }
        if let Ok(mut t) = self.ctx.pool_refused_at.lock() {
            *t = Some(Instant::now());
        }
        Err(format!(
            "the pool refused the custom job ({code}): reconnect to mine pool templates"
        ))
    }

    async fn retry_due(&mut self) -> Result<(), String> {
        let now = Instant::now();
        let due: Vec<u32> = self
            .channels
            .iter_mut()
            .filter(|(_, c)| c.retry_at.is_some_and(|t| t <= now))
            .map(|(id, c)| {
                c.retry_at = None;
                *id
            })
            .collect();
        for id in due {
            self.set_job(id).await?;
        }
        Ok(())
    }

    /// A share on one of our custom jobs that meets the block target is a block: to the
    /// template provider (our node) and to the jd-server.
    fn check_for_block(&mut self, s: SubmitSharesExtendedOwned) {
        let Some(ch) = self.channels.get(&s.channel_id) else {
            return;
        };
        let Some(set) = ch.jobs.iter().find(|j| j.job_id == s.job_id) else {
            return;
        };
        let mut extranonce = ch.extranonce_prefix.clone();
        extranonce.extend_from_slice(s.extranonce.as_bytes());
        if extranonce.len() != ch.full_size {
            return;
        }
        let mut raw = set.job.get_coinbase_tx_prefix_with_bip141();
        raw.extend_from_slice(&extranonce);
        raw.extend_from_slice(&set.job.get_coinbase_tx_suffix_with_bip141());
        let Ok(coinbase) = deserialize::<Transaction>(&raw) else {
            return;
        };
        let path: Vec<[u8; 32]> = set
            .job
            .get_merkle_path()
            .as_slice()
            .iter()
            .map(|h| h.to_array())
            .collect();
        let tip = &set.declared.work.tip;
        let prev = tip.prev_hash.to_array();
        let header = hashpool_jd_server::coinbase::block_header(
            s.version,
            prev,
            coinbase.compute_txid().to_byte_array(),
            &path,
            s.ntime,
            tip.n_bits,
            s.nonce,
        );
        let hash = header.block_hash().to_byte_array();
        if !meets_target(&hash, &tip.target.to_array()) || !self.solved.insert(prev) {
            return;
        }
        self.ctx.stats.blocks_found.fetch_add(1, Ordering::Relaxed);
        tracing::info!(hash = %header.block_hash(), txs = set.declared.work.txs.len(), "block found on a declared job");
        let Ok(coinbase_tx) = binary_sv2::B064KOwned::try_from(raw) else {
            return;
        };
        let to_tp = SubmitSolutionOwned {
            template_id: set.declared.work.template.template_id,
            version: s.version,
            header_timestamp: s.ntime,
            header_nonce: s.nonce,
            coinbase_tx,
        };
        if self.ctx.tp_solutions.try_send(to_tp).is_err() {
            tracing::error!("template provider queue full; block not submitted there");
        }
        let Ok(extranonce) = B032Owned::try_from(extranonce) else {
            return;
        };
        let to_jds = PushSolutionOwned {
            extranonce,
            prev_hash: u256(prev),
            nonce: s.nonce,
            ntime: s.ntime,
            nbits: tip.n_bits,
            version: s.version,
        };
        if self.ctx.jds_solutions.try_send(to_jds).is_err() {
            tracing::error!("jd-server queue full; block not pushed there");
        }
    }
}
