//! One downstream connection (a translator or an SV2 miner): setup, extension negotiation,
//! channels, jobs, share validation, ehash issuance and vardiff.

use crate::channel::{ChannelKind, PoolChannel, Share};
use crate::mint_client::EhashReply;
use crate::work::WorkEvent;
use crate::PoolContext;
use ehash_protocol::difficulty::meets_target as meets;
use ehash_protocol::{messages as m, BlindedShare, EXTENSION_TYPE_EHASH};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use stratum_core::bitcoin::Target;
use stratum_core::channels_sv2::server::extended::ExtendedChannel;
use stratum_core::channels_sv2::server::standard::StandardChannel;
use stratum_core::common_messages_sv2::{Protocol, SetupConnectionErrorOwned};
use stratum_core::extensions_sv2::{RequestExtensionsErrorOwned, RequestExtensionsSuccessOwned};
use stratum_core::mining_sv2::{
    OpenExtendedMiningChannelSuccessOwned, OpenMiningChannelErrorOwned,
    OpenStandardMiningChannelSuccessOwned, SetTargetOwned,
};
use stratum_core::parsers_sv2::{
    AnyMessage, CommonMessagesOwned, ExtensionsNegotiation, ExtensionsNegotiationOwned,
    ExtensionsOwned, Mining, MiningOwned,
};
use sv2_io::{FrameReader, FrameSender};
use tokio::sync::{broadcast, mpsc};

/// Channels one connection may open.
const MAX_CHANNELS_PER_CONNECTION: usize = 64;
/// Replies handled in one turn of a connection's loop (bounds the batch, not the rate).
const MAX_REPLIES_AT_ONCE: usize = 1024;

/// Parameters shared by both channel kinds at open.
struct NewChannel {
    id: u32,
    user: String,
    k: u8,
    max_target: Target,
    hashrate: f32,
}

pub(crate) struct Connection {
    pub(crate) ctx: Arc<PoolContext>,
    pub(crate) sender: FrameSender,
    pub(crate) channels: HashMap<u32, PoolChannel>,
    pub(crate) ehash: bool,
    /// The client chooses its work (job declaration): its channels get custom jobs only.
    pub(crate) work_selection: bool,
    pub(crate) replies: mpsc::UnboundedSender<EhashReply>,
    /// Ehash shares waiting for a durable claim before their acknowledgement.
    pub(crate) unacked: crate::share_race::UnackedShares,
    /// Connection number and remote address, shown on the dashboard.
    pub(crate) number: u64,
    pub(crate) peer: std::net::SocketAddr,
}

pub(crate) fn str255(s: &str) -> Result<binary_sv2::Str0255Owned, String> {
    binary_sv2::Str0255Owned::try_from(s.to_string()).map_err(|_| format!("string too long: {s}"))
}

/// Serves one accepted Noise connection until it closes.
pub async fn serve(
    ctx: Arc<PoolContext>,
    mut reader: FrameReader,
    sender: FrameSender,
    peer: std::net::SocketAddr,
) -> Result<(), String> {
    let number = ctx.next_connection.fetch_add(1, Ordering::Relaxed);
    let disconnect = ctx.admission.admit(number, peer)?;
    let _admitted = Admitted(ctx.clone(), number);
    let flags = sv2_io::setup::expect_setup(&mut reader, Protocol::MiningProtocol).await?;
    let work_selection = stratum_core::common_messages_sv2::has_work_selection(flags);
    if work_selection && !ctx.jd_tokens.is_enabled() {
        let refused = CommonMessagesOwned::SetupConnectionError(SetupConnectionErrorOwned {
            flags: sv2_io::setup::REQUIRES_WORK_SELECTION,
            error_code: str255("unsupported-feature-flags")?,
        });
        send(&sender, refused).await?;
        return Err("work selection asked, but this pool has no jd-server".into());
    }
    sv2_io::setup::accept_setup(&sender).await?;

    let (replies, mut reply_rx) = mpsc::unbounded_channel();
    let (_, mut work) = ctx.work.subscribe();
    let mut mint_info = ctx.mint.info();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(
        ctx.vardiff_interval.as_secs_f64().max(0.5),
    ));
    let mut conn = Connection {
        number,
        peer,
        ctx,
        sender,
        channels: HashMap::new(),
        ehash: false,
        work_selection,
        replies,
        unacked: Default::default(),
    };
    loop {
        tokio::select! {
            frame = reader.next() => {
                let frame = frame.map_err(|e| e.to_string())?;
                conn.on_frame(frame).await?;
            }
            event = work.recv() => match event {
                Ok((seq, received, e)) => conn.on_work(seq, received, &e).await?,
                Err(broadcast::error::RecvError::Lagged(n)) => return Err(format!("fell {n} work events behind")),
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            Some(reply) = reply_rx.recv() => {
                // Whatever else is ready goes out with it: signatures in batches.
                let mut ready = vec![reply];
                while ready.len() < MAX_REPLIES_AT_ONCE {
                    match reply_rx.try_recv() {
                        Ok(r) => ready.push(r),
                        Err(_) => break,
                    }
                }
                conn.on_replies(ready).await?
            }
            changed = mint_info.changed() => {
                if changed.is_err() { return Ok(()); }
                if conn.ehash { conn.send_mint_info().await?; }
            }
            _ = tick.tick() => conn.on_vardiff_tick().await?,
            _ = disconnect.cancelled() => return Err("disconnected by the operator".into()),
        }
    }
}

