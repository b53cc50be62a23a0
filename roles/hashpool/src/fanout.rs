//! `hashpool bench fanout`: how fast a new block reaches every channel, and what a channel
//! costs the pool.
//!
//! The template provider, mint and pool run as separate processes (the devnet configs, no
//! translator, no miner). This process opens `channels` extended channels over Noise
//! connections of `per_connection` channels each and waits until every channel has its first
//! job; the pool's resident memory before and after gives the memory per channel. Then, each
//! round, the template provider mines one block on its tip (RPC `hashpool_reorg` with depth 0)
//! and the clock runs from that call to the `SetNewPrevHash` arriving on the last channel.

use crate::process_stack::{prepare_stack_dir, ProcessError, RoleProcesses};
use crate::stack_configs::{DevnetPorts, StackConfigs};
use crate::DevnetOptions;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use stratum_core::common_messages_sv2::Protocol;
use stratum_core::mining_sv2::OpenExtendedMiningChannelOwned;
use stratum_core::parsers_sv2::{Mining, MiningOwned};
use sv2_io::{AuthorityPublicKey, FrameReader, FrameSender};
use tokio::sync::mpsc;

/// Options of a fan-out run.
#[derive(Debug, Clone)]
pub struct FanoutOptions {
    /// The `hashpool` executable that runs the roles.
    pub binary: PathBuf,
    /// Channels to open.
    pub channels: u32,
    /// Channels per connection (the pool allows 64).
    pub per_connection: u32,
    /// New blocks to time.
    pub rounds: u32,
    /// Directory for configs, data and logs.
    pub data_dir: PathBuf,
}

/// What a fan-out run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FanoutReport {
    /// Channels open.
    pub channels: u32,
    /// Connections they use.
    pub connections: u32,
    /// Seconds to open them all (handshakes included).
    pub open_secs: f64,
    /// Pool resident memory before the channels (KiB).
    pub rss_before_kib: u64,
    /// Pool resident memory with every channel open (KiB).
    pub rss_after_kib: u64,
    /// (after − before) / channels, bytes.
    pub bytes_per_channel: u64,
    /// Per round: ms from the block RPC call to the last channel's `SetNewPrevHash`.
    pub last_channel_ms: Vec<f64>,
    /// Per round: ms to the median channel.
    pub median_channel_ms: Vec<f64>,
    /// Per round: ms to the first channel (RPC, kernel validation and TDP hop included).
    pub first_channel_ms: Vec<f64>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    /// A role process.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// Configs.
    #[error(transparent)]
    Configs(#[from] crate::stack_configs::StackConfigError),
    /// A link or protocol failure.
    #[error("{0}")]
    Client(String),
    /// Block RPC.
    #[error("template provider RPC: {0}")]
    Rpc(String),
}

fn client<E: std::fmt::Display>(e: E) -> FanoutError {
    FanoutError::Client(e.to_string())
}

/// Runs the stack, measures, stops it.
pub async fn run(o: &FanoutOptions) -> Result<FanoutReport, FanoutError> {
    let base = prepare_stack_dir(&o.data_dir)?;
    let opts = DevnetOptions {
        data_dir: o.data_dir.clone(),
        miners: 0,
        // Blocks come only from the RPC: no share ever meets this interval's target.
        block_interval_secs: 1e9,
        ..Default::default()
    };
    let configs = StackConfigs::generate(&opts, DevnetPorts::from_base(base))?;
    configs.write(&o.data_dir)?;
    let mut stack = RoleProcesses::new(&o.binary, &o.data_dir, "warn");
    stack
        .spawn_in_order(&["template-provider", "mint", "pool"])
        .await?;
    let result = measure(o, &configs, &stack).await;
    let stopped = stack.stop_all().await;
    let report = result?;
    stopped?;
    Ok(report)
}

/// One connection's channels, each with its first work received.
async fn open_connection(
    pool: &str,
    authority: &AuthorityPublicKey,
    channels: u32,
    first_index: u32,
) -> Result<(FrameReader, FrameSender), FanoutError> {
    let (mut reader, sender) =
        sv2_io::connect_with_setup(pool, authority, Protocol::MiningProtocol, 0)
            .await
            .map_err(client)?;
    for i in 0..channels {
        let open = MiningOwned::OpenExtendedMiningChannel(OpenExtendedMiningChannelOwned {
            request_id: i,
            user_identity: format!("fanout-{}", first_index + i)
                .try_into()
                .map_err(|e| client(format!("{e:?}")))?,
            nominal_hash_rate: 1.0,
            max_target: [0xff; 32].into(),
            min_extranonce_size: 4,
        });
        sender
            .send(sv2_io::frame::encode_standard(open).map_err(client)?)
            .await
            .map_err(client)?;
    }
    // Every channel gets its success, a job and the prev hash.
    let mut ready = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready < channels {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut f = tokio::time::timeout(left, reader.next())
            .await
            .map_err(|_| client("channels got no work within 60 s"))?
            .map_err(client)?;
        let h = f.header();
        if h.ext_type_without_channel_msg() != 0 {
            continue;
        }
        match Mining::try_from((h.msg_type(), f.payload())) {
            Ok(Mining::SetNewPrevHash(_)) => ready += 1,
            Ok(Mining::OpenMiningChannelError(e)) => {
                return Err(client(format!("channel refused: {e:?}")))
            }
            _ => {}
        }
    }
    Ok((reader, sender))
}

