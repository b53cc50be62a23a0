//! `hashpool bench pipeline`: the real template provider, mint and pool in this process, driven
//! by synthetic SV2 clients (real Noise over loopback) that submit valid shares, each carrying a
//! blinded message, as fast as the stack takes them (or at an offered rate). Reports accepted
//! shares/s, signatures/s, share-to-signature latency, CPU cores used, and — measured in the
//! same run — the lean limit: one core doing nothing but header sha256d + k·B_ + DLEQ with the
//! key cached.

pub mod client;
mod drive;
pub mod pin;

use crate::stack_configs::{DevnetPorts, StackConfigs};
use crate::DevnetOptions;
use anyhow::Context;
use drive::Driven;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Options of a pipeline run.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Shares to submit in total.
    pub shares: u64,
    /// Channels (one client connection each).
    pub channels: u32,
    /// Threads the mint signs with.
    pub sign_threads: u32,
    /// Offered shares/s over all channels (0: as fast as the stack accepts).
    pub rate: f64,
    /// Shares a channel may have waiting for their signature.
    pub window: u32,
    /// Data directory (removed first).
    pub data_dir: PathBuf,
    /// PostgreSQL URL of an empty database for the mint; SQLite files if absent.
    pub mint_db: Option<String>,
    /// Give each signing thread a core of its own and the rest of the process the others.
    pub pin: bool,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineReport {
    /// Shares submitted.
    pub shares: u64,
    /// Channels.
    pub channels: u32,
    /// Mint signing threads.
    pub sign_threads: u32,
    /// Offered rate (0 = unbounded).
    pub offered_per_s: f64,
    /// Shares the pool accepted.
    pub accepted: u64,
    /// Signatures the clients received.
    pub signed: u64,
    /// Shares the pool rejected.
    pub rejected: u64,
    /// Ehash refusals.
    pub refused: u64,
    /// Seconds from the first share to the last signature.
    pub elapsed_s: f64,
    /// Accepted shares per second.
    pub shares_per_s: f64,
    /// Signatures per second.
    pub signatures_per_s: f64,
    /// Median share-to-signature latency, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Slowest, µs.
    pub max_us: u64,
    /// Median share-to-`SubmitSharesSuccess` latency (the pool's journal commit), µs.
    pub ack_p50_us: u64,
    /// Its 99th percentile, µs.
    pub ack_p99_us: u64,
    /// CPU time of this process over the run, in cores.
    pub cpu_cores: f64,
    /// Shares/s of the lean single-core loop: the mean of the measurements before and after.
    pub limit_per_s: f64,
    /// The lean limit measured before the run.
    pub limit_before_per_s: f64,
    /// The lean limit measured after the run.
    pub limit_after_per_s: f64,
    /// `shares_per_s / limit_per_s`.
    pub ratio: f64,
    /// Signing batches the mint committed.
    pub mint_batches: u64,
    /// Mean time of one signing batch, µs (database transaction included).
    pub mint_batch_us: u64,
    /// Cores of the signing threads and of the rest, with `--pin`.
    pub pinning: Option<pin::Pinning>,
}

/// CPU seconds (user + system) this process used so far, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; USER_HZ 100.
    (ticks(11) + ticks(12)) / 100.0
}

/// Percentile `p` of sorted latencies.
pub fn percentile(sorted: &[u32], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    u64::from(sorted[i.min(sorted.len() - 1)])
}

