//! What the proxy dashboard shows: the SV1 miners and the upstream channel and current job. The bridge task owns the live state and publishes snapshots of it on its
//! tick; the dashboard only reads the last snapshot.

use hashpool_ops_http::rate::History;
use hashpool_ops_http::status::now_ms;
use serde::Serialize;
use std::sync::Mutex;

/// Hashrate points kept for the chart (one hour of 5 s samples).
pub const HISTORY_POINTS: usize = 720;

/// One SV1 worker.
#[derive(Debug, Clone, Serialize)]
pub struct MinerRow {
    /// Connection number.
    pub id: u64,
    /// Worker name from `mining.authorize`.
    pub user: String,
    /// Remote address.
    pub peer: String,
    /// SV1 difficulty (difficulty 1 = 2^32 hashes per share), once work was sent.
    pub difficulty: Option<f64>,
    /// log2 of the expected hashes per share.
    pub work_log2: Option<u32>,
    /// Hashes per second over the last 30 s.
    pub hashrate: f64,
    /// Shares accepted (by the translator or, for channel shares, by the pool).
    pub accepted: u64,
    /// Shares rejected.
    pub rejected: u64,
    /// Unix ms of the last share (0: none).
    pub last_share_ms: i64,
    /// Unix ms it connected.
    pub connected_ms: i64,
}

/// The upstream extended channel.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    /// Channel id.
    pub channel_id: u32,
    /// log2 of the expected hashes per channel share.
    pub work_log2: u32,
    /// Extranonce prefix the pool assigned (hex).
    pub extranonce_prefix: String,
    /// Rollable extranonce bytes.
    pub extranonce_size: usize,
}

/// The job miners are working on.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// SV2 job id (also the SV1 job id).
    pub job_id: u32,
    /// Previous block hash (display order).
    pub prev_hash: String,
    /// Compact target (hex).
    pub nbits: String,
    /// Block version (hex).
    pub version: String,
    /// Header time.
    pub ntime: u32,
    /// Merkle branches.
    pub merkle_branches: usize,
    /// Coinbase size without the extranonce.
    pub coinbase_bytes: usize,
    /// Unix ms the translator got this job or tip.
    pub received_ms: i64,
}

/// The upstream as the pool page shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpstreamView {
    /// The channel, once open.
    pub channel: Option<ChannelView>,
    /// Ehash negotiated.
    pub ehash: bool,
    /// Keyset the pool announced.
    pub keyset: Option<String>,
    /// Mint URL the pool announced.
    pub mint_url: Option<String>,
    /// Current job.
    pub job: Option<JobView>,
    /// Share round trip (submit to verdict), moving average, ms.
    pub latency_ms: Option<f64>,
    /// Last share round trip, ms.
    pub latency_last_ms: Option<f64>,
}

/// The last published snapshots.
#[derive(Debug)]
pub struct ProxyBoard {
    miners: Mutex<Vec<MinerRow>>,
    upstream: Mutex<UpstreamView>,
    history: Mutex<History>,
}

impl Default for ProxyBoard {
    fn default() -> Self {
        Self {
            miners: Mutex::new(Vec::new()),
            upstream: Mutex::new(UpstreamView::default()),
            history: Mutex::new(History::new(HISTORY_POINTS)),
        }
    }
}

impl ProxyBoard {
    /// Publishes the miners and their total hashrate.
    pub fn publish_miners(&self, rows: Vec<MinerRow>) {
        let total: f64 = rows.iter().map(|r| r.hashrate).sum();
        if let Ok(mut h) = self.history.lock() {
            h.push(now_ms(), total);
        }
        if let Ok(mut m) = self.miners.lock() {
            *m = rows;
        }
    }

    /// Publishes the upstream view.
    pub fn publish_upstream(&self, view: UpstreamView) {
        if let Ok(mut u) = self.upstream.lock() {
            *u = view;
        }
    }

    /// Miners at the last sample.
    pub fn miners(&self) -> Vec<MinerRow> {
        self.miners.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Hashrate of all miners at the last sample.
    pub fn hashrate(&self) -> f64 {
        self.history.lock().map(|h| h.last_value()).unwrap_or(0.0)
    }

    /// `(unix ms, H/s)` points.
    pub fn history(&self) -> Vec<(i64, f64)> {
        self.history.lock().map(|h| h.points()).unwrap_or_default()
    }

    /// The upstream at the last publication.
    pub fn upstream(&self) -> UpstreamView {
        self.upstream.lock().map(|u| u.clone()).unwrap_or_default()
    }
}
