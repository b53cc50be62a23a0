//! Block pacing: the devnet's block target, harder than regtest's nBits, tuned so blocks
//! arrive about every `interval` at whatever hashrate the miners have.

use ehash_protocol::difficulty::{
    expected_hashes, meets_target as meets, target_for_expected_hashes,
};
use std::time::{Duration, Instant};

/// Expected hashes of regtest's nBits target (0x207fffff is about 2).
const MIN_HASHES: f64 = 2.0;

/// Tracks block intervals and sets the expected hashes per block.
#[derive(Debug)]
pub struct BlockPacer {
    interval: Duration,
    hashes_per_block: f64,
    last_change: Instant,
}

impl BlockPacer {
    /// A pacer aiming at `interval`, starting from `initial_hashes` per block.
    pub fn new(interval: Duration, initial_hashes: f64) -> Self {
        Self {
            interval,
            hashes_per_block: initial_hashes.max(MIN_HASHES),
            last_change: Instant::now(),
        }
    }

    /// Little-endian target a block must meet.
    pub fn target_le(&self) -> [u8; 32] {
        target_for_expected_hashes(self.hashes_per_block)
    }

    /// Expected hashes per block now.
    pub fn hashes_per_block(&self) -> f64 {
        self.hashes_per_block
    }

    /// A block was found: move the difficulty toward the observed rate, damped (the square
    /// root of the ratio) because single intervals are exponentially distributed.
    pub fn on_block(&mut self) {
        let elapsed = self.last_change.elapsed().as_secs_f64().max(0.001);
        let ratio = (self.interval.as_secs_f64() / elapsed).clamp(0.25, 4.0);
        self.hashes_per_block = (self.hashes_per_block * ratio.sqrt()).max(MIN_HASHES);
        self.last_change = Instant::now();
    }

    /// No block for three intervals: halve the difficulty. Returns true if it changed.
    pub fn ease_if_stalled(&mut self) -> bool {
        if self.last_change.elapsed() < self.interval * 3 || self.hashes_per_block <= MIN_HASHES {
            return false;
        }
        self.hashes_per_block = (self.hashes_per_block / 2.0).max(MIN_HASHES);
        self.last_change = Instant::now();
        true
    }

    /// True if a block hash (internal byte order = little-endian number) meets the target.
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        meets(hash, &self.target_le())
    }
}

/// Expected hashes behind a little-endian target (for logs).
pub fn difficulty_of(target_le: &[u8; 32]) -> f64 {
    expected_hashes(target_le)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjusts_toward_interval() {
        let mut p = BlockPacer::new(Duration::from_secs(10), 1e6);
        std::thread::sleep(Duration::from_millis(20));
        p.on_block(); // far too fast: difficulty doubles (sqrt of the 4x clamp)
        assert!((p.hashes_per_block() / 2e6 - 1.0).abs() < 1e-9);
        assert!(!p.ease_if_stalled());
    }

    #[test]
    fn meets_compares_as_numbers() {
        let mut t = [0u8; 32];
        t[31] = 0x10;
        let mut h = [0xffu8; 32];
        h[31] = 0x0f;
        assert!(meets(&h, &t));
        h[31] = 0x11;
        assert!(!meets(&h, &t));
    }
}
