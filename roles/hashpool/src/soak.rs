//! `hashpool bench soak`: many SV1 connections against one translator process.
//!
//! The stack runs as separate processes (template provider, mint, pool, translator); this
//! process opens the SV1 connections and mines cheap but real shares on each (one HASH unit is
//! 2^8 hashes, and the pool's vardiff is told to keep the channel there, so every miner share is
//! also a channel share and travels the whole path: translator → pool journal → mint →
//! signature → wallet). It reports the translator's memory per connection, submit-to-answer
//! latency, and every error. It stops by itself after `duration`.

use crate::process_stack::{prepare_stack_dir, ProcessError, RoleProcesses};
use crate::stack_configs::{DevnetPorts, StackConfigs};
use crate::DevnetOptions;
use ehash_protocol::difficulty::meets_target;
use hashpool_miner::{target_from_difficulty, Sv1Job};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_core::sv1_api::json_rpc::Message;
use stratum_core::sv1_api::methods::{Method, Server2Client};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Options of a soak run.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// The `hashpool` executable that runs the roles.
    pub binary: PathBuf,
    /// SV1 connections to hold open.
    pub connections: u32,
    /// How long to keep them submitting once all are open.
    pub duration: Duration,
    /// Each connection submits one share about this often.
    pub share_interval: Duration,
    /// Directory for configs, data and logs (created; left for inspection).
    pub data_dir: PathBuf,
}

/// What a soak run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakReport {
    /// Connections asked for.
    pub connections: u32,
    /// Connections that subscribed and authorized.
    pub connected: u64,
    /// Shares submitted.
    pub submitted: u64,
    /// Shares answered `true`.
    pub accepted: u64,
    /// Shares answered with an SV1 error (stale at a block change, and the like).
    pub rejected: u64,
    /// Connect failures, unanswered submits, dropped connections.
    pub errors: u64,
    /// Submit-to-answer latency, median (µs).
    pub p50_us: u64,
    /// Submit-to-answer latency, 99th percentile (µs).
    pub p99_us: u64,
    /// Translator resident memory before the connections (KiB).
    pub rss_before_kib: u64,
    /// Highest translator resident memory during the run (KiB).
    pub rss_peak_kib: u64,
    /// (peak − before) / connected, in bytes.
    pub rss_per_connection_bytes: u64,
    /// Seconds the connections were held after all were open.
    pub held_secs: f64,
}

/// Errors of the soak run itself (not of the connections, which are counted).
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// Configs could not be written.
    #[error(transparent)]
    Configs(#[from] crate::stack_configs::StackConfigError),
    /// A role process failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The translator never served SV1.
    #[error("the translator never accepted SV1 subscriptions: {0}")]
    NotReady(String),
}

/// How long a share sent just before the end may take to be answered.
const ANSWER_GRACE: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    submitted: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    errors: AtomicU64,
}

/// Runs the soak and stops the stack again.
pub async fn run(o: &SoakOptions) -> Result<SoakReport, SoakError> {
    let base = prepare_stack_dir(&o.data_dir)?;
    let opts = DevnetOptions {
        data_dir: o.data_dir.clone(),
        miners: 0,
        block_interval_secs: 60.0,
        share_unit_log2: 8,
        // Far above what arrives: the pool never raises the channel above one unit.
        shares_per_minute: 1e9,
        vardiff_interval_secs: 10.0,
        ..Default::default()
    };
    let mut configs = StackConfigs::generate(&opts, DevnetPorts::from_base(base))?;
    configs.translator.nominal_hashrate = 1.0;
    configs.translator.miner_shares_per_minute = 60.0 / o.share_interval.as_secs_f64().max(0.001);
    configs.translator.miner_vardiff_interval_secs = 60.0;
    configs.write(&o.data_dir)?;
    let sv1 = configs.translator.sv1_listen;
    let mut stack = RoleProcesses::new(&o.binary, &o.data_dir, "warn");
    stack
        .spawn_in_order(&["template-provider", "mint", "pool", "translator"])
        .await?;
    let result = soak(o, sv1, &stack).await;
    let stopped = stack.stop_all().await;
    let report = result?;
    stopped?;
    Ok(report)
}

