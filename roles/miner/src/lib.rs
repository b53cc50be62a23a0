//! A multi-threaded CPU SV1 miner: subscribes, authorizes, hashes the current job on N threads
//! and submits every hash that meets the difficulty.

pub mod metrics;

mod job;

pub use job::Sv1Job;

use ehash_protocol::difficulty::meets_target as meets;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use stratum_core::bitcoin::hashes::{sha256d, Hash};
use stratum_core::sv1_api::json_rpc::{Message, StandardRequest};
use stratum_core::sv1_api::methods::{Method, Server2Client, Server2ClientResponse};
use stratum_core::sv1_api::server_to_client::Notify;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Miner counters.
#[derive(Debug, Default)]
pub struct MinerStats {
    /// Hashes computed.
    pub hashes: AtomicU64,
    /// Shares submitted.
    pub submitted: AtomicU64,
    /// Shares accepted.
    pub accepted: AtomicU64,
    /// Shares rejected.
    pub rejected: AtomicU64,
    /// Connected to the translator (subscribed).
    pub connected: std::sync::atomic::AtomicBool,
}

#[derive(Clone)]
struct Work {
    generation: u64,
    job: Sv1Job,
    target_le: [u8; 32],
}

struct Found {
    job_id: String,
    extranonce2: Vec<u8>,
    ntime: u32,
    nonce: u32,
}

/// Target (little-endian) of an SV1 difficulty: difficulty-1 target (0xffff·2^208) / diff,
/// made a hair harder so rounding never yields a share the pool calls too easy.
pub fn target_from_difficulty(diff: f64) -> [u8; 32] {
    let hashes = diff * 2f64.powi(48) / 65535.0 * (1.0 + 1e-9);
    ehash_protocol::difficulty::target_for_expected_hashes(hashes)
}

fn hash_loop(
    thread: u32,
    work: Arc<RwLock<Option<Work>>>,
    found: mpsc::UnboundedSender<Found>,
    stats: Arc<MinerStats>,
    stop: CancellationToken,
) {
    let mut en2_counter: u64 = u64::from(thread) << 40;
    while !stop.is_cancelled() {
        let Some(w) = work.read().ok().and_then(|g| g.clone()) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        en2_counter += 1;
        let en2_full = en2_counter.to_le_bytes();
        let extranonce2: Vec<u8> = (0..w.job.extranonce2_size)
            .map(|i| *en2_full.get(i).unwrap_or(&0))
            .collect();
        let mut header = w.job.header(&extranonce2);
        let mut nonce: u32 = 0;
        loop {
            header[76..80].copy_from_slice(&nonce.to_le_bytes());
            let hash = sha256d::Hash::hash(&header).to_byte_array();
            if meets(&hash, &w.target_le) {
                let _ = found.send(Found {
                    job_id: w.job.job_id.clone(),
                    extranonce2: extranonce2.clone(),
                    ntime: w.job.ntime,
                    nonce,
                });
            }
            if nonce & 0x3fff == 0x3fff {
                stats.hashes.fetch_add(0x4000, Ordering::Relaxed);
                let current = work
                    .read()
                    .ok()
                    .and_then(|g| g.as_ref().map(|w| w.generation));
                if current != Some(w.generation) || stop.is_cancelled() {
                    break;
                }
            }
            if nonce == u32::MAX {
                break;
            }
            nonce += 1;
        }
    }
}

/// Options of the miner (`miner.toml`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinerOptions {
    /// Translator SV1 address.
    pub url: String,
    /// Worker name.
    pub user: String,
    /// Hashing threads.
    pub threads: u32,
    /// Where to serve `/metrics` and `/health` (none if absent).
    #[serde(default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl hashpool_ops_http::config_check::Validate for MinerOptions {
    fn validate(&self) -> Result<(), hashpool_ops_http::config_check::ConfigProblem> {
        use hashpool_ops_http::config_check::{host_port, within, ConfigProblem};
        host_port("url", &self.url)?;
        within("threads", self.threads, 1, 1_024)?;
        if self.user.is_empty() {
            return Err(ConfigProblem::new("user", "must name the worker"));
        }
        Ok(())
    }
}

