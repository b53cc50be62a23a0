//! A downstream channel (standard or extended, from `channels_sv2`) with its ehash exponent.

use ehash_protocol::vardiff::PowerOfTwoVardiff;
use stratum_core::bitcoin::{Amount, ScriptBuf, TxOut};
use stratum_core::channels_sv2::server::extended::ExtendedChannel;
use stratum_core::channels_sv2::server::share_accounting::{
    ShareValidationError, ShareValidationResult,
};
use stratum_core::channels_sv2::server::standard::StandardChannel;
use stratum_core::mining_sv2::{
    NewExtendedMiningJobOwned, NewMiningJobOwned, SetNewPrevHashOwned as MiningPrevHash,
    SubmitSharesExtendedOwned, SubmitSharesStandard,
};
use stratum_core::parsers_sv2::MiningOwned;
use stratum_core::template_distribution_sv2::{NewTemplateOwned, SetNewPrevHashOwned};

/// The channel kinds the pool serves.
pub enum ChannelKind {
    /// Extended channel (proxies, translators).
    Extended(Box<ExtendedChannel>),
    /// Standard channel (header-only devices).
    Standard(Box<StandardChannel>),
}

/// A channel plus pool-side state.
pub struct PoolChannel {
    /// The SRI channel.
    pub kind: ChannelKind,
    /// Current amount exponent: each accepted share earns 2^k HASH.
    pub k: u8,
    /// Vardiff.
    pub vardiff: PowerOfTwoVardiff,
    /// Sequence number of the last work event applied to this channel.
    pub work_seq: u64,
    /// Counters the dashboard reads.
    pub counters: std::sync::Arc<crate::board::ChannelCounters>,
    /// Recent custom jobs (job declaration), for the blocks their shares find.
    pub custom_jobs: crate::custom_jobs::CustomJobBook,
}

/// A share of either kind.
pub enum Share {
    /// From an extended channel.
    Extended(SubmitSharesExtendedOwned),
    /// From a standard channel.
    Standard(SubmitSharesStandard),
}

impl Share {
    /// Channel id.
    pub fn channel_id(&self) -> u32 {
        match self {
            Share::Extended(s) => s.channel_id,
            Share::Standard(s) => s.channel_id,
        }
    }
    /// Sequence number.
    pub fn sequence_number(&self) -> u32 {
        match self {
            Share::Extended(s) => s.sequence_number,
            Share::Standard(s) => s.sequence_number,
        }
    }
    /// Job id.
    pub fn job_id(&self) -> u32 {
        match self {
            Share::Extended(s) => s.job_id,
            Share::Standard(s) => s.job_id,
        }
    }
    /// (version, ntime, nonce).
    pub fn header_fields(&self) -> (u32, u32, u32) {
        match self {
            Share::Extended(s) => (s.version, s.ntime, s.nonce),
            Share::Standard(s) => (s.version, s.ntime, s.nonce),
        }
    }
}

/// The coinbase outputs paying the pool `value` (a template's whole coinbase value).
pub fn reward_outputs(value: u64, payout: &ScriptBuf) -> Vec<TxOut> {
    vec![TxOut {
        value: Amount::from_sat(value),
        script_pubkey: payout.clone(),
    }]
}

impl PoolChannel {
    /// Channel id.
    pub fn id(&self) -> u32 {
        match &self.kind {
            ChannelKind::Extended(c) => c.get_channel_id(),
            ChannelKind::Standard(c) => c.get_channel_id(),
        }
    }

    /// Hash of the block the channel's current jobs build on.
    pub fn parent_hash(&self) -> Option<[u8; 32]> {
        let tip = match &self.kind {
            ChannelKind::Extended(c) => c.get_chain_tip(),
            ChannelKind::Standard(c) => c.get_chain_tip(),
        };
        tip.map(|t| t.prev_hash().to_array())
    }

    /// Current share target (little-endian).
    pub fn target_le(&self) -> [u8; 32] {
        match &self.kind {
            ChannelKind::Extended(c) => c.get_target().to_le_bytes(),
            ChannelKind::Standard(c) => c.get_target().to_le_bytes(),
        }
    }

    /// Sets the target of the ladder step `k`.
    pub fn set_target(
        &mut self,
        k: u8,
        target: stratum_core::bitcoin::Target,
    ) -> Result<(), String> {
        match &mut self.kind {
            ChannelKind::Extended(c) => c.set_target(target).map_err(|e| format!("{e:?}"))?,
            ChannelKind::Standard(c) => c.set_target(target).map_err(|e| format!("{e:?}"))?,
        }
        self.k = k;
        self.counters.set_k(k);
        Ok(())
    }

    /// Feeds a template; returns the job message to send, if any.
    pub fn on_template(
        &mut self,
        t: &NewTemplateOwned,
        payout: &ScriptBuf,
    ) -> Result<Option<MiningOwned>, String> {
        let outs = reward_outputs(t.coinbase_tx_value_remaining, payout);
        match &mut self.kind {
            ChannelKind::Extended(c) => {
                c.on_new_template(t.clone(), outs)
                    .map_err(|e| format!("{e:?}"))?;
                let job = if t.future_template {
                    c.get_future_job_id_from_template_id(t.template_id)
                        .and_then(|id| c.get_future_job(id))
                } else {
                    c.get_active_job()
                };
                Ok(job.map(|j| {
                    let msg: NewExtendedMiningJobOwned = j.get_job_message().clone();
                    MiningOwned::NewExtendedMiningJob(msg)
                }))
            }
            ChannelKind::Standard(c) => {
                c.on_new_template(t.clone(), outs)
                    .map_err(|e| format!("{e:?}"))?;
                let job = if t.future_template {
                    c.get_future_job_id_from_template_id(t.template_id)
                        .and_then(|id| c.get_future_job(id))
                } else {
                    c.get_active_job()
                };
                Ok(job.map(|j| {
                    let msg: NewMiningJobOwned = j.get_job_message().clone();
                    MiningOwned::NewMiningJob(msg)
                }))
            }
        }
    }

    /// Feeds a new prev hash; returns the mining `SetNewPrevHash` to send.
    pub fn on_prev_hash(&mut self, p: &SetNewPrevHashOwned) -> Result<Option<MiningOwned>, String> {
        let channel_id = self.id();
        let job_id = match &mut self.kind {
            ChannelKind::Extended(c) => {
                c.on_set_new_prev_hash(p.clone())
                    .map_err(|e| format!("{e:?}"))?;
                c.get_active_job().map(|j| j.get_job_id())
            }
            ChannelKind::Standard(c) => {
                c.on_set_new_prev_hash(p.clone())
                    .map_err(|e| format!("{e:?}"))?;
                c.get_active_job().map(|j| j.get_job_id())
            }
        };
        Ok(job_id.map(|job_id| {
            MiningOwned::SetNewPrevHash(MiningPrevHash {
                channel_id,
                job_id,
                prev_hash: p.prev_hash.clone(),
                min_ntime: p.header_timestamp,
                nbits: p.n_bits,
            })
        }))
    }

    /// Validates a share with `channels_sv2`.
    pub fn validate(
        &mut self,
        share: Share,
    ) -> Result<ShareValidationResult, ShareValidationError> {
        match (&mut self.kind, share) {
            (ChannelKind::Extended(c), Share::Extended(s)) => c.validate_share(s),
            (ChannelKind::Standard(c), Share::Standard(s)) => c.validate_share(s),
            _ => Err(ShareValidationError::Invalid("invalid-channel-id")),
        }
    }
}
