//! Custom jobs (`SetCustomMiningJob`) from job declarator clients: checked against the token
//! a trusted jd-server signed for the declared job, against the current tip, and for paying
//! the pool; then set on the channel, where their shares earn ehash like any other.

use crate::channel::ChannelKind;
use crate::downstream::{str255, Connection};
use hashpool_jd_server::coinbase::{bip34_height, pool_reward};
use hashpool_jd_server::token::unix_now;
use hashpool_jd_server::CustomJobFields;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use stratum_core::bitcoin::consensus::deserialize;
use stratum_core::bitcoin::TxOut;
use stratum_core::mining_sv2::{
    SetCustomMiningJobErrorOwned, SetCustomMiningJobOwned, SetCustomMiningJobSuccess,
    ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_CHANNEL_ID as INVALID_CHANNEL_ID,
    ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_COINBASE_PREFIX as INVALID_COINBASE_PREFIX,
    ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_COINBASE_TX_OUTPUTS as INVALID_OUTPUTS,
    ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_MINING_JOB_TOKEN as INVALID_TOKEN,
    ERROR_CODE_SET_CUSTOM_MINING_JOB_INVALID_NBITS as INVALID_NBITS,
    ERROR_CODE_SET_CUSTOM_MINING_JOB_JD_NOT_SUPPORTED as JD_NOT_SUPPORTED,
    ERROR_CODE_SET_CUSTOM_MINING_JOB_STALE_CHAIN_TIP as STALE_CHAIN_TIP,
};
use stratum_core::parsers_sv2::MiningOwned;

/// Custom jobs remembered per channel (for the blocks their shares may find).
const KEEP_CUSTOM_JOBS: usize = 64;

/// What the pool needs to record a block found on a custom job.
#[derive(Debug, Clone, Copy)]
pub struct CustomJobFacts {
    /// Job id on the channel.
    pub job_id: u32,
    /// BIP34 height of the block.
    pub height: u32,
    /// What the coinbase pays the pool.
    pub reward: u64,
}

/// The recent custom jobs of a channel.
#[derive(Debug, Default)]
pub struct CustomJobBook(VecDeque<CustomJobFacts>);

impl CustomJobBook {
    /// Remembers a job, forgetting the oldest beyond the limit.
    pub fn add(&mut self, facts: CustomJobFacts) {
        self.0.push_back(facts);
        while self.0.len() > KEEP_CUSTOM_JOBS {
            self.0.pop_front();
        }
    }

    /// Facts of job `job_id`, if it is a custom job still remembered.
    pub fn get(&self, job_id: u32) -> Option<CustomJobFacts> {
        self.0.iter().rev().find(|f| f.job_id == job_id).copied()
    }
}

/// A refusal with its SV2 code and the reason logged.
struct Refusal(&'static str, String);

impl Connection {
    pub(crate) async fn on_custom_job(&mut self, m: SetCustomMiningJobOwned) -> Result<(), String> {
        let (channel_id, request_id) = (m.channel_id, m.request_id);
        match self.accept_custom_job(m) {
            Ok(facts) => {
                self.ctx.stats.custom_jobs.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    channel_id,
                    job_id = facts.job_id,
                    height = facts.height,
                    reward = facts.reward,
                    "custom job set"
                );
                let ok = SetCustomMiningJobSuccess {
                    channel_id,
                    request_id,
                    job_id: facts.job_id,
                };
                self.send_mining(MiningOwned::SetCustomMiningJobSuccess(ok))
                    .await
            }
            Err(Refusal(code, why)) => {
                tracing::info!(channel_id, request_id, code, reason = %why, "custom job refused");
                if let Ok(mut by) = self.ctx.stats.custom_jobs_refused.lock() {
                    *by.entry(code.to_string()).or_default() += 1;
                }
                let err = SetCustomMiningJobErrorOwned {
                    channel_id,
                    request_id,
                    error_code: str255(code)?,
                };
                self.send_mining(MiningOwned::SetCustomMiningJobError(err))
                    .await
            }
        }
    }

    fn accept_custom_job(&mut self, m: SetCustomMiningJobOwned) -> Result<CustomJobFacts, Refusal> {
        if !self.work_selection {
            return Err(Refusal(
                JD_NOT_SUPPORTED,
                "work selection was not negotiated".into(),
            ));
        }
        let Some(ch) = self.channels.get_mut(&m.channel_id) else {
            return Err(Refusal(
                INVALID_CHANNEL_ID,
                "not a channel of this connection".into(),
            ));
        };
        let ChannelKind::Extended(ext) = &mut ch.kind else {
            return Err(Refusal(
                INVALID_CHANNEL_ID,
                "custom jobs need an extended channel".into(),
            ));
        };
        let (tip, tip_nbits) = self
            .ctx
            .work
            .tip()
            .ok_or_else(|| Refusal(STALE_CHAIN_TIP, "the pool has no chain tip yet".into()))?;
        let prev_hash = m.prev_hash.to_array();
        if prev_hash != tip {
            return Err(Refusal(
                STALE_CHAIN_TIP,
                "the job is not on the pool's tip".into(),
            ));
        }
        if m.nbits != tip_nbits {
            return Err(Refusal(
                INVALID_NBITS,
                format!("nbits {:#x}, the tip's is {tip_nbits:#x}", m.nbits),
            ));
        }
        let outputs: Vec<TxOut> = deserialize(m.coinbase_tx_outputs.as_bytes())
            .map_err(|e| Refusal(INVALID_OUTPUTS, format!("outputs do not parse: {e}")))?;
        let reward = pool_reward(&outputs, &self.ctx.payout)
            .map_err(|e| Refusal(INVALID_OUTPUTS, e.to_string()))?;
        if reward == 0 {
            return Err(Refusal(
                INVALID_OUTPUTS,
                "the coinbase pays the pool nothing".into(),
            ));
        }
        let height = bip34_height(m.coinbase_prefix.as_bytes())
            .ok_or_else(|| Refusal(INVALID_COINBASE_PREFIX, "no BIP34 height".into()))?;
        let path: Vec<[u8; 32]> = m
            .merkle_path
            .as_slice()
            .iter()
            .map(|h| h.to_array())
            .collect();
        // `deserialize` took the output bytes whole (it refuses trailing data): they are the
        // consensus serialization the jd-server signed over.
        let fields = CustomJobFields {
            version: m.version,
            prev_hash,
            coinbase_tx_version: m.coinbase_tx_version,
            script_sig_prefix: m.coinbase_prefix.as_bytes(),
            sequence: m.coinbase_tx_input_n_sequence,
            outputs: m.coinbase_tx_outputs.as_bytes(),
            locktime: m.coinbase_tx_locktime,
            merkle_path: &path,
        };
        self.ctx
            .jd_tokens
            .verify(m.token.as_bytes(), &fields, unix_now())
            .map_err(|e| Refusal(INVALID_TOKEN, e.to_string()))?;
        let job_id = ext
            .on_set_custom_mining_job(m)
            .map_err(|e| Refusal(INVALID_COINBASE_PREFIX, format!("{e:?}")))?;
        let facts = CustomJobFacts {
            job_id,
            height,
            reward,
        };
        ch.custom_jobs.add(facts);
        Ok(facts)
    }
}
