//! `hashpool`: run any role, or the whole devnet stack.

use anyhow::Context;
use clap::{Parser, Subcommand};
use hashpool::config_file;
use hashpool::{DevnetOptions, DevnetStack};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "hashpool",
    version,
    about = "Stratum V2 mining pool that pays shares in ehash"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run template provider, mint, pool, translator and CPU miners in one process.
    Devnet {
        /// Data directory.
        #[arg(long, default_value = ".hashpool/devnet")]
        data_dir: PathBuf,
        /// CPU miners.
        #[arg(long, default_value_t = 1)]
        miners: u32,
        /// Hashing threads per miner.
        #[arg(long, default_value_t = 1)]
        threads: u32,
        /// Target seconds between blocks.
        #[arg(long, default_value_t = 10.0)]
        block_interval: f64,
        /// Stop after this many blocks found and print a JSON report.
        #[arg(long)]
        until_blocks: Option<u64>,
    },
    /// Devnet template provider (regtest on libbitcoinkernel, SV2 TDP).
    TemplateProvider {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// The ehash mint.
    Mint {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// The pool.
    Pool {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// The translator (SV1 server, SV2 upstream, ehash wallet).
    Translator {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// A CPU SV1 miner.
    Miner {
        /// Translator address.
        #[arg(long, default_value = "127.0.0.1:34255")]
        url: String,
        /// Worker name.
        #[arg(long, default_value = "cpu-miner")]
        user: String,
        /// Hashing threads.
        #[arg(long, default_value_t = 1)]
        threads: u32,
    },
}

async fn ctrl_c() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::error!(error = %e, "cannot listen for Ctrl-C");
        std::future::pending::<()>().await;
    }
}

async fn run_devnet(opts: DevnetOptions, until_blocks: Option<u64>) -> anyhow::Result<()> {
    let mut stack = DevnetStack::start(&opts).await?;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let (mut last_hashes, mut last_time) = (stack.total_hashes(), Instant::now());
    loop {
        tokio::select! {
            _ = ctrl_c() => break,
            _ = tick.tick() => {
                let hashes = stack.total_hashes();
                let rate = (hashes - last_hashes) as f64 / last_time.elapsed().as_secs_f64().max(0.001);
                (last_hashes, last_time) = (hashes, Instant::now());
                tracing::info!("{}", stack.status_line(rate).await);
            }
            _ = tokio::time::sleep(Duration::from_millis(250)), if until_blocks.is_some() => {
                if until_blocks.is_some_and(|n| stack.blocks_found() >= n) { break; }
            }
        }
    }
    if until_blocks.is_some() {
        stack.quiesce(Duration::from_secs(20)).await;
        let report = stack.report().await?;
        stack.shutdown().await;
        println!("{}", serde_json::to_string(&report)?);
    } else {
        stack.shutdown().await;
    }
    Ok(())
}

async fn run_until_ctrl_c<F: std::future::Future<Output = ()>>(shutdown: F) {
    ctrl_c().await;
    shutdown.await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Devnet {
            data_dir,
            miners,
            threads,
            block_interval,
            until_blocks,
        } => {
            let opts = DevnetOptions {
                data_dir,
                miners,
                threads,
                block_interval_secs: block_interval,
                ..Default::default()
            };
            run_devnet(opts, until_blocks).await
        }
        Command::TemplateProvider { config } => {
            let h = hashpool_devnet::start(config_file::load(&config)?)
                .await
                .context("template provider")?;
            run_until_ctrl_c(h.shutdown()).await;
            Ok(())
        }
        Command::Mint { config } => {
            let h = hashpool_mint::start(config_file::load(&config)?)
                .await
                .context("mint")?;
            run_until_ctrl_c(h.shutdown()).await;
            Ok(())
        }
        Command::Pool { config } => {
            let h = hashpool_pool::start(config_file::load(&config)?)
                .await
                .context("pool")?;
            run_until_ctrl_c(h.shutdown()).await;
            Ok(())
        }
        Command::Translator { config } => {
            let h = hashpool_translator::start(config_file::load(&config)?)
                .await
                .context("translator")?;
            run_until_ctrl_c(h.shutdown()).await;
            Ok(())
        }
        Command::Miner { url, user, threads } => {
            let stop = CancellationToken::new();
            let stats = std::sync::Arc::new(hashpool_miner::MinerStats::default());
            let task = tokio::spawn(hashpool_miner::run(
                hashpool_miner::MinerOptions { url, user, threads },
                stats,
                stop.clone(),
            ));
            ctrl_c().await;
            stop.cancel();
            let _ = task.await;
            Ok(())
        }
    }
}
