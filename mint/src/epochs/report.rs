//! Proof of liabilities: per epoch, what was issued, what is still out, what it earned, and the
//! blocks that earned it — enough for anyone to check that the sats owed never exceed the
//! matured rewards.

use super::{credits, EpochBook};
use crate::MintError;
use cdk::nuts::Id;
use ehash_protocol::economics::{net_reward_sat, MSAT_PER_SAT};
use ehash_protocol::messages as m;
use std::collections::HashMap;

pub use ehash_api::{BlockCredit, EpochReport, Liabilities};

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
                    status: status_name(b.status).to_string(),
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
                status: status.to_string(),
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
