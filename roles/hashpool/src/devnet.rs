//! `hashpool devnet`: template provider, mint, pool, translator and CPU miners in one process,
//! talking over loopback TCP with Noise exactly as separate processes would.

use crate::stack_configs::{DevnetPorts, StackConfigs};
use hashpool_devnet::TemplateProviderHandle;
use hashpool_miner::{MinerOptions, MinerStats};
use hashpool_mint::MintHandle;
use hashpool_pool::PoolHandle;
use hashpool_translator::TranslatorHandle;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Options of the devnet stack.
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    /// Root data directory.
    pub data_dir: PathBuf,
    /// CPU miners to start.
    pub miners: u32,
    /// Hashing threads per miner.
    pub threads: u32,
    /// Target seconds between blocks.
    pub block_interval_secs: f64,
    /// Expected hashes per block at start.
    pub initial_block_hashes: f64,
    /// log2 of expected hashes per HASH.
    pub share_unit_log2: u8,
    /// Shares per minute vardiff aims at.
    pub shares_per_minute: f64,
    /// Seconds between vardiff checks.
    pub vardiff_interval_secs: f64,
    /// Bind everything to port 0 (tests) instead of the fixed devnet ports.
    pub ephemeral_ports: bool,
    /// Network blocks per epoch.
    pub epoch_blocks: u32,
    /// Epochs a found block pays.
    pub accrual_epochs: u32,
    /// Confirmations until a found block's reward counts.
    pub maturity: u32,
    /// Pool fee, parts per million.
    pub pool_fee_ppm: u32,
    /// Seconds a buyback quote stays valid.
    pub buyback_quote_secs: u64,
    /// PostgreSQL URL of the mint's database; SQLite in the mint's data dir if absent.
    pub mint_db: Option<String>,
    /// Transactions of its own each template carries (0: coinbase-only).
    pub mempool_txs: u32,
    /// Run a jd-client in front of the translator and a jd-server in the pool: the blocks
    /// found are the jd-client's templates (job declaration).
    pub job_declaration: bool,
}

impl Default for DevnetOptions {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".hashpool/devnet"),
            miners: 1,
            threads: 1,
            block_interval_secs: 10.0,
            initial_block_hashes: 4_000_000.0,
            share_unit_log2: 12,
            shares_per_minute: 30.0,
            vardiff_interval_secs: 5.0,
            ephemeral_ports: false,
            epoch_blocks: 5,
            accrual_epochs: 2,
            maturity: 3,
            pool_fee_ppm: 20_000,
            buyback_quote_secs: 60,
            mint_db: None,
            mempool_txs: 0,
            job_declaration: false,
        }
    }
}

/// The JSON line `hashpool devnet --until-blocks` ends with.
#[derive(Debug, Clone, Serialize)]
pub struct DevnetReport {
    /// Shares the pool accepted.
    pub shares_accepted: u64,
    /// Sum of ehash amounts of accepted shares the pool sent to the mint.
    pub ehash_accepted: u64,
    /// The mint's own issued total.
    pub ehash_issued: u64,
    /// The wallet's balance.
    pub wallet_balance: u64,
    /// Proofs in the wallet.
    pub wallet_proofs: u64,
    /// Wallet proofs whose DLEQ verified.
    pub wallet_proofs_dleq_ok: u64,
    /// Blocks found by the pool.
    pub blocks_found: u64,
    /// The kernel's active height.
    pub chain_height: u32,
    /// Wallet proofs the mint reported UNSPENT (HTTP checkstate).
    pub unspent_checked: u64,
    /// Epochs whose rate is fixed.
    pub epochs_final: u64,
    /// Ehash of final epochs the wallet redeemed at the end of the run.
    pub ehash_redeemed: u64,
    /// Sats that redemption paid.
    pub sats_redeemed: u64,
    /// Rewards of matured blocks found by the pool, sats.
    pub matured_rewards_sats: u64,
    /// Sats the mint ever issued (redemptions and buybacks).
    pub sats_issued: u64,
    /// The mint's proof of liabilities balances: final credits ≤ matured rewards − fees.
    pub solvent: bool,
    /// Transactions beyond the coinbase in the blocks the kernel accepted.
    pub block_txs: u64,
    /// Their fees, sats (part of the rewards the pool recorded).
    pub block_fees_sats: u64,
    /// Jobs the jd-server accepted from the jd-client (`--job-declaration`).
    pub declared_jobs: u64,
    /// Custom jobs the pool set on the jd-client's channels.
    pub custom_jobs: u64,
}

