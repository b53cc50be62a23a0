//! Judging a share and paying it: validation, block detection, SubmitShares answers and the
//! sign request for its blinded message.

use crate::channel::Share;
use crate::downstream::{str255, Connection};
use crate::mint_client::PendingSign;
use crate::share_race::ShareRef;
use ehash_protocol::difficulty::meets_target as meets;
use ehash_protocol::{messages as m, BlindedShare};
use std::sync::atomic::Ordering;
use stratum_core::bitcoin::hashes::Hash;
use stratum_core::channels_sv2::server::share_accounting::{
    ShareValidationError, ShareValidationResult,
};
use stratum_core::mining_sv2::{SubmitSharesErrorOwned, SubmitSharesSuccess};
use stratum_core::parsers_sv2::MiningOwned;
use stratum_core::template_distribution_sv2::SubmitSolutionOwned;

fn share_error_code(e: &ShareValidationError) -> &'static str {
    match e {
        ShareValidationError::Invalid(c)
        | ShareValidationError::Stale(c)
        | ShareValidationError::InvalidJobId(c)
        | ShareValidationError::DoesNotMeetTarget(c)
        | ShareValidationError::VersionRollingNotAllowed(c)
        | ShareValidationError::DuplicateShare(c)
        | ShareValidationError::BadExtranonceSize(c) => c,
        ShareValidationError::NoChainTip => "stale-share",
        _ => "invalid-share",
    }
}

impl Connection {
    pub(crate) async fn reject(
        &self,
        channel_id: u32,
        sequence_number: u32,
        code: &str,
    ) -> Result<(), String> {
        self.ctx
            .stats
            .shares_rejected
            .fetch_add(1, Ordering::Relaxed);
        if let Ok(mut by) = self.ctx.stats.rejected_by_reason.lock() {
            *by.entry(code.to_string()).or_default() += 1;
        }
        if let Some(ch) = self.channels.get(&channel_id) {
            ch.counters.on_rejected();
        }
        let msg = SubmitSharesErrorOwned {
            channel_id,
            sequence_number,
            error_code: str255(code)?,
        };
        self.send_mining(MiningOwned::SubmitSharesError(msg)).await
    }

    pub(crate) async fn ehash_error(
        &self,
        channel_id: u32,
        sequence_number: u32,
        code: &str,
    ) -> Result<(), String> {
        let msg = m::EhashSignatureError {
            channel_id,
            sequence_number,
            error_code: str255(code)?,
        };
        self.send_ehash(msg, m::MSG_EHASH_SIGNATURE_ERROR).await
    }

    pub(crate) async fn on_share(
        &mut self,
        share: Share,
        blinded: Option<Result<BlindedShare, ehash_protocol::TlvError>>,
    ) -> Result<(), String> {
        let (channel_id, seq) = (share.channel_id(), share.sequence_number());
        if matches!(blinded, Some(Ok(_))) && !self.ctx.mint.is_up() {
            // Never accept a share we cannot pay: the miner keeps the work and resubmits later.
            return self.reject(channel_id, seq, m::ERR_MINT_UNAVAILABLE).await;
        }
        let (version, ntime, nonce) = share.header_fields();
        let job_id = share.job_id();
        let block_target = self.ctx.work.block_target();
        let Some(ch) = self.channels.get_mut(&channel_id) else {
            return self.reject(channel_id, seq, "invalid-channel-id").await;
        };
        let (k, target, parent) = (ch.k, ch.target_le(), ch.parent_hash());
        // A custom job is never told of a new tip by the pool: until its client sets one on the
        // new tip, its shares are work on a stale parent. One share is not: the block that made
        // the new tip, when the miner's own node took it before this share reached us.
        let tip = if self.work_selection {
            self.ctx.work.tip().map(|t| t.0)
        } else {
            None
        };
        let stale_parent = self.work_selection && parent.is_some() && parent != tip;
        let result = ch.validate(share);
        let made_the_tip = matches!(&result, Ok(ShareValidationResult::BlockFound(hash, ..))
            if tip == Some(hash.to_byte_array()));
        if stale_parent && !made_the_tip {
            return self.reject(channel_id, seq, "stale-share").await;
        }
        let accepted = match result {
            Ok(ShareValidationResult::Valid(_)) => true,
            Ok(ShareValidationResult::BlockFound(hash, template_id, coinbase)) => {
                let hash = hash.to_byte_array();
                // channels_sv2 calls any hash under nBits a block; on regtest that is almost
                // every hash, so check the share target and the TP's block target ourselves.
                let share_ok = meets(&hash, &target);
                // A stale parent got this far only as the block the node already took.
                let is_block =
                    share_ok && (stale_parent || block_target.is_some_and(|t| meets(&hash, &t)));
                if is_block && parent.is_some_and(|p| self.ctx.work.claim_block(p)) {
                    match template_id {
                        Some(template_id) => {
                            self.submit_block(template_id, version, ntime, nonce, coinbase, hash)
                        }
                        // A custom job's block: the miner's job declarator client submits it
                        // (to its node and the jd-server); the pool records and follows it.
                        None => self.custom_block_found(channel_id, job_id, hash),
                    }
                }
                share_ok
            }
            Err(e) => return self.reject(channel_id, seq, share_error_code(&e)).await,
        };
        if !accepted {
            return self.reject(channel_id, seq, "difficulty-too-low").await;
        }
        if let Some(ch) = self.channels.get_mut(&channel_id) {
            ch.vardiff.on_share();
        }
        let amount = 1u64 << k;
        let b = match blinded {
            None => return self.acknowledge(channel_id, seq, amount).await,
            Some(Err(e)) => {
                tracing::debug!(channel_id, error = %e, "malformed blinded share");
                self.acknowledge(channel_id, seq, amount).await?;
                return self
                    .ehash_error(channel_id, seq, m::ERR_INVALID_POINT)
                    .await;
            }
            Some(Ok(b)) => b,
        };
        if let Err(code) = self.ctx.mint.check(&b.keyset_id, k) {
            self.acknowledge(channel_id, seq, amount).await?;
            return self.ehash_error(channel_id, seq, code).await;
        }
        let pending = PendingSign {
            reply: Some(self.replies.clone()),
            channel_id,
            sequence_number: seq,
            amount,
            keyset_id: b.keyset_id,
            blinded: b.blinded,
            replay: false,
            journaled: false,
        };
        let blinded = pending.blinded;
        if !self.ctx.mint.request(pending) {
            // The same B_ is waiting for the mint already: one signature per B_.
            self.acknowledge(channel_id, seq, amount).await?;
            return self
                .ehash_error(channel_id, seq, m::ERR_ALREADY_SIGNED)
                .await;
        }
        // Acknowledged once the claim is durable: the mint's signature, or the journal if the
        // mint does not answer in time (see share_race.rs and mint_client.rs). The answer is
        // read by this connection's task, so it cannot come before this.
        self.unacked.start(
            blinded,
            ShareRef {
                channel_id,
                sequence_number: seq,
                amount,
            },
        );
        self.ctx
            .stats
            .ehash_requested
            .fetch_add(amount, Ordering::Relaxed);
        Ok(())
    }