async fn send<T>(sender: &FrameSender, msg: T) -> Result<(), String>
where
    T: binary_sv2::Serialize + binary_sv2::GetSize + stratum_core::parsers_sv2::IsSv2Message,
{
    let frame = sv2_io::frame::encode_standard(msg).map_err(|e| e.to_string())?;
    sender.send(frame).await.map_err(|e| e.to_string())
}

/// Takes a connection off the admission list when it ends, however it ends.
struct Admitted(Arc<PoolContext>, u64);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.admission.leave(self.1);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for id in self.channels.keys() {
            self.ctx.board.close(*id);
        }
    }
}

impl Connection {
    pub(crate) async fn send_mining(&self, msg: MiningOwned) -> Result<(), String> {
        send(&self.sender, msg).await
    }

    pub(crate) async fn send_ehash<T: m::Wire>(&self, msg: T, t: u8) -> Result<(), String> {
        let frame =
            sv2_io::encode(msg, t, EXTENSION_TYPE_EHASH, true).map_err(|e| e.to_string())?;
        self.sender.send(frame).await.map_err(|e| e.to_string())
    }

    async fn send_mint_info(&self) -> Result<(), String> {
        let Some(info) = self.ctx.mint.current() else {
            return Ok(());
        };
        let msg = m::EhashMintInfo {
            keyset_id: m::b0255(&info.keyset_id).map_err(|e| e.to_string())?,
            share_unit_log2: self.ctx.unit.unit_log2(),
            mint_url: m::str0255(&info.http_url).map_err(|e| e.to_string())?,
        };
        self.send_ehash(msg, m::MSG_EHASH_MINT_INFO).await
    }

