//! Power-of-two share difficulty and the ehash amount it earns.
//!
//! A share of "amount 2^k" proves, in expectation, `2^(unit_log2 + k)` hashes: its target is
//! `2^(256 - unit_log2 - k) - 1`. Keeping every channel target on this ladder makes one accepted
//! share worth exactly one ehash proof of a power-of-two amount, fixed by the target, never by
//! the luck of the hash.

use stratum_core::bitcoin::Target;

/// Highest amount exponent we ever sign (CDK stores amounts as i64: 2^63 does not round-trip).
pub const MAX_AMOUNT_LOG2: u8 = 62;

/// Errors of the difficulty ladder.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// The unit difficulty leaves no room for a target.
    #[error("share unit 2^{0} hashes is out of range (must be 1..=200)")]
    UnitOutOfRange(u8),
    /// The target is easier than one unit share.
    #[error("target is easier than the unit share target")]
    EasierThanUnit,
}

/// The share unit: one HASH of ehash is earned by `2^unit_log2` expected hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareUnit {
    unit_log2: u8,
}

impl ShareUnit {
    /// A unit of `2^unit_log2` expected hashes per HASH (mainnet-like pools use 32 = difficulty 1).
    pub fn new(unit_log2: u8) -> Result<Self, TargetError> {
        if unit_log2 == 0 || unit_log2 > 200 {
            return Err(TargetError::UnitOutOfRange(unit_log2));
        }
        Ok(Self { unit_log2 })
    }

    /// log2 of the expected hashes per HASH.
    pub fn unit_log2(&self) -> u8 {
        self.unit_log2
    }

    /// Target (little-endian U256) of a share worth `2^k` HASH.
    pub fn target_le(&self, k: u8) -> [u8; 32] {
        let k = k.min(MAX_AMOUNT_LOG2);
        let ones = 256u32.saturating_sub(u32::from(self.unit_log2) + u32::from(k));
        low_bits_le(ones)
    }

    /// Target of a share worth `2^k` HASH.
    pub fn target(&self, k: u8) -> Target {
        Target::from_le_bytes(self.target_le(k))
    }

    /// Amount exponent earned by a share meeting `target_le`, rounded down so a target off the
    /// ladder never overpays.
    pub fn exponent_for_target_le(&self, target_le: &[u8; 32]) -> Result<u8, TargetError> {
        let bits = bit_length_le(target_le);
        let work_log2 = 256u32 - bits; // expected hashes >= 2^work_log2
        let k = work_log2
            .checked_sub(u32::from(self.unit_log2))
            .ok_or(TargetError::EasierThanUnit)?;
        Ok(k.min(u32::from(MAX_AMOUNT_LOG2)) as u8)
    }

    /// Amount exponent that makes `hashrate` (H/s) produce about `shares_per_minute` shares.
    pub fn exponent_for_hashrate(&self, hashrate: f64, shares_per_minute: f64) -> u8 {
        if !(hashrate.is_finite() && hashrate > 0.0 && shares_per_minute > 0.0) {
            return 0;
        }
        let hashes_per_share = hashrate * 60.0 / shares_per_minute;
        let k = hashes_per_share.log2().floor() - f64::from(self.unit_log2);
        k.clamp(0.0, f64::from(MAX_AMOUNT_LOG2)) as u8
    }

    /// Expected hashes behind one share worth `2^k` HASH.
    pub fn hashes_per_share(&self, k: u8) -> f64 {
        2f64.powi(i32::from(self.unit_log2) + i32::from(k))
    }
}

/// log2 of the expected hashes behind a target, rounded down: the highest `w` whose ladder
/// target `2^(256-w) - 1` is at least as easy as `target_le`.
pub fn work_log2(target_le: &[u8; 32]) -> u32 {
    256 - bit_length_le(target_le)
}

/// The ladder target `2^(256 - work_log2) - 1` (little-endian), proving `2^work_log2` hashes.
pub fn ladder_target_le(work_log2: u32) -> [u8; 32] {
    low_bits_le(256u32.saturating_sub(work_log2))
}

/// A little-endian U256 with the low `ones` bits set.
fn low_bits_le(ones: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    let ones = ones.min(256) as usize;
    for (i, byte) in out.iter_mut().enumerate() {
        let lo = i * 8;
        if ones >= lo + 8 {
            *byte = 0xff;
        } else if ones > lo {
            *byte = (1u16 << (ones - lo)) as u8 - 1;
        }
    }
    out
}

/// Number of significant bits of a little-endian U256.
fn bit_length_le(v: &[u8; 32]) -> u32 {
    for i in (0..32).rev() {
        if v[i] != 0 {
            return i as u32 * 8 + (8 - v[i].leading_zeros());
        }
    }
    0
}