/// A running stack.
pub struct DevnetStack {
    /// Template provider.
    pub tp: TemplateProviderHandle,
    /// Mint.
    pub mint: MintHandle,
    /// Pool.
    pub pool: PoolHandle,
    /// Translator.
    pub translator: TranslatorHandle,
    /// The jd-client between translator and pool (`--job-declaration`).
    pub jd_client: Option<hashpool_jd_client::JdClientHandle>,
    /// Miner counters.
    pub miner_stats: Vec<Arc<MinerStats>>,
    /// Dashboards, mint API, `/metrics` and `/health` of every role, as `(name, url)`.
    pub urls: Vec<(&'static str, String)>,
    miners_stop: CancellationToken,
    miner_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl DevnetStack {
    /// Starts every role.
    pub async fn start(o: &DevnetOptions) -> anyhow::Result<Self> {
        let ports = if o.ephemeral_ports {
            DevnetPorts::EPHEMERAL
        } else {
            DevnetPorts::FIXED
        };
        let mut c = StackConfigs::generate(o, ports)?;
        let tp = hashpool_devnet::start(c.template_provider.clone()).await?;
        let mint = hashpool_mint::start(c.mint.clone()).await?;
        // With ephemeral ports, peers learn the addresses the OS picked.
        c.pool.tp_address = tp.addr.to_string();
        c.pool.mint_address = mint.link_addr.to_string();
        if let (Some(rpc), Some(chain)) = (tp.rpc_addr, c.pool.chain_rpc.as_mut()) {
            chain.url = format!("http://{rpc}");
        }
        let pool = hashpool_pool::start(c.pool.clone()).await?;
        c.translator.pool_address = pool.addr.to_string();
        let jd_client = match (c.jd_client.as_mut(), pool.jd_server.as_ref()) {
            (Some(jdc), Some(jds)) => {
                jdc.pool_address = pool.addr.to_string();
                jdc.jd_server_address = jds.addr.to_string();
                jdc.tp_address = tp.addr.to_string();
                let handle = hashpool_jd_client::start(jdc.clone()).await?;
                c.translator.pool_address = handle.addr.to_string();
                jdc.metrics_listen = handle.metrics_addr;
                Some(handle)
            }
            _ => None,
        };
        c.translator.nominal_hashrate = 500_000.0 * (o.miners * o.threads) as f32;
        let translator = hashpool_translator::start(c.translator.clone()).await?;
        // The addresses actually bound (ephemeral ports), for the URL list.
        c.mint.http_listen = mint.http_addr;
        c.mint.metrics_listen = mint.metrics_addr;
        c.pool.metrics_listen = pool.metrics_addr;
        c.translator.metrics_listen = translator.metrics_addr;
        c.template_provider.metrics_listen = tp.metrics_addr;
        c.pool.admin_listen = pool.admin_addr;
        c.mint.admin_listen = mint.admin_addr;
        let urls = c.urls();
        let mut stack = Self {
            urls,
            tp,
            mint,
            pool,
            translator,
            jd_client,
            miner_stats: Vec::new(),
            miners_stop: CancellationToken::new(),
            miner_tasks: Vec::new(),
        };
        for i in 0..o.miners {
            stack.add_miner(&format!("devnet.worker{i}"), o.threads);
        }
        Ok(stack)
    }

    /// Starts one more CPU miner against the translator.
    pub fn add_miner(&mut self, user: &str, threads: u32) {
        let stats = Arc::new(MinerStats::default());
        let opts = MinerOptions {
            url: self.translator.sv1_addr.to_string(),
            user: user.into(),
            threads,
            metrics_listen: None,
        };
        self.miner_tasks.push(tokio::spawn(hashpool_miner::run(
            opts,
            stats.clone(),
            self.miners_stop.child_token(),
        )));
        self.miner_stats.push(stats);
    }

    /// Blocks found so far.
    pub fn blocks_found(&self) -> u64 {
        self.pool.stats.snapshot().blocks_found
    }

    /// Hashes computed by all miners since start.
    pub fn total_hashes(&self) -> u64 {
        self.miner_stats
            .iter()
            .map(|s| s.hashes.load(Ordering::Relaxed))
            .sum()
    }

    /// One status line.
    pub async fn status_line(&self, hashrate: f64) -> String {
        let p = self.pool.stats.snapshot();
        let balance = match self.translator.wallet.borrow().clone() {
            Some(w) => w.balance().await.unwrap_or(0),
            None => 0,
        };
        let height = self.tp.state.chain.tip().map(|t| t.height).unwrap_or(0);
        format!(
            "hashrate={:.2}MH/s shares_accepted={} shares_rejected={} ehash_balance={} blocks={} height={}",
            hashrate / 1e6,
            p.shares_accepted,
            p.shares_rejected,
            balance,
            p.blocks_found,
            height
        )
    }

    /// Stops the miners and waits until every signature the pool asked for reached the wallet.
    pub async fn quiesce(&mut self, timeout: Duration) {
        self.miners_stop.cancel();
        for t in self.miner_tasks.drain(..) {
            let _ = t.await;
        }
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            let p = self.pool.stats.snapshot();
            let t = self.translator.stats.snapshot();
            let state = (
                p.shares_accepted,
                p.ehash_signed,
                t.ehash_received,
                self.pool.mint.pending(),
            );
            let settled = self.pool.mint.pending() == 0 && t.ehash_received == p.ehash_signed;
            if settled && last == Some(state) {
                return;
            }
            last = Some(state);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        tracing::warn!("stack did not settle before the timeout");
    }

    /// Collects the final report (wallet checks go through the mint's HTTP API).
    pub async fn report(&self) -> anyhow::Result<DevnetReport> {
        let p = self.pool.stats.snapshot();
        let mint = self.mint.ledger.stats().await?;
        let wallet = self
            .translator
            .wallet
            .borrow()
            .clone()
            .ok_or_else(|| anyhow::anyhow!("the translator's wallet never opened"))?;
        let wallet_balance = wallet.balance().await?;
        let (proofs, unspent) = wallet.check_unspent().await?;
        let dleq_ok = wallet.verify_all().await?;
        let chain_height = self.tp.state.chain.tip()?.height;
        self.settle_blocks(Duration::from_secs(20)).await;
        let redeemed = wallet.redeem_final().await?;
        let liabilities = self.mint.ledger.epochs().liabilities().await?;
        let sats_issued = self.mint.ledger.stats().await?.sat_issued;
        Ok(DevnetReport {
            shares_accepted: p.shares_accepted,
            ehash_accepted: p.ehash_requested,
            ehash_issued: mint.issued,
            wallet_balance,
            wallet_proofs: proofs as u64,
            wallet_proofs_dleq_ok: dleq_ok as u64,
            blocks_found: p.blocks_found,
            chain_height,
            unspent_checked: unspent as u64,
            epochs_final: liabilities.epochs_final,
            ehash_redeemed: redeemed.hash,
            sats_redeemed: redeemed.sat,
            matured_rewards_sats: liabilities.matured_rewards_sat,
            sats_issued,
            solvent: liabilities.solvent,
            block_txs: self.tp.state.block_txs.load(Ordering::Relaxed),
            block_fees_sats: self.tp.state.block_fees.load(Ordering::Relaxed),
            declared_jobs: self
                .pool
                .jd_server
                .as_ref()
                .map_or(0, |j| j.declared_jobs()),
            custom_jobs: p.custom_jobs,
        })
    }

    /// Waits until the pool has followed its blocks once more and the mint acknowledged every
    /// block state, so the epochs reflect the chain as it stands.
    pub async fn settle_blocks(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        // Two poll intervals of the devnet pool's follower.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        while Instant::now() < deadline {
            match self.pool.blocks.unacked() {
                Ok(u) if u.is_empty() => return,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read found blocks"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tracing::warn!("block states not acknowledged by the mint before the timeout");
    }

    /// Stops every role; the chain is flushed to disk.
    pub async fn shutdown(mut self) {
        self.miners_stop.cancel();
        for t in self.miner_tasks.drain(..) {
            let _ = t.await;
        }
        self.translator.shutdown().await;
        if let Some(jdc) = self.jd_client {
            jdc.shutdown().await;
        }
        self.pool.shutdown().await;
        self.mint.shutdown().await;
        self.tp.shutdown().await;
    }
}
