//! What the dashboard shows about mining: every open channel with its own counters, and the
//! pool's hashrate over time, sampled from the work of accepted shares.
//!
//! Connection tasks touch only their channel's atomics on the share path; the board's lock is
//! taken when a channel opens or closes and by the sampler, never per share.

use crate::stats::{now_ms, PoolStats};
use hashpool_ops_http::rate::{History, RateWindow};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often hashrate is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// Samples a hashrate is averaged over (30 s): single shares are too lumpy to show.
const WINDOW_SAMPLES: usize = 6;
/// Hashrate points kept for the chart (one hour).
const HISTORY_POINTS: usize = 720;

/// Counters of one channel, updated by its connection task.
#[derive(Debug, Default)]
pub struct ChannelCounters {
    accepted: AtomicU64,
    rejected: AtomicU64,
    work: AtomicU64,
    last_share_ms: AtomicI64,
    k: AtomicU8,
}

impl ChannelCounters {
    /// An accepted share worth `amount` HASH.
    pub fn on_accepted(&self, amount: u64) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.work.fetch_add(amount, Ordering::Relaxed);
        self.last_share_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// A rejected share.
    pub fn on_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.last_share_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// The channel moved to ladder step `k`.
    pub fn set_k(&self, k: u8) {
        self.k.store(k, Ordering::Relaxed);
    }
}

/// Who opened a channel.
#[derive(Debug, Clone)]
pub struct ChannelOwner {
    /// Connection number (one per downstream connection).
    pub connection: u64,
    /// Remote address of the downstream.
    pub peer: SocketAddr,
    /// `user_identity` of the open request.
    pub user: String,
    /// "extended" or "standard".
    pub kind: &'static str,
    /// The connection negotiated the ehash extension.
    pub ehash: bool,
}

struct Entry {
    owner: ChannelOwner,
    opened_ms: i64,
    counters: Arc<ChannelCounters>,
    rate: RateWindow,
    hashrate: f64,
}

/// One channel as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelRow {
    /// Channel id.
    pub channel_id: u32,
    /// Connection number.
    pub connection: u64,
    /// Remote address.
    pub peer: String,
    /// `user_identity`.
    pub user: String,
    /// "extended" or "standard".
    pub kind: &'static str,
    /// Ehash negotiated.
    pub ehash: bool,
    /// Unix ms it opened.
    pub opened_ms: i64,
    /// log2 of the expected hashes per share (the channel's difficulty).
    pub share_work_log2: u32,
    /// Shares accepted.
    pub shares_accepted: u64,
    /// Shares rejected.
    pub shares_rejected: u64,
    /// HASH of its accepted shares.
    pub work: u64,
    /// Hashes per second over the last 30 s.
    pub hashrate: f64,
    /// Unix ms of its last share (0: none yet).
    pub last_share_ms: i64,
}

/// Channels and hashrate history.
pub struct MiningBoard {
    unit_log2: u8,
    channels: Mutex<BTreeMap<u32, Entry>>,
    rate: Mutex<(RateWindow, History)>,
}

impl MiningBoard {
    /// An empty board for a pool whose HASH is `2^unit_log2` expected hashes.
    pub fn new(unit_log2: u8) -> Self {
        Self {
            unit_log2,
            channels: Mutex::new(BTreeMap::new()),
            rate: Mutex::new((
                RateWindow::new(WINDOW_SAMPLES),
                History::new(HISTORY_POINTS),
            )),
        }
    }

    /// Registers a channel; its connection keeps the returned counters.
    pub fn open(&self, channel_id: u32, owner: ChannelOwner, k: u8) -> Arc<ChannelCounters> {
        let counters = Arc::new(ChannelCounters::default());
        counters.set_k(k);
        let opened_ms = now_ms();
        // The window starts at the open, so the first sample already gives a rate.
        let mut rate = RateWindow::new(WINDOW_SAMPLES);
        rate.push(opened_ms, 0.0);
        let entry = Entry {
            owner,
            opened_ms,
            counters: counters.clone(),
            rate,
            hashrate: 0.0,
        };
        if let Ok(mut c) = self.channels.lock() {
            c.insert(channel_id, entry);
        }
        counters
    }

    /// Forgets a closed channel.
    pub fn close(&self, channel_id: u32) {
        if let Ok(mut c) = self.channels.lock() {
            c.remove(&channel_id);
        }
    }

