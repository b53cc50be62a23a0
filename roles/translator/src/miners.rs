//! SV1 miners behind the translator: session flags and each miner's own power-of-two
//! difficulty, which vardiff keeps at or below the channel's so that every share the pool pays
//! for is also a share the miner sees accepted.

use ehash_protocol::difficulty::ladder_target_le;
use ehash_protocol::vardiff::PowerOfTwoVardiff;
use hashpool_ops_http::status::now_ms;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Vardiff settings for miners.
#[derive(Debug, Clone, Copy)]
pub struct MinerVardiffConfig {
    /// Time between retargets.
    pub interval: Duration,
    /// Shares per minute each miner should submit.
    pub shares_per_minute: f64,
}

/// One SV1 connection.
pub struct MinerSession {
    /// Outgoing lines.
    pub lines: mpsc::Sender<String>,
    /// Extranonce sub-prefix index.
    pub index: u16,
    /// `mining.subscribe` done.
    pub subscribed: bool,
    /// `mining.authorize` done.
    pub authorized: bool,
    /// Version rolling negotiated with `mining.configure`.
    pub version_rolling: bool,
    /// Worker name from `mining.authorize`.
    pub user: String,
    /// The extranonce1 it was given at subscribe (channel prefix + its index).
    pub extranonce1: Vec<u8>,
    /// The miner's difficulty.
    pub difficulty: MinerDifficulty,
    /// Remote address.
    pub peer: std::net::SocketAddr,
    /// Unix ms it connected.
    pub connected_ms: i64,
    /// Share outcomes, for the dashboard.
    pub tally: MinerTally,
    /// Hashrate window over `tally`'s work.
    pub rate: hashpool_ops_http::rate::RateWindow,
}

/// A miner's share outcomes. Atomics only because the bridge answers shares through `&self`;
/// one task writes them.
#[derive(Debug, Default)]
pub struct MinerTally {
    accepted: AtomicU64,
    rejected: AtomicU64,
    work_bits: AtomicU64,
    last_share_ms: AtomicI64,
}

impl MinerTally {
    /// An accepted share proving `2^work_log2` hashes.
    pub fn accepted(&self, work_log2: u32) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let work =
            f64::from_bits(self.work_bits.load(Ordering::Relaxed)) + 2f64.powi(work_log2 as i32);
        self.work_bits.store(work.to_bits(), Ordering::Relaxed);
        self.last_share_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// A rejected share.
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.last_share_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// `(accepted, rejected, hashes of accepted shares, last share ms)`.
    pub fn read(&self) -> (u64, u64, f64, i64) {
        (
            self.accepted.load(Ordering::Relaxed),
            self.rejected.load(Ordering::Relaxed),
            f64::from_bits(self.work_bits.load(Ordering::Relaxed)),
            self.last_share_ms.load(Ordering::Relaxed),
        )
    }
}

impl MinerSession {
    /// A fresh connection.
    pub fn new(
        lines: mpsc::Sender<String>,
        index: u16,
        vardiff: MinerVardiffConfig,
        peer: std::net::SocketAddr,
    ) -> Self {
        Self {
            peer,
            connected_ms: now_ms(),
            tally: MinerTally::default(),
            rate: hashpool_ops_http::rate::RateWindow::new(6),
            lines,
            index,
            subscribed: false,
            authorized: false,
            version_rolling: false,
            user: String::new(),
            extranonce1: Vec::new(),
            difficulty: MinerDifficulty::new(vardiff),
        }
    }

    /// Subscribed and authorized: ready for work.
    pub fn ready(&self) -> bool {
        self.subscribed && self.authorized
    }
}

/// A miner's difficulty as `log2` of the expected hashes per share.
#[derive(Debug)]
pub struct MinerDifficulty {
    work_log2: Option<u32>,
    /// The previous, easier difficulty, still honoured until the miner gets its next job.
    grace_work_log2: Option<u32>,
    vardiff: PowerOfTwoVardiff,
}