/// Runs the miner until `stop`; reconnects if the connection drops.
pub async fn run(opts: MinerOptions, stats: Arc<MinerStats>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let result = session(&opts, &stats, &stop).await;
        stats.connected.store(false, Ordering::Relaxed);
        if let Err(e) = result {
            tracing::info!(url = %opts.url, error = %e, "miner disconnected; reconnecting");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

async fn session(
    opts: &MinerOptions,
    stats: &Arc<MinerStats>,
    stop: &CancellationToken,
) -> Result<(), String> {
    let stream = TcpStream::connect(&opts.url)
        .await
        .map_err(|e| e.to_string())?;
    let (rd, mut wr) = stream.into_split();
    stats.connected.store(true, Ordering::Relaxed);
    let mut lines = BufReader::new(rd).lines();
    let send = |id: u64, method: &str, params: serde_json::Value| {
        let msg = Message::StandardRequest(StandardRequest {
            id,
            method: method.into(),
            params,
        });
        serde_json::to_string(&msg)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string())
    };
    wr.write_all(send(1, "mining.subscribe", serde_json::json!(["hashpool-miner"]))?.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    wr.write_all(send(2, "mining.authorize", serde_json::json!([opts.user, "x"]))?.as_bytes())
        .await
        .map_err(|e| e.to_string())?;

    let work: Arc<RwLock<Option<Work>>> = Arc::new(RwLock::new(None));
    let (found_tx, mut found_rx) = mpsc::unbounded_channel();
    let threads_stop = stop.child_token();
    let _guard = threads_stop.clone().drop_guard();
    for t in 0..opts.threads.max(1) {
        let (w, f, s, st) = (
            work.clone(),
            found_tx.clone(),
            stats.clone(),
            threads_stop.clone(),
        );
        std::thread::spawn(move || hash_loop(t, w, f, s, st));
    }
    let mut extranonce: Option<(Vec<u8>, usize)> = None;
    let mut difficulty: Option<f64> = None;
    let mut last_notify: Option<Notify> = None;
    let mut generation = 0u64;
    let mut next_id = 10u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            Some(f) = found_rx.recv() => {
                next_id += 1;
                let params = serde_json::json!([
                    opts.user, f.job_id, hex::encode(&f.extranonce2), format!("{:08x}", f.ntime), format!("{:08x}", f.nonce)
                ]);
                wr.write_all(send(next_id, "mining.submit", params)?.as_bytes()).await.map_err(|e| e.to_string())?;
                stats.submitted.fetch_add(1, Ordering::Relaxed);
            }
            line = lines.next_line() => {
                let line = line.map_err(|e| e.to_string())?.ok_or("connection closed")?;
                let msg: Message = serde_json::from_str(&line).map_err(|e| format!("bad line: {e}"))?;
                let mut changed = false;
                match Method::try_from(msg) {
                    Ok(Method::Server2ClientResponse(Server2ClientResponse::Subscribe(s))) => {
                        extranonce = Some((s.extra_nonce1.into(), s.extra_nonce2_size));
                        changed = true;
                    }
                    Ok(Method::Server2ClientResponse(Server2ClientResponse::GeneralResponse(r))) if r.id > 10 => {
                        let counter = if r.result { &stats.accepted } else { &stats.rejected };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Method::ErrorMessage(Message::ErrorResponse(r))) if r.id > 10 => {
                        stats.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Method::ErrorMessage(Message::ErrorResponse(r))) if r.id <= 2 => {
                        return Err(format!("subscribe/authorize refused: {:?}", r.error));
                    }
                    Ok(Method::Server2Client(Server2Client::SetDifficulty(d))) => {
                        difficulty = Some(d.value);
                        changed = true;
                    }
                    Ok(Method::Server2Client(Server2Client::Notify(n))) => {
                        last_notify = Some(n);
                        changed = true;
                    }
                    _ => {}
                }
                if changed {
                    if let (Some((en1, en2)), Some(d), Some(n)) = (&extranonce, difficulty, &last_notify) {
                        generation += 1;
                        let new = Work {
                            generation,
                            job: Sv1Job::from_notify(n, en1, *en2)?,
                            target_le: target_from_difficulty(d),
                        };
                        if let Ok(mut g) = work.write() { *g = Some(new); }
                    }
                }
            }
        }
    }
}
