//! Proof of liabilities: per epoch, what was issued, what is still out, what it earned, and the
//! blocks that earned it — enough for anyone to check that the sats owed never exceed the
//! matured rewards.

use super::{credits, EpochBook};
use crate::MintError;
use cdk::nuts::Id;
use ehash_protocol::economics::{net_reward_sat, MSAT_PER_SAT};
use ehash_protocol::messages as m;
use serde::Serialize;
use std::collections::HashMap;

/// A block's contribution to one epoch.
#[derive(Debug, Clone, Serialize)]
pub struct BlockCredit {
    /// Block hash (display order hex).
    pub hash: String,
    /// Height.
    pub height: u32,
    /// Epoch it was found in.
    pub found_in_epoch: u32,
    /// Coinbase value, sats.
    pub reward_sat: u64,
    /// `pending`, `matured` or `orphaned`.
    pub status: &'static str,
    /// Confirmations last reported.
    pub confirmations: u32,
    /// Millisats it pays this epoch (expected, while pending).
    pub credit_msat: u64,
}

/// One epoch's line.
#[derive(Debug, Clone, Serialize)]
pub struct EpochReport {
    /// Epoch number.
    pub epoch: u32,
    /// Keyset id.
    pub keyset_id: Option<String>,
    /// Height of its first block.
    pub start_height: u32,
    /// `open`, `closed` or `final`.
    pub status: &'static str,
    /// Ehash issued for shares.
    pub issued: u64,
    /// Ehash still unspent.
    pub outstanding: u64,
    /// Ehash turned into sats (issued − outstanding).
    pub redeemed: u64,
    /// Fixed credit, millisats (final epochs).
    pub credit_msat: Option<u64>,
    /// Credit from matured blocks so far.
    pub matured_credit_msat: u64,
    /// Credit if every pending block matures.
    pub expected_credit_msat: u64,
    /// Rate as `credit_msat / issued` millisats per HASH (final epochs; for display — payouts
    /// use the exact fraction).
    pub rate_msat_per_hash: Option<f64>,
    /// Millisats owed to the outstanding ehash at the rate (final epochs).
    pub owed_msat: Option<u64>,
    /// Blocks that pay it.
    pub blocks: Vec<BlockCredit>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Liabilities {
    /// Network blocks per epoch.
    pub epoch_blocks: u32,
    /// Epochs a block pays.
    pub accrual_epochs: u32,
    /// Pool fee, ppm.
    pub pool_fee_ppm: u32,
    /// Current epoch.
    pub current_epoch: u32,
    /// Height being mined, as last reported.
    pub tip_height: Option<u32>,
    /// Epochs, newest first.
    pub epochs: Vec<EpochReport>,
    /// Blocks found.
    pub blocks_found: u64,
    /// Sum of rewards of matured blocks, sats.
    pub matured_rewards_sat: u64,
    /// The same after the pool fee, sats.
    pub matured_net_sat: u64,
    /// Sum of fixed credits of final epochs, millisats.
    pub final_credit_msat: u64,
    /// Epochs that are final.
    pub epochs_final: u64,
    /// Millisats owed to all outstanding ehash of final epochs.
    pub owed_msat: u64,
    /// `final_credit_msat <= matured_net_sat * 1000`.
    pub solvent: bool,
}

fn status_name(s: u8) -> &'static str {
    match s {
        m::BLOCK_MATURED => "matured",
        m::BLOCK_ORPHANED => "orphaned",
        _ => "pending",
    }
}

fn display_hash(mut h: [u8; 32]) -> String {
    h.reverse();
    hex::encode(h)
}