    /// The open channels.
    pub fn channels(&self) -> Vec<ChannelRow> {
        let Ok(c) = self.channels.lock() else {
            return Vec::new();
        };
        c.iter()
            .map(|(id, e)| ChannelRow {
                channel_id: *id,
                connection: e.owner.connection,
                peer: e.owner.peer.to_string(),
                user: e.owner.user.clone(),
                kind: e.owner.kind,
                ehash: e.owner.ehash,
                opened_ms: e.opened_ms,
                share_work_log2: u32::from(self.unit_log2)
                    + u32::from(e.counters.k.load(Ordering::Relaxed)),
                shares_accepted: e.counters.accepted.load(Ordering::Relaxed),
                shares_rejected: e.counters.rejected.load(Ordering::Relaxed),
                work: e.counters.work.load(Ordering::Relaxed),
                hashrate: e.hashrate,
                last_share_ms: e.counters.last_share_ms.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Pool hashrate (H/s) over the last 30 s.
    pub fn hashrate(&self) -> f64 {
        self.rate.lock().map(|r| r.1.last_value()).unwrap_or(0.0)
    }

    /// Open channels.
    pub fn channel_count(&self) -> usize {
        self.channels.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// `(unix ms, H/s)` points of the last hour.
    pub fn history(&self) -> Vec<(i64, f64)> {
        self.rate.lock().map(|r| r.1.points()).unwrap_or_default()
    }

    /// Hashes proven by `work` HASH.
    fn hashes(&self, work: u64) -> f64 {
        work as f64 * 2f64.powi(i32::from(self.unit_log2))
    }

    /// Takes one sample of the pool's total work and of every channel's.
    pub fn sample(&self, at_ms: i64, total_work: u64) {
        let total = self.hashes(total_work);
        if let Ok(mut r) = self.rate.lock() {
            let rate = r.0.push(at_ms, total);
            r.1.push(at_ms, rate);
        }
        if let Ok(mut c) = self.channels.lock() {
            for e in c.values_mut() {
                let work = self.hashes(e.counters.work.load(Ordering::Relaxed));
                e.hashrate = e.rate.push(at_ms, work);
            }
        }
    }
}

/// Samples the board every [`SAMPLE_INTERVAL`] until shutdown.
pub async fn sample_loop(
    board: Arc<MiningBoard>,
    stats: Arc<PoolStats>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => board.sample(now_ms(), stats.work_accepted.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> ChannelOwner {
        ChannelOwner {
            connection: 1,
            peer: "127.0.0.1:1".parse().unwrap(),
            user: "farm".into(),
            kind: "extended",
            ehash: true,
        }
    }

    #[test]
    fn hashrate_is_work_over_time_in_hashes() {
        let board = MiningBoard::new(12);
        let t0 = now_ms();
        board.sample(t0, 0);
        let c = board.open(7, owner(), 3);
        let opened = board.channels()[0].opened_ms;
        for _ in 0..10 {
            c.on_accepted(8);
        }
        c.on_rejected();
        board.sample(t0 + 5_000, 80);
        // 80 HASH of 2^12 hashes in 5 s.
        let expected = 80.0 * 4096.0 / 5.0;
        assert_eq!(board.hashrate(), expected);
        let rows = board.channels();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.shares_accepted, r.shares_rejected, r.work), (10, 1, 80));
        // The channel's window starts when it opened.
        let since_open = (t0 + 5_000 - opened) as f64 / 1000.0;
        assert_eq!(r.hashrate, 80.0 * 4096.0 / since_open);
        assert_eq!(r.share_work_log2, 15);
        assert_eq!(board.history(), vec![(t0, 0.0), (t0 + 5_000, expected)]);
        board.close(7);
        assert!(board.channels().is_empty());
    }

    #[test]
    fn the_window_forgets_old_work() {
        let board = MiningBoard::new(0);
        for i in 0..20i64 {
            // 100 H/s until t = 50 s, then nothing.
            let work = (i.min(10) * 500) as u64;
            board.sample(i * 5_000, work);
        }
        assert_eq!(board.hashrate(), 0.0);
        assert_eq!(board.history().len(), 20);
        assert_eq!(board.history()[6].1, 100.0);
    }
}
