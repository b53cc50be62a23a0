//! `hashpool`: run any role, or the whole devnet stack.

use anyhow::Context;
use clap::{Parser, Subcommand};
use hashpool::config_file;
use hashpool::print_report;
use hashpool::{DevnetOptions, DevnetPorts, DevnetStack, StackConfigs};
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
    /// Run template provider, mint, pool, translator and CPU miners in one process, or
    /// `devnet init` to write one config per role for running them as separate processes.
    #[command(args_conflicts_with_subcommands = true)]
    Devnet {
        #[command(subcommand)]
        action: Option<DevnetAction>,
        #[command(flatten)]
        run: DevnetRunArgs,
    },
    /// Devnet template provider (regtest on libbitcoinkernel, SV2 TDP).
    TemplateProvider {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// The ehash mint (`mint -c F stats` inspects its database instead of serving).
    Mint {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
        #[command(subcommand)]
        action: Option<MintAction>,
    },
    /// The pool (`pool -c F stats` reads its share journal instead of serving).
    Pool {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
        #[command(subcommand)]
        action: Option<PoolAction>,
    },
    /// A standalone jd-server (SV2 job declaration; the pool lists its key in
    /// `trusted_jd_servers`).
    JdServer {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// The jd-client: declares the miner's own templates and mines them on the pool.
    JdClient {
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
    /// The translator's ehash wallet, offline (or `restore` from the mint).
    Wallet {
        /// The translator's config file.
        #[arg(short, long)]
        config: PathBuf,
        #[command(subcommand)]
        action: hashpool::wallet_cli::WalletAction,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        action: hashpool::bench_cli::BenchAction,
    },
    /// A CPU SV1 miner (`-c miner.toml`, or the flags).
    Miner {
        /// Config file (overrides the flags).
        #[arg(short, long)]
        config: Option<PathBuf>,
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

#[derive(clap::Args)]
struct DevnetRunArgs {
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
    /// Stop after this many blocks found, redeem the wallet's final-epoch ehash and print a
    /// JSON report.
    #[arg(long)]
    until_blocks: Option<u64>,
    /// Run the mint on this PostgreSQL database (e.g.
    /// `postgresql://user:password@127.0.0.1/hashpool`) instead of SQLite files.
    #[arg(long, value_name = "URL")]
    mint_db: Option<String>,
    /// Transactions of its own each template carries (the template provider first pre-mines
    /// 110 blocks whose coinbases they spend); 0: coinbase-only templates. Default 0, or 3
    /// with `--job-declaration`.
    #[arg(long)]
    mempool_txs: Option<u32>,
    /// Job declaration: a jd-server in the pool and a jd-client in front of the translator, so
    /// the blocks found are the jd-client's templates (with 3 transactions each unless
    /// `--mempool-txs` says otherwise).
    #[arg(long)]
    job_declaration: bool,
    #[command(flatten)]
    epochs: EpochArgs,
}

#[derive(Subcommand)]
enum DevnetAction {
    /// Write template-provider.toml, mint.toml, pool.toml, translator.toml and miner.toml
    /// (keys generated into each role's data dir) so every role can run as its own process.
    Init {
        /// Data directory (configs go here, each role's data in a subdirectory).
        #[arg(long, default_value = ".hashpool/devnet")]
        data_dir: PathBuf,
        /// First of nine consecutive ports (TP, mint link, mint HTTP, pool, SV1, pool metrics,
        /// TP RPC, mint metrics, translator metrics); default the fixed devnet ports.
        #[arg(long)]
        port_base: Option<u16>,
        /// Hashing threads of the miner.
        #[arg(long, default_value_t = 1)]
        threads: u32,
        /// Target seconds between blocks.
        #[arg(long, default_value_t = 10.0)]
        block_interval: f64,
        /// Shares per minute the pool's vardiff aims at, per channel.
        #[arg(long, default_value_t = 30.0)]
        shares_per_minute: f64,
        /// Put the mint on this PostgreSQL database instead of SQLite files.
        #[arg(long, value_name = "URL")]
        mint_db: Option<String>,
        /// Transactions of its own each template carries (0: coinbase-only templates). Default
        /// 0, or 3 with `--job-declaration`.
        #[arg(long)]
        mempool_txs: Option<u32>,
        /// Also write jd-client.toml, a jd-server in pool.toml, and point the translator at
        /// the jd-client.
        #[arg(long)]
        job_declaration: bool,
        #[command(flatten)]
        epochs: EpochArgs,
    },
    /// Orphan the last `--depth` blocks: the template provider mines a longer competing branch
    /// in its kernel (through its JSON-RPC, `hashpool_reorg`).
    Reorg {
        /// The template provider's config file.
        #[arg(short, long)]
        config: PathBuf,
        /// Blocks to orphan.
        #[arg(long, default_value_t = 1)]
        depth: u32,
    },
}

/// Epoch settings of a devnet.
#[derive(clap::Args, Clone, Copy)]
struct EpochArgs {
    /// Network blocks per epoch.
    #[arg(long, default_value_t = 5)]
    epoch_blocks: u32,
    /// Epochs a found block pays.
    #[arg(long, default_value_t = 2)]
    accrual_epochs: u32,
    /// Confirmations until a block's reward counts.
    #[arg(long, default_value_t = 3)]
    maturity: u32,
}

#[derive(Subcommand)]
enum MintAction {
    /// Issued total and signature count from the mint's database.
    Stats {
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The mint's admin API (address and token from the config / data dir).
    Admin {
        #[command(subcommand)]
        action: hashpool::admin_cli::MintAdminAction,
    },
}

#[derive(Subcommand)]
enum PoolAction {
    /// Ehash shares the pool acknowledged (durable totals) and requests still open.
    Stats {
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The pool's admin API (address and token from the config / data dir).
    Admin {
        #[command(subcommand)]
        action: hashpool::admin_cli::PoolAdminAction,
    },
}

/// Resolves on Ctrl-C or SIGTERM (service managers stop roles with SIGTERM).
async fn ctrl_c() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
            return;
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => if let Err(e) = r {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        },
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}

async fn run_devnet(opts: DevnetOptions, until_blocks: Option<u64>) -> anyhow::Result<()> {
    let mut stack = DevnetStack::start(&opts).await?;
    // One line per URL on stderr, before any log noise, so a newcomer can click through.
    for (name, url) in &stack.urls {
        eprintln!("{name:<26} {url}");
    }
    eprintln!(
        "{:<26} stratum+tcp://{}",
        "SV1 for miners", stack.translator.sv1_addr
    );
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

/// Templates carry transactions of their own by default only with job declaration, whose point
/// is choosing them.
fn default_mempool_txs(job_declaration: bool) -> u32 {
    if job_declaration {
        3
    } else {
        0
    }
}

async fn run_until_ctrl_c<F: std::future::Future<Output = ()>>(shutdown: F) {
    ctrl_c().await;
    shutdown.await;
}

/// Everything a role creates (databases, journals, cookies, key files) is readable by its owner
/// only: the databases hold signatures, proofs and wallet secrets.
fn owner_only_files() {
    // SAFETY: umask only sets the process-wide file-creation mask; it cannot fail, touches no
    // memory, and runs before the role opens any file.
    unsafe {
        libc::umask(0o077);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    owner_only_files();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Devnet {
            action:
                Some(DevnetAction::Init {
                    data_dir,
                    port_base,
                    threads,
                    block_interval,
                    shares_per_minute,
                    mint_db,
                    mempool_txs,
                    job_declaration,
                    epochs,
                }),
            ..
        } => {
            // Absolute paths: the configs work from any working directory.
            let data_dir = std::path::absolute(&data_dir)
                .with_context(|| format!("data dir {}", data_dir.display()))?;
            let opts = DevnetOptions {
                data_dir: data_dir.clone(),
                threads,
                block_interval_secs: block_interval,
                shares_per_minute,
                mint_db,
                mempool_txs: mempool_txs.unwrap_or(default_mempool_txs(job_declaration)),
                job_declaration,
                epoch_blocks: epochs.epoch_blocks,
                accrual_epochs: epochs.accrual_epochs,
                maturity: epochs.maturity,
                ..Default::default()
            };
            let ports = port_base.map_or(DevnetPorts::FIXED, DevnetPorts::from_base);
            let written = StackConfigs::generate(&opts, ports)?.write(&data_dir)?;
            for path in written {
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Devnet {
            action: Some(DevnetAction::Reorg { config, depth }),
            ..
        } => {
            let tp: hashpool_devnet::TemplateProviderConfig = config_file::load(&config)?;
            let rpc = tp
                .rpc_listen
                .with_context(|| format!("{}: `rpc_listen` is not set", config.display()))?;
            let client = hashpool_pool::chain_view::BitcoinRpc::new(
                hashpool_pool::chain_view::ChainRpcConfig {
                    url: format!("http://{rpc}"),
                    cookie_file: Some(tp.data_dir.join(hashpool_devnet::rpc::COOKIE_FILE)),
                    user: None,
                    password: None,
                },
            );
            let answer = client
                .call("hashpool_reorg", serde_json::json!([depth]))
                .await
                .context("devnet reorg")?;
            println!("{answer}");
            Ok(())
        }
        Command::Devnet { action: None, run } => {
            let opts = DevnetOptions {
                data_dir: run.data_dir,
                miners: run.miners,
                threads: run.threads,
                block_interval_secs: run.block_interval,
                epoch_blocks: run.epochs.epoch_blocks,
                accrual_epochs: run.epochs.accrual_epochs,
                maturity: run.epochs.maturity,
                mint_db: run.mint_db,
                mempool_txs: run
                    .mempool_txs
                    .unwrap_or(default_mempool_txs(run.job_declaration)),
                job_declaration: run.job_declaration,
                ..Default::default()
            };
            run_devnet(opts, run.until_blocks).await
        }
        Command::JdServer { config } => {
            let h = hashpool_jd_server::start(config_file::load(&config)?)
                .await
                .context("jd-server")?;
            run_until_ctrl_c(h.shutdown()).await;
            Ok(())
        }
        Command::JdClient { config } => {
            let h = hashpool_jd_client::start(config_file::load(&config)?)
                .await
                .context("jd-client")?;
            run_until_ctrl_c(h.shutdown()).await;
            Ok(())
        }
        Command::TemplateProvider { config } => {
            let h = hashpool_devnet::start(config_file::load(&config)?)
                .await
                .context("template provider")?;
            run_until_ctrl_c(h.shutdown()).await;
            Ok(())
        }
        Command::Mint {
            config,
            action: Some(MintAction::Stats { json }),
        } => {
            let config: hashpool_mint::MintConfig = config_file::load(&config)?;
            let url = config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.http_listen));
            let ledger = hashpool_mint::EhashLedger::inspect(&config, &url)
                .await
                .context("open the mint database")?;
            let stats = ledger.stats().await?;
            print_report(
                &stats,
                json,
                &format!("issued={} signatures={}", stats.issued, stats.signatures),
            )
        }
        Command::Mint {
            config,
            action: Some(MintAction::Admin { action }),
        } => hashpool::admin_cli::mint(&config_file::load(&config)?, action).await,
        Command::Mint {
            config,
            action: None,
        } => {
            let h = hashpool_mint::start(config_file::load(&config)?)
                .await
                .context("mint")?;
            run_until_ctrl_c(h.shutdown()).await;
            Ok(())
        }
        Command::Pool {
            config,
            action: Some(PoolAction::Stats { json }),
        } => {
            let config: hashpool_pool::PoolConfig = config_file::load(&config)?;
            let path = config.data_dir.join(hashpool_pool::JOURNAL_FILE);
            let t = hashpool_pool::journal::ShareJournal::totals_at(&path)?;
            let text = format!(
                "accepted_shares={} accepted_amount={} open={}",
                t.accepted_shares, t.accepted_amount, t.open
            );
            print_report(&t, json, &text)
        }
        Command::Pool {
            config,
            action: Some(PoolAction::Admin { action }),
        } => hashpool::admin_cli::pool(&config_file::load(&config)?, action).await,
        Command::Pool {
            config,
            action: None,
        } => {
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
        Command::Bench { action } => hashpool::bench_cli::run(action).await,
        Command::Wallet { config, action } => {
            let config: hashpool_translator::TranslatorConfig = config_file::load(&config)?;
            hashpool::wallet_cli::run(&config, action).await
        }
        Command::Miner {
            config,
            url,
            user,
            threads,
        } => {
            let opts = match config {
                Some(path) => config_file::load(&path)?,
                None => hashpool_miner::MinerOptions {
                    url,
                    user,
                    threads,
                    metrics_listen: None,
                },
            };
            let stop = CancellationToken::new();
            let stats = std::sync::Arc::new(hashpool_miner::MinerStats::default());
            let mut tasks = Vec::new();
            let metrics_addr = hashpool_miner::metrics::serve(
                opts.metrics_listen,
                stats.clone(),
                stop.clone(),
                &mut tasks,
            )
            .await
            .context("miner metrics_listen")?;
            tracing::info!(url = %opts.url, ?metrics_addr, "miner started");
            tasks.push(tokio::spawn(hashpool_miner::run(opts, stats, stop.clone())));
            ctrl_c().await;
            stop.cancel();
            for t in tasks {
                let _ = t.await;
            }
            Ok(())
        }
    }
}