async fn wait_ready(sv1: std::net::SocketAddr) -> Result<(), SoakError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        match TcpStream::connect(sv1).await {
            Ok(s) => {
                let (rd, mut wr) = s.into_split();
                let req = "{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n";
                if wr.write_all(req.as_bytes()).await.is_ok() {
                    let mut lines = BufReader::new(rd).lines();
                    if let Ok(Ok(Some(line))) =
                        tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await
                    {
                        if !line.contains("\"error\":{") && line.contains("\"result\":[") {
                            return Ok(());
                        }
                        last = line;
                    }
                }
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(SoakError::NotReady(last))
}

async fn soak(
    o: &SoakOptions,
    sv1: std::net::SocketAddr,
    stack: &RoleProcesses,
) -> Result<SoakReport, SoakError> {
    wait_ready(sv1).await?;
    let rss_before = stack.rss_kib("translator").unwrap_or(0);
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(Mutex::new(Vec::<u32>::new()));
    // Everyone stops at the same moment: ramp-up time plus the held duration.
    let ramp = Duration::from_millis(u64::from(o.connections) * 2);
    let stop_at = Instant::now() + ramp + o.duration;
    let mut tasks = Vec::with_capacity(o.connections as usize);
    for i in 0..o.connections {
        let (c, l) = (counters.clone(), latencies.clone());
        let interval = o.share_interval;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = client(i, sv1, interval, stop_at, &c, &l).await {
                c.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(connection = i, error = %e, "soak connection failed");
            }
        }));
        // Open about 500 connections per second so the accept backlog never overflows.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let held_from = Instant::now();
    let mut rss_peak = rss_before;
    while Instant::now() < stop_at {
        rss_peak = rss_peak.max(stack.rss_kib("translator").unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let held_secs = held_from.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_unstable();
    let pct = |p: f64| crate::pipeline::percentile(&lat, p);
    let connected = counters.connected.load(Ordering::Relaxed);
    Ok(SoakReport {
        connections: o.connections,
        connected,
        submitted: counters.submitted.load(Ordering::Relaxed),
        accepted: counters.accepted.load(Ordering::Relaxed),
        rejected: counters.rejected.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        rss_before_kib: rss_before,
        rss_peak_kib: rss_peak,
        rss_per_connection_bytes: (rss_peak.saturating_sub(rss_before) * 1024)
            .checked_div(connected)
            .unwrap_or(0),
        held_secs,
    })
}

/// One SV1 connection: subscribe, authorize, then a share about every `interval` until `stop_at`.
async fn client(
    i: u32,
    sv1: std::net::SocketAddr,
    interval: Duration,
    stop_at: Instant,
    c: &Counters,
    latencies: &Mutex<Vec<u32>>,
) -> Result<(), String> {
    let stream = TcpStream::connect(sv1).await.map_err(|e| e.to_string())?;
    let (rd, mut wr) = stream.into_split();
    let mut lines = BufReader::new(rd).lines();
    let send = |id: u64, method: &str, params: serde_json::Value| {
        format!(
            "{}\n",
            serde_json::json!({"id": id, "method": method, "params": params})
        )
    };
    let hello = send(1, "mining.subscribe", serde_json::json!(["soak"]))
        + &send(
            2,
            "mining.authorize",
            serde_json::json!([format!("soak.{i}"), "x"]),
        );
    wr.write_all(hello.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let (mut en1, mut job, mut target) = (None::<(Vec<u8>, usize)>, None::<Sv1Job>, None);
    let mut pending: Option<(u64, Instant)> = None;
    let mut next_id = 10u64;
    let mut en2_counter = u64::from(i) << 32;
    // Spread the first submits over one interval.
    let mut next_submit = Instant::now() + interval.mul_f64(f64::from(i % 1000) / 1000.0);
    let mut counted = false;
    loop {
        let wake = if Instant::now() >= stop_at {
            next_submit
        } else {
            next_submit.min(stop_at)
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {
                if Instant::now() >= stop_at {
                    if pending.is_some() && Instant::now() >= stop_at + ANSWER_GRACE {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    if pending.is_none() {
                        return Ok(());
                    }
                    // The last share is in flight: wait for its answer, up to the grace.
                    next_submit = stop_at + ANSWER_GRACE;
                    continue;
                }
                next_submit = Instant::now() + interval;
                if pending.is_some() {
                    // The previous share is still unanswered after a whole interval.
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    pending = None;
                }
                let (Some(j), Some(t)) = (&job, &target) else { continue };
                let Some((en2, nonce)) = mine(j, t, &mut en2_counter) else { continue };
                next_id += 1;
                let params = serde_json::json!([
                    format!("soak.{i}"), j.job_id, hex::encode(&en2),
                    format!("{:08x}", j.ntime), format!("{nonce:08x}")
                ]);
                wr.write_all(send(next_id, "mining.submit", params).as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                c.submitted.fetch_add(1, Ordering::Relaxed);
                pending = Some((next_id, Instant::now()));
            }
            line = lines.next_line() => {
                let line = line.map_err(|e| e.to_string())?.ok_or("translator closed the connection")?;
                let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
                if v.get("method").is_none() {
                    let id = v["id"].as_u64().unwrap_or(0);
                    if id == 1 {
                        let r = &v["result"];
                        let e1 = r[1].as_str().and_then(|s| hex::decode(s).ok()).ok_or("no extranonce1")?;
                        en1 = Some((e1, r[2].as_u64().unwrap_or(0) as usize));
                    } else if id == 2 && v["result"] == serde_json::json!(true) && !counted {
                        counted = true;
                        c.connected.fetch_add(1, Ordering::Relaxed);
                    } else if let Some((pid, sent)) = pending.filter(|(p, _)| *p == id) {
                        let _ = pid;
                        pending = None;
                        let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                        if let Ok(mut l) = latencies.lock() { l.push(us); }
                        let counter = if v["result"] == serde_json::json!(true) { &c.accepted } else { &c.rejected };
                        counter.fetch_add(1, Ordering::Relaxed);
                        if Instant::now() >= stop_at {
                            return Ok(());
                        }
                    }
                    continue;
                }
                let msg: Message = serde_json::from_str(&line).map_err(|e| e.to_string())?;
                match Method::try_from(msg) {
                    Ok(Method::Server2Client(Server2Client::SetDifficulty(d))) => {
                        target = Some(target_from_difficulty(d.value));
                    }
                    Ok(Method::Server2Client(Server2Client::Notify(n))) => {
                        if let Some((e1, size)) = &en1 {
                            job = Some(Sv1Job::from_notify(&n, e1, *size)?);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Hashes until a share meets `target` (bounded, so a connection never hogs the CPU).
fn mine(job: &Sv1Job, target: &[u8; 32], counter: &mut u64) -> Option<(Vec<u8>, u32)> {
    for _ in 0..16 {
        *counter += 1;
        let en2: Vec<u8> = counter
            .to_le_bytes()
            .iter()
            .copied()
            .chain(std::iter::repeat(0))
            .take(job.extranonce2_size)
            .collect();
        for nonce in 0..(1u32 << 16) {
            if meets_target(&job.hash(&en2, nonce), target) {
                return Some((en2, nonce));
            }
        }
    }
    None
}

/// A data dir under the system temp dir for one soak run.
pub fn default_data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("hashpool-soak-{}", std::process::id()))
}

/// Removes a soak data dir (configs, databases, logs).
pub fn remove_data_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
