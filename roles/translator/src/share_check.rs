//! Local judging of SV1 shares before anything goes upstream: the translator hashes each
//! submitted header itself, so it can hold every miner to its own (easier) vardiff target and
//! forward only the shares that meet the channel target the pool pays for.

use ehash_protocol::difficulty::meets_target;
use std::collections::{HashSet, VecDeque};
use stratum_core::bitcoin::block::{Header, Version};
use stratum_core::bitcoin::hashes::Hash;
use stratum_core::bitcoin::{BlockHash, CompactTarget, TxMerkleNode};
use stratum_core::channels_sv2::merkle_root::merkle_root_from_path;
use stratum_core::mining_sv2::{
    NewExtendedMiningJobOwned, SetNewPrevHashOwned, SubmitSharesExtendedOwned,
};

/// Version bits miners may roll (BIP320 general-purpose bits).
pub const VERSION_ROLLING_MASK: u32 = 0x1fff_e000;
/// How far a share's ntime may run ahead of its job's min_ntime (consensus allows ~2 h).
const MAX_FUTURE_NTIME: u32 = 7200;
/// Share hashes remembered per prev hash for duplicate detection.
const MAX_SEEN: usize = 1 << 20;

/// Why a share was refused before reaching the pool.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShareCheckError {
    /// ntime before the job's min_ntime or too far ahead of it.
    #[error("ntime {ntime} outside the job's window starting at {min_ntime}")]
    NtimeOutOfRange {
        /// Share ntime.
        ntime: u32,
        /// The job's min_ntime.
        min_ntime: u32,
    },
    /// The share changed version bits it may not roll.
    #[error("version {version:#010x} changes bits outside the rolling mask")]
    VersionBits {
        /// Share version.
        version: u32,
    },
    /// The coinbase built from the job and the extranonce does not parse.
    #[error("coinbase cannot be assembled from the job and extranonce")]
    Coinbase,
}

/// Merkle root of an extended job's block with `full_extranonce` (channel prefix + rolled part)
/// in its coinbase; none if the coinbase does not assemble.
pub fn job_merkle_root(
    job: &NewExtendedMiningJobOwned,
    full_extranonce: &[u8],
) -> Option<[u8; 32]> {
    merkle_root_from_path(
        job.coinbase_tx_prefix.as_bytes(),
        job.coinbase_tx_suffix.as_bytes(),
        full_extranonce,
        job.merkle_path.as_slice(),
    )
}

/// Hash (internal byte order, i.e. a little-endian number) of the header a share describes.
pub fn share_hash(
    job: &NewExtendedMiningJobOwned,
    prev: &SetNewPrevHashOwned,
    full_extranonce: &[u8],
    share: &SubmitSharesExtendedOwned,
) -> Result<[u8; 32], ShareCheckError> {
    // A future job activated by SetNewPrevHash takes the prev hash's min_ntime.
    let min_ntime = job.min_ntime.clone().into_inner().unwrap_or(prev.min_ntime);
    if share.ntime < min_ntime || share.ntime > min_ntime.saturating_add(MAX_FUTURE_NTIME) {
        return Err(ShareCheckError::NtimeOutOfRange {
            ntime: share.ntime,
            min_ntime,
        });
    }
    let mask = if job.version_rolling_allowed {
        VERSION_ROLLING_MASK
    } else {
        0
    };
    if share.version & !mask != job.version & !mask {
        return Err(ShareCheckError::VersionBits {
            version: share.version,
        });
    }
    let merkle_root = job_merkle_root(job, full_extranonce).ok_or(ShareCheckError::Coinbase)?;
    let header = Header {
        version: Version::from_consensus(share.version as i32),
        prev_blockhash: BlockHash::from_byte_array(prev.prev_hash.to_array()),
        merkle_root: TxMerkleNode::from_byte_array(merkle_root),
        time: share.ntime,
        bits: CompactTarget::from_consensus(prev.nbits),
        nonce: share.nonce,
    };
    Ok(header.block_hash().to_byte_array())
}

/// How a share's hash compares with the miner's and the channel's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareGrade {
    /// Misses the miner's target.
    BelowMinerTarget,
    /// Meets the miner's target only: accepted locally, not worth sending upstream.
    MinerOnly,
    /// Meets the channel target: goes to the pool.
    Channel,
}

/// Grades a hash against the miner's and the channel's targets (little-endian).
pub fn grade(hash: &[u8; 32], miner_target: &[u8; 32], channel_target: &[u8; 32]) -> ShareGrade {
    if meets_target(hash, channel_target) {
        ShareGrade::Channel
    } else if meets_target(hash, miner_target) {
        ShareGrade::MinerOnly
    } else {
        ShareGrade::BelowMinerTarget
    }
}

/// Share hashes seen since the last prev hash, oldest evicted first once full.
#[derive(Debug, Default)]
pub struct SeenShares {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl SeenShares {
    /// Records a hash; false if it was already seen.
    pub fn insert(&mut self, hash: [u8; 32]) -> bool {
        if !self.set.insert(hash) {
            return false;
        }
        self.order.push_back(hash);
        if self.order.len() > MAX_SEEN {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    /// Forgets everything (a new prev hash makes old shares stale anyway).
    pub fn clear(&mut self) {
        self.set.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ehash_protocol::difficulty::ladder_target_le;

    #[test]
    fn grades_against_both_targets() {
        let miner = ladder_target_le(8);
        let channel = ladder_target_le(12);
        let mut h = [0u8; 32];
        h[31] = 0x00;
        h[30] = 0x01; // work ~ 2^15 -> meets both
        assert_eq!(grade(&h, &miner, &channel), ShareGrade::Channel);
        let mut h = [0u8; 32];
        h[31] = 0x0f; // work 2^4..2^5 -> neither
        assert_eq!(grade(&h, &miner, &channel), ShareGrade::BelowMinerTarget);
        let mut h = [0u8; 32];
        h[31] = 0x00;
        h[30] = 0x7f; // work 2^9: miner only
        assert_eq!(grade(&h, &miner, &channel), ShareGrade::MinerOnly);
    }

    #[test]
    fn duplicates_are_detected_until_cleared() {
        let mut seen = SeenShares::default();
        assert!(seen.insert([1; 32]));
        assert!(!seen.insert([1; 32]));
        seen.clear();
        assert!(seen.insert([1; 32]));
    }
}