/// Shares/s of one core doing only header sha256d + k·B_ + DLEQ (key cached) for `duration`.
pub fn lean_limit(duration: Duration) -> anyhow::Result<f64> {
    use cdk::nuts::{Id, SecretKey};
    use stratum_core::bitcoin::hashes::{sha256d, Hash};
    let id: Id = "00ffffffffffffff".parse()?;
    let a = SecretKey::generate();
    let a_pub = a.public_key();
    let g = SecretKey::generate().public_key();
    let mut b = SecretKey::generate().public_key();
    let mut header = [7u8; 80];
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed() < duration {
        for _ in 0..64 {
            header[76..80].copy_from_slice(&(n as u32).to_le_bytes());
            let h = sha256d::Hash::hash(&header);
            std::hint::black_box(h);
            b = b.combine(&g).map(Into::into).unwrap_or(b);
            let sig = hashpool_mint::dleq::sign(cdk::Amount::from(1u64), id, &b, &a, &a_pub)?;
            std::hint::black_box(sig);
            n += 1;
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The lean limit on this machine now; pinned, on the core the signing thread has.
async fn measure_limit(o: &PipelineOptions) -> anyhow::Result<f64> {
    let core = o.pin.then(|| pin::signing_cores(o.sign_threads)).flatten();
    tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
        let _pinned = match core {
            Some(core) => Some(pin::PinnedHere::to(core).context("pin the lean loop")?),
            None => None,
        };
        lean_limit(Duration::from_millis(1500))
    })
    .await?
}

/// Runs the benchmark.
pub async fn run(o: &PipelineOptions) -> anyhow::Result<PipelineReport> {
    anyhow::ensure!(o.channels > 0, "--channels must be at least 1");
    anyhow::ensure!(
        o.shares >= u64::from(o.channels),
        "--shares must be at least --channels"
    );
    let limit_before = measure_limit(o).await?;
    let _ = std::fs::remove_dir_all(&o.data_dir);
    let opts = DevnetOptions {
        data_dir: o.data_dir.clone(),
        // Every other hash is a share worth 1 HASH; vardiff never makes it harder; no blocks.
        share_unit_log2: 1,
        shares_per_minute: 1e12,
        vardiff_interval_secs: 3600.0,
        block_interval_secs: 1e6,
        initial_block_hashes: 1e30,
        epoch_blocks: 1_000_000,
        mint_db: o.mint_db.clone(),
        ..Default::default()
    };
    let mut configs = StackConfigs::generate(&opts, DevnetPorts::EPHEMERAL)?;
    configs.mint.sign_threads = o.sign_threads.max(1);
    configs.pool.metrics_listen = None;
    let tp = hashpool_devnet::start(configs.template_provider.clone()).await?;
    let mint = hashpool_mint::start(configs.mint.clone()).await?;
    configs.pool.tp_address = tp.addr.to_string();
    configs.pool.mint_address = mint.link_addr.to_string();
    configs.pool.chain_rpc = None;
    let pool = hashpool_pool::start(configs.pool.clone()).await?;
    let pool_addr = pool.addr.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pool.mint.is_up() {
        anyhow::ensure!(Instant::now() < deadline, "the pool never reached the mint");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every thread exists now but the clients', which inherits the pinning of its spawner.
    let pinning = if o.pin {
        Some(pin::pin_threads(o.sign_threads).context("pin threads to cores")?)
    } else {
        None
    };
    // The clients get a thread and runtime of their own, as miners would be other processes:
    // their tasks do not queue behind the pool's and the mint's.
    let driven = {
        let (o, addr, authority) = (o.clone(), pool_addr.clone(), pool.authority);
        tokio::task::spawn_blocking(move || -> anyhow::Result<Driven> {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(drive::drive(&o, &addr, &authority))
        })
        .await??
    };
    let Driven {
        counters,
        latencies,
        elapsed,
        cpu,
    } = driven;
    let batches = mint.ledger.counters.commits.load(Ordering::Relaxed);
    let batch_micros = mint.ledger.counters.batch_micros.load(Ordering::Relaxed);
    pool.shutdown().await;
    mint.shutdown().await;
    tp.shutdown().await;
    // The machine's speed drifts (a VM shares its host): the limit is the mean of a
    // measurement before the run and one after it.
    let limit_after = measure_limit(o).await?;
    let limit = (limit_before + limit_after) / 2.0;
    let (mut lat, mut ack) = latencies
        .lock()
        .map(|l| (l.signature.clone(), l.ack.clone()))
        .unwrap_or_default();
    lat.sort_unstable();
    ack.sort_unstable();
    let accepted = counters.accepted.load(Ordering::Relaxed);
    let signed = counters.signed.load(Ordering::Relaxed);
    let shares_per_s = accepted as f64 / elapsed;
    Ok(PipelineReport {
        shares: o.shares,
        channels: o.channels,
        sign_threads: o.sign_threads.max(1),
        offered_per_s: o.rate,
        accepted,
        signed,
        rejected: counters.rejected.load(Ordering::Relaxed),
        refused: counters.refused.load(Ordering::Relaxed),
        elapsed_s: elapsed,
        shares_per_s,
        signatures_per_s: signed as f64 / elapsed,
        p50_us: percentile(&lat, 0.50),
        p90_us: percentile(&lat, 0.90),
        p99_us: percentile(&lat, 0.99),
        p999_us: percentile(&lat, 0.999),
        max_us: lat.last().map(|&v| u64::from(v)).unwrap_or(0),
        ack_p50_us: percentile(&ack, 0.50),
        ack_p99_us: percentile(&ack, 0.99),
        cpu_cores: cpu / elapsed,
        limit_per_s: limit,
        limit_before_per_s: limit_before,
        limit_after_per_s: limit_after,
        ratio: shares_per_s / limit,
        mint_batches: batches,
        mint_batch_us: batch_micros.checked_div(batches).unwrap_or(0),
        pinning,
    })
}