impl EpochBook {
    /// Builds the report (CDK's per-keyset totals give what is still outstanding).
    pub async fn liabilities(&self) -> Result<Liabilities, MintError> {
        let issued_by_keyset = self.mint.total_issued().await?;
        let redeemed_by_keyset = self.mint.total_redeemed().await?;
        let circulating = |k: &Option<String>| -> u64 {
            let Some(id) = k.as_deref().and_then(|k| k.parse::<Id>().ok()) else {
                return 0;
            };
            let get = |m: &HashMap<Id, cdk::Amount>| m.get(&id).map(|a| u64::from(*a)).unwrap_or(0);
            get(&issued_by_keyset).saturating_sub(get(&redeemed_by_keyset))
        };
        let cfg = self.config;
        let s = self.lock();
        let facts = s.block_facts();
        let issued = s.issued();
        let mut epochs = Vec::with_capacity(s.epochs.len());
        let (mut final_credit, mut owed, mut epochs_final) = (0u64, 0u64, 0u64);
        for row in s.epochs.values().rev() {
            let e = row.epoch;
            let mut blocks = Vec::new();
            for b in s
                .blocks
                .values()
                .filter(|b| credits::window(b.epoch, cfg.accrual_epochs).contains(&e))
            {
                let fact = credits::BlockFacts {
                    epoch: b.epoch,
                    reward: b.reward,
                    status: b.status,
                };
                let credit =
                    credits::block_split(&fact, &issued, cfg.accrual_epochs, cfg.pool_fee_ppm)
                        .into_iter()
                        .find(|(x, _)| *x == e)
                        .map(|(_, c)| c)
                        .unwrap_or(0);
                blocks.push(BlockCredit {
                    hash: display_hash(b.hash),
                    height: b.height,
                    found_in_epoch: b.epoch,
                    reward_sat: b.reward,
                    status: status_name(b.status),
                    confirmations: b.confirmations,
                    credit_msat: if b.status == m::BLOCK_ORPHANED {
                        0
                    } else {
                        credit
                    },
                });
            }
            let credit_with = |f: &dyn Fn(u8) -> bool| {
                credits::epoch_credit(e, &facts, &issued, cfg.accrual_epochs, cfg.pool_fee_ppm, f)
            };
            let matured = credit_with(&|st| st == m::BLOCK_MATURED);
            let expected = credit_with(&|st| st != m::BLOCK_ORPHANED);
            let outstanding = circulating(&row.keyset_id);
            let status = if row.finalized_at.is_some() {
                "final"
            } else if e == s.current() {
                "open"
            } else {
                "closed"
            };
            let owed_here = row
                .final_credit_msat
                .map(|c| ehash_protocol::economics::redeem_msat(outstanding, c, row.issued));
            if let Some(c) = row.final_credit_msat {
                final_credit = final_credit.saturating_add(c);
                epochs_final += 1;
            }
            owed = owed.saturating_add(owed_here.unwrap_or(0));
            epochs.push(EpochReport {
                epoch: e,
                keyset_id: row.keyset_id.clone(),
                start_height: row.start_height,
                status,
                issued: row.issued,
                outstanding,
                redeemed: row.issued.saturating_sub(outstanding),
                credit_msat: row.final_credit_msat,
                matured_credit_msat: matured,
                expected_credit_msat: expected,
                rate_msat_per_hash: row
                    .final_credit_msat
                    .filter(|_| row.issued > 0)
                    .map(|c| c as f64 / row.issued as f64),
                owed_msat: owed_here,
                blocks,
            });
        }
        let matured: Vec<_> = s
            .blocks
            .values()
            .filter(|b| b.status == m::BLOCK_MATURED)
            .collect();
        let matured_rewards: u64 = matured.iter().map(|b| b.reward).sum();
        let matured_net: u64 = matured
            .iter()
            .map(|b| net_reward_sat(b.reward, cfg.pool_fee_ppm))
            .sum();
        Ok(Liabilities {
            epoch_blocks: cfg.epoch_blocks,
            accrual_epochs: cfg.accrual_epochs,
            pool_fee_ppm: cfg.pool_fee_ppm,
            current_epoch: s.current(),
            tip_height: s.tip.map(|t| t.height),
            epochs,
            blocks_found: s.blocks.len() as u64,
            matured_rewards_sat: matured_rewards,
            matured_net_sat: matured_net,
            final_credit_msat: final_credit,
            epochs_final,
            owed_msat: owed,
            solvent: u128::from(final_credit) <= u128::from(matured_net) * u128::from(MSAT_PER_SAT),
        })
    }
}