/// Reports the arrival time of every `SetNewPrevHash` until the connection closes.
async fn watch_prev_hashes(mut reader: FrameReader, arrivals: mpsc::UnboundedSender<Instant>) {
    while let Ok(mut f) = reader.next().await {
        let h = f.header();
        if h.ext_type_without_channel_msg() == 0
            && matches!(
                Mining::try_from((h.msg_type(), f.payload())),
                Ok(Mining::SetNewPrevHash(_))
            )
            && arrivals.send(Instant::now()).is_err()
        {
            return;
        }
    }
}

/// Has the template provider mine one block on its tip.
async fn mine_block(url: &str, cookie: &std::path::Path) -> Result<(), FanoutError> {
    use base64::Engine;
    let cookie = std::fs::read_to_string(cookie).map_err(|e| FanoutError::Rpc(e.to_string()))?;
    let auth = base64::engine::general_purpose::STANDARD.encode(cookie.trim());
    let body =
        serde_json::json!({"jsonrpc": "1.0", "id": 1, "method": "hashpool_reorg", "params": [0]});
    let r = bitreq::post(url)
        .with_header("Authorization", format!("Basic {auth}"))
        .with_header("Content-Type", "application/json")
        .with_body(body.to_string())
        .with_timeout(30)
        .send_async()
        .await
        .map_err(|e| FanoutError::Rpc(e.to_string()))?;
    if r.status_code != 200 {
        return Err(FanoutError::Rpc(format!(
            "HTTP {}: {}",
            r.status_code,
            String::from_utf8_lossy(r.as_bytes())
        )));
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

async fn measure(
    o: &FanoutOptions,
    configs: &StackConfigs,
    stack: &RoleProcesses,
) -> Result<FanoutReport, FanoutError> {
    let pool = configs.pool.listen.to_string();
    let authority: AuthorityPublicKey =
        configs.translator.pool_authority.parse().map_err(client)?;
    let rpc_url = format!(
        "http://{}",
        configs
            .template_provider
            .rpc_listen
            .ok_or_else(|| FanoutError::Rpc("no rpc_listen".into()))?
    );
    let cookie = configs
        .template_provider
        .data_dir
        .join(hashpool_devnet::rpc::COOKIE_FILE);
    // The pool is ready once a first connection gets work.
    let deadline = Instant::now() + Duration::from_secs(60);
    let probe = loop {
        match open_connection(&pool, &authority, 1, u32::MAX - 1).await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    };
    drop(probe);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before_kib = stack.rss_kib("pool").unwrap_or(0);

    let per = o.per_connection.clamp(1, 64);
    let (arrivals_tx, mut arrivals) = mpsc::unbounded_channel();
    let mut senders = Vec::new();
    let started = Instant::now();
    let mut opened = 0u32;
    while opened < o.channels {
        // A few connections at a time: the pool's accept loop and our handshakes share 2 cores.
        let mut batch = Vec::new();
        for _ in 0..16 {
            if opened >= o.channels {
                break;
            }
            let n = per.min(o.channels - opened);
            batch.push(open_connection(&pool, &authority, n, opened));
            opened += n;
        }
        for r in futures_util::future::join_all(batch).await {
            let (reader, sender) = r?;
            tokio::spawn(watch_prev_hashes(reader, arrivals_tx.clone()));
            senders.push(sender);
        }
    }
    let open_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after_kib = stack.rss_kib("pool").unwrap_or(0);

    let mut report = FanoutReport {
        channels: o.channels,
        connections: senders.len() as u32,
        open_secs,
        rss_before_kib,
        rss_after_kib,
        bytes_per_channel: rss_after_kib.saturating_sub(rss_before_kib) * 1024
            / u64::from(o.channels.max(1)),
        ..Default::default()
    };
    for _ in 0..o.rounds.max(1) {
        while arrivals.try_recv().is_ok() {}
        let t0 = Instant::now();
        mine_block(&rpc_url, &cookie).await?;
        let mut times = Vec::with_capacity(o.channels as usize);
        let deadline = t0 + Duration::from_secs(60);
        while times.len() < o.channels as usize {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, arrivals.recv()).await {
                Ok(Some(t)) => times.push(t.duration_since(t0)),
                _ => {
                    return Err(client(format!(
                        "only {} of {} channels got the new block",
                        times.len(),
                        o.channels
                    )))
                }
            }
        }
        times.sort();
        report.first_channel_ms.push(ms(times[0]));
        report.median_channel_ms.push(ms(times[times.len() / 2]));
        report.last_channel_ms.push(ms(times[times.len() - 1]));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(senders);
    Ok(report)
}