/// True if a hash (internal byte order, i.e. a little-endian number) is at or below a
/// little-endian target.
pub fn meets_target(hash_le: &[u8; 32], target_le: &[u8; 32]) -> bool {
    for i in (0..32).rev() {
        if hash_le[i] != target_le[i] {
            return hash_le[i] < target_le[i];
        }
    }
    true
}

/// Expected hashes to find a hash meeting `target_le` (2^256 / (target + 1)), as a float.
pub fn expected_hashes(target_le: &[u8; 32]) -> f64 {
    let mut t = 0f64;
    for i in (0..32).rev() {
        t = t * 256.0 + f64::from(target_le[i]);
    }
    2f64.powi(256) / (t + 1.0)
}

/// Little-endian U256 target for which one hash in `hashes` meets it on average.
pub fn target_for_expected_hashes(hashes: f64) -> [u8; 32] {
    let hashes = if hashes.is_finite() && hashes >= 1.0 {
        hashes
    } else {
        1.0
    };
    // target = 2^256 / hashes, built from a 64-bit mantissa to stay exact enough for pacing.
    let e = hashes.log2().floor() as i32; // hashes = m * 2^e, m in [1, 2)
    let m = hashes / 2f64.powi(e);
    let mantissa = ((2f64.powi(63) / m) as u128).min(u64::MAX as u128) as u64; // ~2^63 / m
                                                                               // target = mantissa * 2^(256 - e - 63)
    let shift = 256 - e - 63;
    let mut out = [0u8; 32];
    if shift < 0 {
        let v = mantissa >> (-shift).min(63);
        out[..8].copy_from_slice(&v.to_le_bytes());
        return out;
    }
    let shift = shift as usize;
    let bytes = mantissa.to_le_bytes();
    for (i, b) in bytes.iter().enumerate() {
        // place each bit group; byte-aligned part of the shift plus a bit remainder
        let bit_pos = i * 8 + shift;
        let (idx, off) = (bit_pos / 8, bit_pos % 8);
        let wide = u16::from(*b) << off;
        if idx < 32 {
            out[idx] |= wide as u8;
        }
        if idx + 1 < 32 {
            out[idx + 1] |= (wide >> 8) as u8;
        }
    }
    if shift + 64 > 256 {
        return [0xff; 32];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_round_trips() {
        let unit = ShareUnit::new(32).unwrap();
        for k in [0u8, 1, 5, 20, 62] {
            assert_eq!(unit.exponent_for_target_le(&unit.target_le(k)).unwrap(), k);
        }
        // difficulty-1-like unit: target has 224 low bits set
        let t = unit.target_le(0);
        assert_eq!(t[27], 0xff);
        assert_eq!(t[28], 0x00);
    }

    #[test]
    fn off_ladder_target_rounds_down() {
        let unit = ShareUnit::new(10).unwrap();
        let mut t = unit.target_le(3);
        t[0] = 0; // slightly harder than 2^3's target, still credited as 2^3
        assert_eq!(unit.exponent_for_target_le(&t).unwrap(), 3);
        let easier = low_bits_le(256 - 9);
        assert_eq!(
            unit.exponent_for_target_le(&easier),
            Err(TargetError::EasierThanUnit)
        );
    }

    #[test]
    fn work_ladder_round_trips_and_rounds_down() {
        for w in [0u32, 1, 31, 32, 200, 256] {
            assert_eq!(work_log2(&ladder_target_le(w)), w);
        }
        let mut t = ladder_target_le(40);
        t[0] = 0x7f;
        assert_eq!(work_log2(&t), 40);
    }

    #[test]
    fn expected_hashes_matches_ladder() {
        let unit = ShareUnit::new(12).unwrap();
        let h = expected_hashes(&unit.target_le(4));
        assert!((h / 65536.0 - 1.0).abs() < 1e-9, "{h}");
        let t = target_for_expected_hashes(1_000_000.0);
        let back = expected_hashes(&t);
        assert!((back / 1_000_000.0 - 1.0).abs() < 1e-6, "{back}");
    }

    #[test]
    fn exponent_for_hashrate_targets_share_rate() {
        let unit = ShareUnit::new(12).unwrap();
        // 1 MH/s at 60 shares/min -> 1e6 hashes/share -> 2^19.9 -> k = 19 - 12 = 7
        assert_eq!(unit.exponent_for_hashrate(1e6, 60.0), 7);
        assert_eq!(unit.exponent_for_hashrate(0.0, 60.0), 0);
    }
}
