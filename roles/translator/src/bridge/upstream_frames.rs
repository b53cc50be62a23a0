//! Frames from the pool: channel setup, jobs, targets, share verdicts and ehash signatures.

use super::{Bridge, ChannelState, MINER_PREFIX_LEN};
use crate::share_check::SeenShares;
use crate::wallet::IncomingSignature;
use ehash_protocol::signature_batch::{EhashSignatures, MSG_EHASH_SIGNATURES};
use ehash_protocol::{messages as m, EXTENSION_TYPE_EHASH};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use stratum_core::bitcoin::Target;
use stratum_core::parsers_sv2::{Mining, MiningOwned};

/// Jobs kept per channel; older ones are dropped (the pool would call their shares stale).
const MAX_JOBS: usize = 64;

impl Bridge {
    pub(super) async fn on_upstream(&mut self, mut frame: sv2_io::Frame) -> Result<(), String> {
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
                let mut ch = ChannelState {
                    channel_id: s.channel_id,
                    prefix,
                    rollable,
                    target: Target::MAX,
                    work_log2: 0,
                    jobs: HashMap::new(),
                    prev_hash: None,
                    active_job: None,
                    seen: SeenShares::default(),
                };
                ch.set_target(Target::from_le_bytes(s.target.to_array()));
                self.channel = Some(ch);
                self.reconnect_stale_miners().await;
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
                if ch.jobs.len() > MAX_JOBS {
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
                // Jobs built on the old tip are stale now: miners get `job not found` for them
                // instead of a round trip to the pool.
                let active = p.job_id;
                ch.jobs.retain(|id, _| *id >= active);
                ch.active_job = Some(active);
                ch.prev_hash = Some(p);
                ch.seen.clear();
                self.broadcast_work(true).await;
            }
            MiningOwned::SetTarget(t) => {
                let Some(ch) = self.channel.as_mut() else {
                    return Ok(());
                };
                ch.set_target(Target::from_le_bytes(t.maximum_target.to_array()));
                tracing::debug!(
                    channel_id = ch.channel_id,
                    work_log2 = ch.work_log2,
                    "channel target"
                );
                // Miners above the new channel difficulty are brought down to it; the others
                // keep their own.
                let work = ch.work_log2;
                let over: Vec<u64> = self
                    .miners
                    .iter()
                    .filter(|(_, m)| m.difficulty.work_log2().is_some_and(|w| w > work))
                    .map(|(id, _)| *id)
                    .collect();
                let notify = self.notify_line(false);
                for id in over {
                    self.send_work(id, notify.as_deref(), true).await;
                }
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
                    self.round_trip(p.sent);
                    self.answer_forwarded(p.miner, p.request_id, Some("")).await;
                }
            }
            MiningOwned::SubmitSharesError(e) => {
                self.stats.shares_rejected.fetch_add(1, Ordering::Relaxed);
                let code = String::from_utf8_lossy(e.error_code.as_bytes()).to_string();
                tracing::debug!(sequence_number = e.sequence_number, %code, "share rejected");
                if let Some(p) = self.pending.remove(&e.sequence_number) {
                    self.round_trip(p.sent);
                    if let (Some(b), Some(w)) = (p.blinded, self.wallet.borrow().clone()) {
                        w.discard(&b);
                    }
                    self.answer_forwarded(p.miner, p.request_id, Some(&code))
                        .await;
                }
            }
            other => tracing::debug!(msg = ?other, "ignoring upstream message"),
        }
        Ok(())
    }

    /// After a new upstream channel (a pool restart), miners subscribed under another
    /// extranonce prefix would hash headers the pool cannot check: they are told to reconnect
    /// and their connection is closed, so they subscribe again under the new prefix.
    async fn reconnect_stale_miners(&mut self) {
        let stale: Vec<u64> = self
            .miners
            .iter()
            .filter(|(_, m)| m.subscribed)
            .filter(|(_, m)| {
                self.miner_extranonce1(m.index)
                    .is_none_or(|(en1, _)| en1 != m.extranonce1)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            let reconnect =
                serde_json::json!({"id": null, "method": "client.reconnect", "params": []});
            if let Some(m) = self.miners.remove(&id) {
                let _ = m.lines.send(reconnect.to_string()).await;
                self.stats.miners.fetch_sub(1, Ordering::Relaxed);
                tracing::info!(miner = id, user = %m.user, "new upstream channel; miner told to reconnect");
            }
        }
    }

    /// Hands a signature to the proof store (which stores in batches; this waits only when its
    /// queue is full).
    async fn store_signature(&self, sig: &m::EhashSignature) -> Result<(), String> {
        let blinded: [u8; 33] = sig
            .blinded
            .as_bytes()
            .try_into()
            .map_err(|_| "B_ must be 33 bytes")?;
        let keyset = cdk::nuts::Id::from_bytes(sig.keyset_id.as_bytes())
            .map_err(|e| format!("bad keyset id in signature: {e}"))?;
        let incoming = IncomingSignature {
            blinded,
            keyset,
            amount: sig.amount,
            c: sig.signature.as_bytes().to_vec(),
            dleq_e: sig.dleq_e.to_array(),
            dleq_s: sig.dleq_s.to_array(),
        };
        self.signatures
            .send(incoming)
            .await
            .map_err(|_| "proof store stopped".to_string())
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
                self.store_signature(&sig).await?;
            }
            MSG_EHASH_SIGNATURES => {
                let batch: EhashSignatures =
                    m::decode(frame.payload()).map_err(|e| format!("{e:?}"))?;
                for sig in batch.unpack().map_err(|e| e.to_string())? {
                    self.store_signature(&sig).await?;
                }
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
