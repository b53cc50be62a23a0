//! SV1 requests from miners: configure, subscribe, authorize, and share submission with local
//! judging before anything is forwarded.

use super::{error_response, Bridge, MinerId, PendingShare};
use crate::share_check::{self, ShareGrade, VERSION_ROLLING_MASK};
use ehash_protocol::BlindedShare;
use std::sync::atomic::Ordering;
use stratum_core::mining_sv2::SubmitSharesExtendedOwned;
use stratum_core::parsers_sv2::{MiningOwned, TlvList};
use stratum_core::stratum_translation::sv1_to_sv2;
use stratum_core::sv1_api::client_to_server::{Submit, SubmitError, SubmitOutcome};
use stratum_core::sv1_api::json_rpc::{self, Message};
use stratum_core::sv1_api::methods::Client2Server;
use stratum_core::sv1_api::server_to_client;
use stratum_core::sv1_api::utils::{Extranonce, HexU32Be};

impl Bridge {
    pub(super) async fn on_request(
        &mut self,
        id: MinerId,
        request: Client2Server,
    ) -> Result<(), String> {
        match request {
            Client2Server::Configure(c) => {
                let requested = c.version_rolling_mask();
                let vr = requested.map(|mask| {
                    server_to_client::VersionRollingParams::new(
                        HexU32Be(mask.0 & VERSION_ROLLING_MASK),
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
                    let resp = error_response(s.id, 20, "no upstream channel yet");
                    self.send_line(id, &resp).await;
                    return Ok(());
                };
                if let Some(m) = self.miners.get_mut(&id) {
                    m.extranonce1 = en1.clone();
                }
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
                let notify = self.notify_line(true);
                self.send_work(id, notify.as_deref(), true).await;
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

    /// Answers a forwarded share with the pool's verdict (`None`: the pool never answered).
    pub(super) async fn answer_forwarded(
        &self,
        miner: MinerId,
        request_id: u64,
        pool_error: Option<&str>,
    ) {
        if let Some(m) = self.miners.get(&miner) {
            match (pool_error, m.difficulty.work_log2()) {
                (Some(""), Some(work)) => m.tally.accepted(work),
                (Some(""), None) => {}
                _ => m.tally.rejected(),
            }
        }
        let resp = match pool_error {
            Some("") => Message::from(json_rpc::Response {
                id: request_id,
                error: None,
                result: serde_json::Value::Bool(true),
            }),
            other => {
                let (code, message) = match other {
                    Some("stale-share") | Some("invalid-job-id") => (21, "stale share"),
                    Some("duplicate-share") => (22, "duplicate share"),
                    Some("difficulty-too-low") => (23, "low difficulty share"),
                    Some(_) => (20, "share rejected by pool"),
                    None => (20, "pool connection lost"),
                };
                error_response(request_id, code, message)
            }
        };
        self.send_line(miner, &resp).await;
    }

    async fn answer_local(&self, miner: MinerId, submit: Submit, outcome: SubmitOutcome) {
        let tally = self
            .miners
            .get(&miner)
            .map(|m| (&m.tally, m.difficulty.work_log2()));
        if let SubmitOutcome::Rejected(_) = outcome {
            self.stats
                .shares_rejected_locally
                .fetch_add(1, Ordering::Relaxed);
            if let Some((t, _)) = tally {
                t.rejected();
            }
        } else if let Some((t, Some(work))) = tally {
            t.accepted(work);
        }
        let resp = submit.respond(outcome);
        self.send_line(miner, &Message::from(resp)).await;
    }

    async fn on_submit(&mut self, id: MinerId, s: Submit) -> Result<(), String> {
        let Some(miner) = self.miners.get(&id) else {
            return Ok(());
        };
        if !miner.authorized {
            let e = SubmitError::UnauthorizedWorker;
            self.answer_local(id, s, SubmitOutcome::Rejected(e)).await;
            return Ok(());
        }
        let (index, version_rolling) = (miner.index, miner.version_rolling);
        let Some(ch) = self.channel.as_ref().filter(|_| self.upstream.is_some()) else {
            self.answer_local(id, s, SubmitOutcome::Rejected(SubmitError::Other))
                .await;
            return Ok(());
        };
        let job_id = s.job_id.parse::<u32>().ok();
        let (Some(job), Some(prev)) = (job_id.and_then(|j| ch.jobs.get(&j)), &ch.prev_hash) else {
            let e = SubmitError::JobNotFound;
            self.answer_local(id, s, SubmitOutcome::Rejected(e)).await;
            return Ok(());
        };
        let mask =
            (version_rolling && s.version_bits.is_some()).then_some(HexU32Be(VERSION_ROLLING_MASK));
        let mut submit = s.clone();
        if mask.is_none() {
            submit.version_bits = None;
        }
        let mut share = sv1_to_sv2::build_sv2_submit_shares_extended_from_sv1_submit(
            &submit,
            ch.channel_id,
            0,
            job.version,
            mask,
        )
        .map_err(|e| format!("{e:?}"))?;
        let mut extranonce = index.to_be_bytes().to_vec();
        extranonce.extend_from_slice(share.extranonce.as_bytes());
        if extranonce.len() != ch.rollable {
            self.answer_local(id, s, SubmitOutcome::Rejected(SubmitError::Other))
                .await;
            return Ok(());
        }
        let mut full_extranonce = ch.prefix.clone();
        full_extranonce.extend_from_slice(&extranonce);
        let hash = match share_check::share_hash(job, prev, &full_extranonce, &share) {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(miner = id, error = %e, "invalid share");
                self.answer_local(id, s, SubmitOutcome::Rejected(SubmitError::Other))
                    .await;
                return Ok(());
            }
        };
        share.extranonce =
            binary_sv2::B032Owned::try_from(extranonce).map_err(|_| "extranonce too long")?;
        let channel_work = ch.work_log2;
        let channel_target = ch.target.to_le_bytes();
        let Some(miner_target) = self
            .miners
            .get(&id)
            .map(|m| m.difficulty.accept_target_le(channel_work))
        else {
            return Ok(());
        };
        let grade = share_check::grade(&hash, &miner_target, &channel_target);
        if grade == ShareGrade::BelowMinerTarget {
            let e = SubmitError::LowDifficultyShare;
            self.answer_local(id, s, SubmitOutcome::Rejected(e)).await;
            return Ok(());
        }
        let fresh = self.channel.as_mut().is_some_and(|ch| ch.seen.insert(hash));
        if !fresh {
            let e = SubmitError::DuplicateShare;
            self.answer_local(id, s, SubmitOutcome::Rejected(e)).await;
            return Ok(());
        }
        if let Some(m) = self.miners.get_mut(&id) {
            m.difficulty.on_share();
        }
        self.stats.miner_shares.fetch_add(1, Ordering::Relaxed);
        if grade == ShareGrade::MinerOnly {
            self.answer_local(id, s, SubmitOutcome::Accepted).await;
            return Ok(());
        }
        self.forward(id, s.id, share).await
    }

    /// Sends a share that meets the channel target to the pool, with a blinded message when the
    /// pool speaks the ehash extension; the miner gets its answer with the pool's verdict.
    async fn forward(
        &mut self,
        id: MinerId,
        request_id: u64,
        mut share: SubmitSharesExtendedOwned,
    ) -> Result<(), String> {
        let Some(upstream) = self.upstream.clone() else {
            self.answer_forwarded(id, request_id, None).await;
            return Ok(());
        };
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        share.sequence_number = seq;
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
                    .build_frame_bytes_with_tlvs(MiningOwned::SubmitSharesExtended(share))
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
                request_id,
                blinded: blinded.map(|b| b.1),
                sent: std::time::Instant::now(),
            },
        );
        self.stats.shares_submitted.fetch_add(1, Ordering::Relaxed);
        upstream.send(frame).await.map_err(|e| e.to_string())
    }
}
