//! Who gets what from a found block: the PPLNS-over-epochs split and the finality rule, as pure
//! functions over the ledger's facts.

use ehash_protocol::economics::{net_reward_sat, split_block_msat};
use ehash_protocol::messages::{BLOCK_MATURED, BLOCK_ORPHANED};
use std::collections::BTreeMap;

/// What the split needs to know of a found block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockFacts {
    /// Epoch the block was found in.
    pub epoch: u32,
    /// Coinbase value, sats.
    pub reward: u64,
    /// `BLOCK_PENDING`, `BLOCK_MATURED` or `BLOCK_ORPHANED`.
    pub status: u8,
}

/// The window of epochs a block found in `epoch` pays: `epoch-W+1..=epoch`.
pub fn window(epoch: u32, accrual_epochs: u32) -> std::ops::RangeInclusive<u32> {
    epoch.saturating_sub(accrual_epochs.max(1) - 1)..=epoch
}

/// Millisats block `b` pays each epoch of its window (`issued` per epoch; absent = 0).
pub fn block_split(
    b: &BlockFacts,
    issued: &BTreeMap<u32, u64>,
    accrual_epochs: u32,
    fee_ppm: u32,
) -> Vec<(u32, u64)> {
    let epochs: Vec<u32> = window(b.epoch, accrual_epochs).collect();
    let amounts: Vec<u64> = epochs
        .iter()
        .map(|e| issued.get(e).copied().unwrap_or(0))
        .collect();
    let parts = split_block_msat(net_reward_sat(b.reward, fee_ppm), &amounts);
    epochs.into_iter().zip(parts).collect()
}

/// Credit of epoch `e` from the blocks whose status passes `count`.
pub fn epoch_credit(
    e: u32,
    blocks: &[BlockFacts],
    issued: &BTreeMap<u32, u64>,
    accrual_epochs: u32,
    fee_ppm: u32,
    count: impl Fn(u8) -> bool,
) -> u64 {
    blocks
        .iter()
        .filter(|b| count(b.status) && window(b.epoch, accrual_epochs).contains(&e))
        .flat_map(|b| block_split(b, issued, accrual_epochs, fee_ppm))
        .filter(|(epoch, _)| *epoch == e)
        .fold(0u64, |acc, (_, msat)| acc.saturating_add(msat))
}

/// Epoch `e` can be final when every epoch whose blocks pay it (`e..=e+W-1`) is over — so no
/// block can be found in that range any more and issuance there has stopped — and each of
/// those blocks matured or died.
pub fn finalizable(e: u32, current: u32, blocks: &[BlockFacts], accrual_epochs: u32) -> bool {
    let last = e.saturating_add(accrual_epochs.max(1) - 1);
    current > last
        && blocks
            .iter()
            .filter(|b| (e..=last).contains(&b.epoch))
            .all(|b| b.status == BLOCK_MATURED || b.status == BLOCK_ORPHANED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ehash_protocol::messages::BLOCK_PENDING;

    const W: u32 = 2;

    fn block(epoch: u32, status: u8) -> BlockFacts {
        BlockFacts {
            epoch,
            reward: 5_000_000_000,
            status,
        }
    }

    #[test]
    fn a_block_pays_its_window_in_proportion_to_issuance() {
        let issued = BTreeMap::from([(3, 1000), (4, 3000)]);
        let split = block_split(&block(4, BLOCK_MATURED), &issued, W, 0);
        assert_eq!(split, vec![(3, 1_250_000_000_000), (4, 3_750_000_000_000)]);
        // The first epoch has nobody before it.
        let split = block_split(&block(0, BLOCK_MATURED), &BTreeMap::from([(0, 5)]), W, 0);
        assert_eq!(split, vec![(0, 5_000_000_000_000)]);
    }

    #[test]
    fn only_matured_blocks_count_and_orphans_pay_nothing() {
        let issued = BTreeMap::from([(3, 1000), (4, 1000), (5, 1000)]);
        let blocks = [
            block(3, BLOCK_MATURED),
            block(4, BLOCK_ORPHANED),
            block(4, BLOCK_PENDING),
        ];
        let matured = |s| s == BLOCK_MATURED;
        // Epoch 2 issued nothing, so epoch 3 takes its own block whole.
        assert_eq!(
            epoch_credit(3, &blocks, &issued, W, 0, matured),
            5_000_000_000_000
        );
        assert_eq!(epoch_credit(4, &blocks, &issued, W, 0, matured), 0);
        let expected = |s| s != BLOCK_ORPHANED;
        assert_eq!(
            epoch_credit(4, &blocks, &issued, W, 0, expected),
            2_500_000_000_000
        );
    }

    #[test]
    fn fee_is_taken_before_the_split() {
        let issued = BTreeMap::from([(1, 7)]);
        let c = epoch_credit(1, &[block(1, BLOCK_MATURED)], &issued, W, 20_000, |_| true);
        assert_eq!(c, 4_900_000_000_000);
    }

    #[test]
    fn finality_waits_for_the_window_and_maturity() {
        let blocks = [block(5, BLOCK_MATURED), block(6, BLOCK_PENDING)];
        assert!(!finalizable(5, 6, &blocks, W), "epoch 6 still open");
        assert!(
            !finalizable(5, 7, &blocks, W),
            "a block of epoch 6 is pending"
        );
        let settled = [block(5, BLOCK_MATURED), block(6, BLOCK_ORPHANED)];
        assert!(finalizable(5, 7, &settled, W));
        assert!(!finalizable(6, 7, &settled, W));
    }
}