    /// Sends SubmitSharesSuccess for one share.
    pub(crate) async fn acknowledge(
        &self,
        channel_id: u32,
        sequence_number: u32,
        amount: u64,
    ) -> Result<(), String> {
        self.ctx
            .stats
            .shares_accepted
            .fetch_add(1, Ordering::Relaxed);
        self.ctx
            .stats
            .work_accepted
            .fetch_add(amount, Ordering::Relaxed);
        if let Some(ch) = self.channels.get(&channel_id) {
            ch.counters.on_accepted(amount);
        }
        let ok = SubmitSharesSuccess {
            channel_id,
            last_sequence_number: sequence_number,
            new_submits_accepted_count: 1,
            new_shares_sum: amount,
        };
        self.send_mining(MiningOwned::SubmitSharesSuccess(ok)).await
    }

    fn submit_block(
        &self,
        template_id: u64,
        version: u32,
        ntime: u32,
        nonce: u32,
        coinbase: Vec<u8>,
        hash: [u8; 32],
    ) {
        let mut shown = hash;
        shown.reverse();
        let hash_hex = hex::encode(shown);
        let Ok(coinbase_tx) = binary_sv2::B064KOwned::try_from(coinbase) else {
            tracing::error!(template_id, "coinbase too large to submit");
            return;
        };
        let solution = SubmitSolutionOwned {
            template_id,
            version,
            header_timestamp: ntime,
            header_nonce: nonce,
            coinbase_tx,
        };
        if self.ctx.solutions.try_send(solution).is_err() {
            tracing::error!(
                template_id,
                "template provider queue full; block solution dropped"
            );
            return;
        }
        let facts = self.ctx.work.template_facts(template_id);
        let reward = facts.map(|f| f.value).unwrap_or(0);
        let height = facts.and_then(|f| f.height);
        tracing::info!(template_id, hash = %hash_hex, reward, ?height, "block found");
        self.record_found_block(template_id, hash, height, reward);
    }

    fn custom_block_found(&self, channel_id: u32, job_id: u32, hash: [u8; 32]) {
        let facts = self
            .channels
            .get(&channel_id)
            .and_then(|ch| ch.custom_jobs.get(job_id));
        let Some(facts) = facts else {
            tracing::error!(
                channel_id,
                job_id,
                "block on a custom job no longer remembered; not followed"
            );
            return;
        };
        let mut shown = hash;
        shown.reverse();
        tracing::info!(channel_id, job_id, hash = %hex::encode(shown), reward = facts.reward, height = facts.height, "block found on a custom job");
        self.record_found_block(0, hash, Some(facts.height), facts.reward);
    }

    /// Follows a found block to maturity and lists it on the dashboard.
    fn record_found_block(
        &self,
        template_id: u64,
        hash: [u8; 32],
        height: Option<u32>,
        reward: u64,
    ) {
        let mut shown = hash;
        shown.reverse();
        let hash_hex = hex::encode(shown);
        match height {
            Some(height) => {
                let found = crate::found_blocks::NewBlock {
                    hash,
                    height,
                    reward,
                };
                if self.ctx.found_blocks.try_send(found).is_err() {
                    tracing::error!(height, "found-block queue full; block not followed");
                }
            }
            None => tracing::error!(
                template_id,
                "template has no BIP34 height; block not followed"
            ),
        }
        if let Ok(mut b) = self.ctx.stats.blocks.lock() {
            b.push(crate::stats::FoundBlock {
                template_id,
                hash: hash_hex,
                reward,
            });
        }
    }
}