    async fn on_frame(&mut self, mut frame: sv2_io::Frame) -> Result<(), String> {
        let header = frame.header();
        let ext = header.ext_type_without_channel_msg();
        if ext == 0x0001 {
            return self.on_extension_negotiation(frame).await;
        }
        if ext != 0 {
            tracing::debug!(
                ext,
                msg_type = header.msg_type(),
                "ignoring unknown extension message"
            );
            return Ok(());
        }
        let negotiated: &[u16] = if self.ehash {
            &[EXTENSION_TYPE_EHASH]
        } else {
            &[]
        };
        let (msg, tlvs) = sv2_io::frame::parse_with_tlvs(header, frame.payload(), negotiated)
            .map_err(|e| e.to_string())?;
        let blinded = tlvs
            .iter()
            .find(|t| t.r#type.field_type == ehash_protocol::TLV_FIELD_BLINDED_SHARE)
            .map(BlindedShare::from_tlv);
        match msg {
            AnyMessage::Mining(Mining::OpenExtendedMiningChannel(o)) => {
                self.open_extended(o.into_owned()).await
            }
            AnyMessage::Mining(Mining::OpenStandardMiningChannel(o)) => {
                self.open_standard(o.into_owned()).await
            }
            AnyMessage::Mining(Mining::SubmitSharesExtended(s)) => {
                self.on_share(Share::Extended(s.into_owned()), blinded)
                    .await
            }
            AnyMessage::Mining(Mining::SubmitSharesStandard(s)) => {
                self.on_share(Share::Standard(s), blinded).await
            }
            AnyMessage::Mining(Mining::SetCustomMiningJob(m)) => {
                self.on_custom_job(m.into_owned()).await
            }
            AnyMessage::Mining(Mining::CloseChannel(c)) => {
                if self.channels.remove(&c.channel_id).is_some() {
                    self.ctx.board.close(c.channel_id);
                }
                Ok(())
            }
            AnyMessage::Mining(Mining::UpdateChannel(u)) => {
                tracing::debug!(
                    channel_id = u.channel_id,
                    hashrate = u.nominal_hash_rate,
                    "UpdateChannel (vardiff decides)"
                );
                Ok(())
            }
            other => {
                tracing::debug!(msg = %other, "ignoring message");
                Ok(())
            }
        }
    }

    async fn on_extension_negotiation(&mut self, mut frame: sv2_io::Frame) -> Result<(), String> {
        let h = frame.header();
        let parsed = stratum_core::parsers_sv2::Extensions::try_from((
            h.ext_type(),
            h.msg_type(),
            frame.payload(),
        ))
        .map_err(|e| format!("malformed extension negotiation: {e:?}"))?;
        let stratum_core::parsers_sv2::Extensions::ExtensionsNegotiation(
            ExtensionsNegotiation::RequestExtensions(r),
        ) = parsed
        else {
            return Ok(());
        };
        let requested: Vec<u16> = r.requested_extensions.into_inner();
        let (supported, unsupported): (Vec<u16>, Vec<u16>) = requested
            .into_iter()
            .partition(|e| *e == EXTENSION_TYPE_EHASH);
        let reply = if unsupported.is_empty() || !supported.is_empty() {
            self.ehash = !supported.is_empty();
            ExtensionsNegotiationOwned::RequestExtensionsSuccess(RequestExtensionsSuccessOwned {
                request_id: r.request_id,
                supported_extensions: binary_sv2::Seq064KOwned::new(supported)
                    .map_err(|e| format!("{e:?}"))?,
            })
        } else {
            ExtensionsNegotiationOwned::RequestExtensionsError(RequestExtensionsErrorOwned {
                request_id: r.request_id,
                unsupported_extensions: binary_sv2::Seq064KOwned::new(unsupported)
                    .map_err(|e| format!("{e:?}"))?,
                required_extensions: binary_sv2::Seq064KOwned::new(Vec::new())
                    .map_err(|e| format!("{e:?}"))?,
            })
        };
        send(&self.sender, ExtensionsOwned::ExtensionsNegotiation(reply)).await?;
        if self.ehash {
            self.send_mint_info().await?;
        }
        Ok(())
    }

    fn initial_exponent(&self, nominal_hashrate: f32, max_target_le: &[u8; 32]) -> u8 {
        let unit = &self.ctx.unit;
        let mut k =
            unit.exponent_for_hashrate(f64::from(nominal_hashrate), self.ctx.shares_per_minute);
        while k < ehash_protocol::difficulty::MAX_AMOUNT_LOG2
            && !meets(&unit.target_le(k), max_target_le)
        {
            k += 1;
        }
        k
    }

    async fn open_error(&self, request_id: u32, code: &str) -> Result<(), String> {
        let msg = OpenMiningChannelErrorOwned {
            request_id,
            error_code: str255(code)?,
        };
        self.send_mining(MiningOwned::OpenMiningChannelError(msg))
            .await
    }

    /// What both channel kinds need before construction: an id, the identity and the exponent.
    fn channel_params(
        &self,
        user_identity: &[u8],
        nominal_hash_rate: f32,
        max_target: [u8; 32],
    ) -> NewChannel {
        NewChannel {
            id: self.ctx.next_channel_id.fetch_add(1, Ordering::Relaxed),
            user: String::from_utf8_lossy(user_identity).to_string(),
            k: self.initial_exponent(nominal_hash_rate, &max_target),
            max_target: Target::from_le_bytes(max_target),
            hashrate: nominal_hash_rate.max(1.0),
        }
    }

    /// Puts a constructed channel on the ladder, registers it and replays the current work.
    /// `success` is sent in between, after the target is set and before any job.
    async fn install(
        &mut self,
        p: NewChannel,
        kind: ChannelKind,
        success: MiningOwned,
    ) -> Result<(), String> {
        let owner = crate::board::ChannelOwner {
            connection: self.number,
            peer: self.peer,
            user: p.user.clone(),
            kind: match kind {
                ChannelKind::Extended(_) => "extended",
                ChannelKind::Standard(_) => "standard",
            },
            ehash: self.ehash,
        };
        let mut pc = PoolChannel {
            counters: self.ctx.board.open(p.id, owner, p.k),
            kind,
            k: p.k,
            vardiff: ehash_protocol::vardiff::PowerOfTwoVardiff::new(
                self.ctx.vardiff_interval,
                self.ctx.shares_per_minute,
            ),
            work_seq: 0,
            custom_jobs: Default::default(),
        };
        pc.set_target(p.k, self.ctx.unit.target(p.k))?;
        self.send_mining(success).await?;
        tracing::info!(channel_id = p.id, user = %p.user, k = p.k, "channel opened");
        self.channels.insert(p.id, pc);
        self.replay_work(p.id).await
    }

    async fn open_extended(
        &mut self,
        o: stratum_core::mining_sv2::OpenExtendedMiningChannelOwned,
    ) -> Result<(), String> {
        if self.channels.len() >= MAX_CHANNELS_PER_CONNECTION {
            return self.open_error(o.request_id, "too-many-channels").await;
        }
        let allocated = {
            let mut alloc = self
                .ctx
                .allocator
                .lock()
                .map_err(|_| "allocator poisoned")?;
            let rollable = alloc.rollable_extranonce_size();
            alloc
                .allocate_extended(usize::from(o.min_extranonce_size))
                .map(|p| (p, rollable))
        };
        let (prefix, rollable) = match allocated {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = ?e, "cannot allocate extranonce prefix");
                return self
                    .open_error(o.request_id, "unsupported-min-extranonce-size")
                    .await;
            }
        };
        let prefix_bytes = binary_sv2::B032Owned::try_from(prefix.as_bytes().to_vec())
            .map_err(|_| "prefix too long")?;
        let p = self.channel_params(
            o.user_identity.as_bytes(),
            o.nominal_hash_rate,
            o.max_target.to_array(),
        );
        let ch = ExtendedChannel::new_for_pool(
            p.id,
            p.user.clone(),
            prefix,
            p.max_target,
            p.hashrate,
            true,
            u16::from(rollable),
            1,
            self.ctx.shares_per_minute as f32,
            self.ctx.pool_tag.clone(),
            Some(32),
        );
        let ch = match ch {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = ?e, "cannot open extended channel");
                return self
                    .open_error(o.request_id, "max-target-out-of-range")
                    .await;
            }
        };
        let success =
            MiningOwned::OpenExtendedMiningChannelSuccess(OpenExtendedMiningChannelSuccessOwned {
                request_id: o.request_id,
                channel_id: p.id,
                target: self.ctx.unit.target_le(p.k).into(),
                extranonce_size: u16::from(rollable),
                extranonce_prefix: prefix_bytes,
                group_channel_id: 0,
            });
        self.install(p, ChannelKind::Extended(Box::new(ch)), success)
            .await
    }

    async fn open_standard(
        &mut self,
        o: stratum_core::mining_sv2::OpenStandardMiningChannelOwned,
    ) -> Result<(), String> {
        if self.channels.len() >= MAX_CHANNELS_PER_CONNECTION {
            return self.open_error(o.request_id, "too-many-channels").await;
        }
        if self.work_selection {
            // Custom jobs are extended jobs: a standard channel would never get work.
            return self
                .open_error(
                    o.request_id,
                    stratum_core::mining_sv2::ERROR_CODE_OPEN_MINING_CHANNEL_STANDARD_CHANNELS_NOT_SUPPORTED_FOR_CUSTOM_WORK,
                )
                .await;
        }
        let allocated = self
            .ctx
            .allocator
            .lock()
            .map_err(|_| "allocator poisoned")?
            .allocate_standard();
        let prefix = match allocated {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = ?e, "cannot allocate standard extranonce");
                return self.open_error(o.request_id, "capacity-exhausted").await;
            }
        };
        let prefix_bytes = binary_sv2::B032Owned::try_from(prefix.as_bytes().to_vec())
            .map_err(|_| "prefix too long")?;
        let p = self.channel_params(
            o.user_identity.as_bytes(),
            o.nominal_hash_rate,
            o.max_target.to_array(),
        );
        let ch = StandardChannel::new_for_pool(
            p.id,
            p.user.clone(),
            prefix,
            p.max_target,
            p.hashrate,
            1,
            self.ctx.shares_per_minute as f32,
            self.ctx.pool_tag.clone(),
            Some(32),
        );
        let ch = match ch {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = ?e, "cannot open standard channel");
                return self
                    .open_error(o.request_id, "max-target-out-of-range")
                    .await;
            }
        };
        let success =
            MiningOwned::OpenStandardMiningChannelSuccess(OpenStandardMiningChannelSuccessOwned {
                request_id: o.request_id,
                channel_id: p.id,
                target: self.ctx.unit.target_le(p.k).into(),
                extranonce_prefix: prefix_bytes,
                group_channel_id: 0,
            });
        self.install(p, ChannelKind::Standard(Box::new(ch)), success)
            .await
    }

    /// Gives a new channel the current future job, prev hash and active job.
    async fn replay_work(&mut self, channel_id: u32) -> Result<(), String> {
        if self.work_selection {
            return Ok(());
        }
        let snapshot = self.ctx.work.snapshot();
        if let Some(ch) = self.channels.get_mut(&channel_id) {
            ch.work_seq = snapshot.seq;
        }
        let mut events = Vec::new();
        if let Some(f) = snapshot.future {
            events.push(WorkEvent::Template(f));
        }
        if let Some(p) = snapshot.prev_hash {
            events.push(WorkEvent::PrevHash(p));
        }
        if let Some(a) = snapshot.active {
            events.push(WorkEvent::Template(a));
        }
        for e in events {
            self.apply_work(channel_id, &e).await?;
        }
        Ok(())
    }

    async fn apply_work(&mut self, channel_id: u32, event: &WorkEvent) -> Result<(), String> {
        let payout = self.ctx.payout.clone();
        let Some(ch) = self.channels.get_mut(&channel_id) else {
            return Ok(());
        };
        let msg = match event {
            WorkEvent::Template(t) => ch.on_template(t, &payout),
            WorkEvent::PrevHash(p) => ch.on_prev_hash(p),
        };
        match msg {
            Ok(Some(msg)) => self.send_mining(msg).await,
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::warn!(channel_id, error = %e, "channel refused work");
                Ok(())
            }
        }
    }

    async fn on_work(
        &mut self,
        seq: u64,
        received: std::time::Instant,
        event: &WorkEvent,
    ) -> Result<(), String> {
        if self.work_selection {
            // Its channels mine the client's own jobs (SetCustomMiningJob).
            return Ok(());
        }
        let due: Vec<u32> = self
            .channels
            .iter_mut()
            .filter(|(_, ch)| ch.work_seq < seq)
            .map(|(id, ch)| {
                ch.work_seq = seq;
                *id
            })
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        for id in due {
            self.apply_work(id, event).await?;
        }
        self.ctx
            .stats
            .work_latency
            .observe(event, received.elapsed());
        Ok(())
    }

    async fn on_vardiff_tick(&mut self) -> Result<(), String> {
        let mut updates = Vec::new();
        for (id, ch) in self.channels.iter_mut() {
            if let Some(k) = ch
                .vardiff
                .retarget(ch.k, ehash_protocol::difficulty::MAX_AMOUNT_LOG2)
            {
                let target = self.ctx.unit.target(k);
                if let Err(e) = ch.set_target(k, target) {
                    tracing::warn!(channel_id = id, error = %e, "vardiff target refused");
                    continue;
                }
                tracing::debug!(channel_id = id, k, "vardiff retarget");
                updates.push(SetTargetOwned {
                    channel_id: *id,
                    maximum_target: self.ctx.unit.target_le(k).into(),
                });
            }
        }
        for u in updates {
            self.send_mining(MiningOwned::SetTarget(u)).await?;
        }
        Ok(())
    }
}
