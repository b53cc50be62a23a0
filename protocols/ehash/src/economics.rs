//! The arithmetic of ehash payouts, shared by the mint (which fixes rates) and wallets (which
//! predict what a redemption pays). Integer only; every rounding favours the pool.
//!
//! A block found in epoch `j` pays its reward minus the pool fee to epochs `j-W+1..=j` in
//! proportion to the ehash each issued for shares. An epoch's *credit* is the sum, in millisats,
//! of its shares of matured blocks; its rate is `credit / issued` millisats per HASH, kept as
//! that exact fraction. Redeeming `a` HASH pays `floor(a * credit / issued)` millisats, so the
//! value of a redemption depends only on the total amount, never on how it is split into proofs.
//!
//! Millisat amounts fit in `u64` (all bitcoin is 2.1e18 msat < 2^64), so every product of two of
//! them fits in `u128`.

/// Millisats per sat.
pub const MSAT_PER_SAT: u64 = 1000;
/// Parts per million.
pub const PPM: u64 = 1_000_000;

/// `floor(a * b / d)`; 0 when `d` is 0.
fn mul_div_floor(a: u64, b: u64, d: u64) -> u64 {
    if d == 0 {
        return 0;
    }
    let q = u128::from(a) * u128::from(b) / u128::from(d);
    u64::try_from(q).unwrap_or(u64::MAX)
}

/// Reward left for miners after the pool fee (the fee is rounded up).
pub fn net_reward_sat(reward_sat: u64, fee_ppm: u32) -> u64 {
    let fee = (u128::from(reward_sat) * u128::from(fee_ppm)).div_ceil(u128::from(PPM));
    reward_sat.saturating_sub(u64::try_from(fee).unwrap_or(u64::MAX))
}

/// Splits `net_sat` across epochs in proportion to `issued` (HASH per epoch of the window).
/// Each part is floored in millisats, so the parts never sum to more than `net_sat * 1000`.
/// A window that issued nothing credits nobody.
pub fn split_block_msat(net_sat: u64, issued: &[u64]) -> Vec<u64> {
    let total: u128 = issued.iter().map(|&i| u128::from(i)).sum();
    let net_msat = net_sat.saturating_mul(MSAT_PER_SAT);
    match u64::try_from(total) {
        Ok(0) => vec![0; issued.len()],
        Ok(total) => issued
            .iter()
            .map(|&i| mul_div_floor(net_msat, i, total))
            .collect(),
        // More than 2^64 HASH in one window: scale everything down by the same factor.
        Err(_) => {
            let shift = 128 - total.leading_zeros() - 64;
            let scaled: Vec<u64> = issued.iter().map(|&i| i >> shift).collect();
            split_block_msat(net_sat, &scaled)
        }
    }
}

/// Millisats paid for `amount` HASH of an epoch whose credit is `credit_msat` over `issued` HASH.
pub fn redeem_msat(amount: u64, credit_msat: u64, issued: u64) -> u64 {
    mul_div_floor(amount, credit_msat, issued)
}

/// Whole sats paid for `amount` HASH (the sub-sat rest stays with the pool).
pub fn redeem_sat(amount: u64, credit_msat: u64, issued: u64) -> u64 {
    redeem_msat(amount, credit_msat, issued) / MSAT_PER_SAT
}

/// Expected millisats per HASH for work done now: the net reward times the chance that one
/// HASH of work (`2^unit_log2` hashes) finds a block at `expected_hashes_per_block`.
pub fn expected_msat_per_hash(net_sat: u64, unit_log2: u8, expected_hashes_per_block: f64) -> f64 {
    if expected_hashes_per_block <= 0.0 {
        return 0.0;
    }
    (net_sat as f64) * (MSAT_PER_SAT as f64) * 2f64.powi(i32::from(unit_log2))
        / expected_hashes_per_block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_rounds_up() {
        assert_eq!(net_reward_sat(5_000_000_000, 20_000), 4_900_000_000);
        assert_eq!(net_reward_sat(1, 1), 0);
        assert_eq!(net_reward_sat(999_999, 1), 999_998);
        assert_eq!(net_reward_sat(100, 0), 100);
    }

    #[test]
    fn split_never_exceeds_the_block_and_loses_under_one_msat_per_epoch() {
        let issued = [3u64, 7, 11];
        let parts = split_block_msat(10, &issued);
        let sum: u64 = parts.iter().sum();
        assert!(sum <= 10_000);
        assert!(10_000 - sum < issued.len() as u64);
        assert_eq!(split_block_msat(10, &[0, 0]), vec![0, 0]);
        let huge = split_block_msat(1, &[u64::MAX, u64::MAX]);
        assert_eq!(huge, vec![500, 500]);
    }

    #[test]
    fn redemption_value_does_not_depend_on_the_split() {
        let (credit, issued) = (4_900_000_000_000u64, 4480u64);
        let whole = redeem_msat(4480, credit, issued);
        assert_eq!(whole, credit);
        // Summing per-proof values can only lose, by under one msat per proof.
        let parts: u64 = [2048u64, 1024, 1024, 256, 128]
            .iter()
            .map(|&a| redeem_msat(a, credit, issued))
            .sum();
        assert!(parts <= whole && whole - parts < 5);
        assert_eq!(redeem_sat(128, credit, issued), 140_000_000);
    }

    #[test]
    fn expected_value_scales_with_work() {
        let v = expected_msat_per_hash(1000, 10, 1024.0 * 1000.0);
        assert!((v - 1000.0).abs() < 1e-9);
        assert_eq!(expected_msat_per_hash(1000, 10, 0.0), 0.0);
    }
}