impl MinerDifficulty {
    fn new(config: MinerVardiffConfig) -> Self {
        Self {
            work_log2: None,
            grace_work_log2: None,
            vardiff: PowerOfTwoVardiff::new(config.interval, config.shares_per_minute),
        }
    }

    /// Current difficulty, once work was sent.
    pub fn work_log2(&self) -> Option<u32> {
        self.work_log2
    }

    /// Target (little-endian) a share must meet to be accepted from this miner now.
    pub fn accept_target_le(&self, channel_work_log2: u32) -> [u8; 32] {
        let current = self.work_log2.unwrap_or(channel_work_log2);
        let easiest = self.grace_work_log2.map_or(current, |g| g.min(current));
        ladder_target_le(easiest.min(channel_work_log2))
    }

    /// Fits the difficulty under a (new) channel difficulty; returns the new value if it changed
    /// (the miner must be told).
    pub fn fit_to_channel(&mut self, channel_work_log2: u32) -> Option<u32> {
        match self.work_log2 {
            Some(w) if w <= channel_work_log2 => None,
            _ => {
                self.work_log2 = Some(channel_work_log2);
                Some(channel_work_log2)
            }
        }
    }

    /// Counts a share that met the miner's target.
    pub fn on_share(&mut self) {
        self.vardiff.on_share();
    }

    /// The miner got a new job: shares at an older, easier difficulty are no longer honoured.
    pub fn on_new_job(&mut self) {
        self.grace_work_log2 = None;
    }

    /// Vardiff step; returns the new difficulty if it changed.
    pub fn retarget(&mut self, channel_work_log2: u32) -> Option<u32> {
        let current = self.work_log2?;
        let max = channel_work_log2.min(u32::from(u8::MAX)) as u8;
        let current_u8 = current.min(u32::from(max)) as u8;
        let next = u32::from(self.vardiff.retarget(current_u8, max)?);
        if next == current {
            return None;
        }
        if next > current {
            // The miner may still be hashing at the old difficulty until its next job.
            self.grace_work_log2 = Some(current);
        }
        self.work_log2 = Some(next);
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MinerVardiffConfig {
        MinerVardiffConfig {
            interval: Duration::ZERO,
            shares_per_minute: 60.0,
        }
    }

    #[test]
    fn never_harder_than_the_channel() {
        let mut d = MinerDifficulty::new(config());
        assert_eq!(d.fit_to_channel(30), Some(30));
        assert_eq!(d.fit_to_channel(31), None);
        assert_eq!(d.fit_to_channel(20), Some(20));
        for _ in 0..10_000 {
            d.on_share();
        }
        std::thread::sleep(Duration::from_millis(20));
        // far too many shares, but the channel caps it
        assert_eq!(d.retarget(20), None);
        assert_eq!(d.work_log2(), Some(20));
        assert_eq!(d.accept_target_le(20), ladder_target_le(20));
    }

    #[test]
    fn slow_miner_gets_easier_and_harder_keeps_grace_until_next_job() {
        let mut d = MinerDifficulty::new(MinerVardiffConfig {
            interval: Duration::ZERO,
            shares_per_minute: 600_000.0,
        });
        d.fit_to_channel(40);
        std::thread::sleep(Duration::from_millis(20));
        d.on_share();
        let easier = d.retarget(40).unwrap();
        assert!(easier < 40, "{easier}");
        let mut d = MinerDifficulty::new(config());
        d.fit_to_channel(40);
        d.work_log2 = Some(10);
        for _ in 0..1000 {
            d.on_share();
        }
        std::thread::sleep(Duration::from_millis(20));
        let harder = d.retarget(40).unwrap();
        assert!(harder > 10, "{harder}");
        assert_eq!(d.accept_target_le(40), ladder_target_le(10));
        d.on_new_job();
        assert_eq!(d.accept_target_le(40), ladder_target_le(harder));
    }
}
