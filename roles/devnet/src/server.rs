//! The Template Distribution Protocol server (Noise responder).

use crate::chain::{BlockOutcome, KernelChain, Tip};
use crate::mempool::DevnetMempool;
use crate::pacing::{difficulty_of, BlockPacer};
use crate::template::TemplateRecord;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use stratum_core::bitcoin::hashes::Hash;
use stratum_core::bitcoin::Transaction;
use stratum_core::common_messages_sv2::{
    Protocol, SetupConnectionErrorOwned, SetupConnectionSuccess,
    MESSAGE_TYPE_SETUP_CONNECTION_ERROR, MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS,
};
use stratum_core::parsers_sv2::{CommonMessages, TemplateDistribution};
use stratum_core::template_distribution_sv2::{
    RequestTransactionDataErrorOwned, RequestTransactionDataSuccessOwned, SubmitSolutionOwned,
    MESSAGE_TYPE_NEW_TEMPLATE, MESSAGE_TYPE_REQUEST_TRANSACTION_DATA_ERROR,
    MESSAGE_TYPE_REQUEST_TRANSACTION_DATA_SUCCESS, MESSAGE_TYPE_SET_NEW_PREV_HASH,
};
use sv2_io::{AuthorityKeypair, FrameReader, FrameSender};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Templates kept for late solutions.
const KEEP_TEMPLATES: usize = 64;

/// The current work: the template on the tip and the pacing target.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// Template on the current tip.
    pub template: TemplateRecord,
    /// Block target (little-endian).
    pub target: [u8; 32],
}

/// State shared by all TDP connections.
pub struct TemplateState {
    /// The chain.
    pub chain: Arc<KernelChain>,
    pacer: Mutex<BlockPacer>,
    templates: Mutex<BTreeMap<u64, TemplateRecord>>,
    next_id: AtomicU64,
    current: watch::Sender<Announcement>,
    /// Blocks accepted since start.
    pub blocks_accepted: AtomicU64,
    /// Pools connected now.
    pub pools_connected: AtomicU64,
    /// Transactions after the coinbase in the blocks accepted since start.
    pub block_txs: AtomicU64,
    /// Their fees, sats.
    pub block_fees: AtomicU64,
    mempool: Option<Mutex<DevnetMempool>>,
}

/// Counts a pool connection while it lives.
struct PoolPresence(Arc<TemplateState>);

impl PoolPresence {
    fn new(state: Arc<TemplateState>) -> Self {
        state.pools_connected.fetch_add(1, Ordering::Relaxed);
        Self(state)
    }
}

impl Drop for PoolPresence {
    fn drop(&mut self) {
        self.0.pools_connected.fetch_sub(1, Ordering::Relaxed);
    }
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

impl TemplateState {
    /// Templates issued since start, counting the one built on the starting tip (id 1).
    pub fn templates_issued(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// State on the chain's current tip; templates carry the transactions of `mempool`, if any.
    pub fn new(
        chain: Arc<KernelChain>,
        pacer: BlockPacer,
        mempool: Option<DevnetMempool>,
    ) -> Result<Arc<Self>, String> {
        let tip = chain.tip().map_err(|e| e.to_string())?;
        let mempool = mempool.map(Mutex::new);
        let template = template_on(1, &tip, mempool.as_ref());
        let first = Announcement {
            template: template.clone(),
            target: pacer.target_le(),
        };
        let (current, _) = watch::channel(first);
        let state = Self {
            chain,
            pacer: Mutex::new(pacer),
            templates: Mutex::new(BTreeMap::from([(1, template)])),
            next_id: AtomicU64::new(2),
            current,
            blocks_accepted: AtomicU64::new(0),
            pools_connected: AtomicU64::new(0),
            block_txs: AtomicU64::new(0),
            block_fees: AtomicU64::new(0),
            mempool,
        };
        Ok(Arc::new(state))
    }

    /// Subscribes to announcements.
    pub fn subscribe(&self) -> watch::Receiver<Announcement> {
        self.current.subscribe()
    }

    /// Announces a fresh template on the current tip (after a block or a pacing change).
    fn announce(&self) -> Result<(), String> {
        let tip = self.chain.tip().map_err(|e| e.to_string())?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let template = template_on(id, &tip, self.mempool.as_ref());
        let target = self.pacer.lock().map_err(|_| "pacer poisoned")?.target_le();
        {
            let mut t = self.templates.lock().map_err(|_| "templates poisoned")?;
            t.insert(id, template.clone());
            while t.len() > KEEP_TEMPLATES {
                t.pop_first();
            }
        }
        tracing::info!(
            height = template.height,
            template_id = id,
            txs = template.txs.len(),
            value = template.value,
            block_hashes = difficulty_of(&target),
            "new template"
        );
        self.current.send_replace(Announcement { template, target });
        Ok(())
    }

    /// Checks the pacer and re-announces with an easier target when blocks stall.
    pub fn ease_if_stalled(&self) {
        let eased = self
            .pacer
            .lock()
            .map(|mut p| p.ease_if_stalled())
            .unwrap_or(false);
        if eased {
            if let Err(e) = self.announce() {
                tracing::error!(error = %e, "cannot announce eased template");
            }
        }
    }

    /// Handles a solution: assemble, check the pacing target, give it to the kernel.
    pub fn submit_solution(&self, s: &SubmitSolutionOwned) -> Result<BlockOutcome, String> {
        let record = self
            .templates
            .lock()
            .map_err(|_| "templates poisoned")?
            .get(&s.template_id)
            .cloned()
            .ok_or_else(|| format!("unknown template id {}", s.template_id))?;
        let (raw, hash) = record
            .assemble(
                s.version,
                s.header_timestamp,
                s.header_nonce,
                s.coinbase_tx.as_bytes(),
            )
            .map_err(|e| e.to_string())?;
        self.accept_block(&raw, hash, record.height, &record.txs)
    }

    /// A whole block from `submitblock` (a jd-server or a miner's own node path): it must
    /// build on the current tip; then the same checks as a solution.
    pub fn submit_raw_block(&self, raw: &[u8]) -> Result<BlockOutcome, String> {
        use stratum_core::bitcoin::consensus::deserialize;
        let block: stratum_core::bitcoin::Block =
            deserialize(raw).map_err(|e| format!("block does not decode: {e}"))?;
        let hash = block.block_hash().to_byte_array();
        if self
            .chain
            .block_place(hash)
            .map_err(|e| e.to_string())?
            .is_some()
        {
            return Ok(BlockOutcome::Duplicate);
        }
        let tip = self.chain.tip().map_err(|e| e.to_string())?;
        if block.header.prev_blockhash.to_byte_array() != tip.hash {
            tracing::warn!(hash = %crate::rpc::display_hash(hash), "submitted block does not build on the tip");
            return Ok(BlockOutcome::Rejected);
        }
        let txs: Vec<Transaction> = block.txdata.iter().skip(1).cloned().collect();
        self.accept_block(raw, hash, tip.height + 1, &txs)
    }

    /// The pacing check, the kernel, then the devnet's coins and counters.
    fn accept_block(
        &self,
        raw: &[u8],
        hash: [u8; 32],
        height: u32,
        txs: &[Transaction],
    ) -> Result<BlockOutcome, String> {
        let meets = self
            .pacer
            .lock()
            .map_err(|_| "pacer poisoned")?
            .is_met_by(&hash);
        if !meets {
            tracing::warn!(height, "solution misses the devnet block target");
            return Ok(BlockOutcome::Rejected);
        }
        let outcome = self.chain.submit(raw).map_err(|e| e.to_string())?;
        let coins_dropped = self.settle_mempool(txs, height, outcome);
        if outcome == BlockOutcome::Accepted {
            self.blocks_accepted.fetch_add(1, Ordering::Relaxed);
            self.block_txs
                .fetch_add(txs.len() as u64, Ordering::Relaxed);
            self.block_fees
                .fetch_add(crate::mempool::fees(txs), Ordering::Relaxed);
            tracing::info!(height, hash = %crate::rpc::display_hash(hash), txs = txs.len(), "block accepted by the kernel");
            if let Ok(mut p) = self.pacer.lock() {
                p.on_block();
            }
            self.announce()?;
        } else if outcome == BlockOutcome::Duplicate {
            // The same block by another path (a jd-client's node and its jd-server both submit).
            tracing::info!(height, hash = %crate::rpc::display_hash(hash), "block already known");
        } else {
            tracing::warn!(height, ?outcome, "block not connected");
            if coins_dropped {
                // The refused template would be refused again: offer one without those coins.
                self.announce()?;
            }
        }
        Ok(outcome)
    }

    /// The transactions the node would mine next (its "mempool"): the current template's.
    pub fn mempool_transactions(&self) -> Arc<Vec<Transaction>> {
        self.current.borrow().template.txs.clone()
    }

    /// The serialized transactions (after the coinbase) of a template still kept.
    pub fn transaction_data(&self, template_id: u64) -> Option<Vec<Vec<u8>>> {
        let templates = self.templates.lock().ok()?;
        let record = templates.get(&template_id)?;
        Some(
            record
                .txs
                .iter()
                .map(stratum_core::bitcoin::consensus::serialize)
                .collect(),
        )
    }

    /// Moves the coins after a block: an accepted block's transactions spend theirs and make
    /// new ones; a rejected block's transactions drop theirs (after a reorg the coin list may
    /// name outputs the chain no longer has, and the kernel refusing them is how we learn it).
    /// Returns whether coins were dropped.
    fn settle_mempool(&self, txs: &[Transaction], height: u32, outcome: BlockOutcome) -> bool {
        let Some(mempool) = &self.mempool else {
            return false;
        };
        if txs.is_empty() || outcome == BlockOutcome::Duplicate {
            return false;
        }
        let Ok(mut m) = mempool.lock() else {
            return false;
        };
        let dropped = outcome != BlockOutcome::Accepted;
        if !dropped {
            m.on_block(height, txs);
        } else {
            m.forget_spent_by(txs);
            tracing::warn!(
                txs = txs.len(),
                "block with devnet transactions refused; their coins dropped"
            );
        }
        if let Err(e) = m.save() {
            tracing::error!(error = %e, "devnet coins not saved");
        }
        dropped
    }

    /// Devnet only: orphans the last `depth` blocks by mining a longer branch, then announces
    /// the new tip to every pool.
    pub fn force_reorg(&self, depth: u32) -> Result<crate::chain::Reorg, String> {
        let reorg = self
            .chain
            .mine_competing_branch(depth, now_secs())
            .map_err(|e| e.to_string())?;
        tracing::warn!(
            depth,
            fork_height = reorg.fork_height,
            orphaned = reorg.orphaned.len(),
            "devnet reorg mined"
        );
        if let Some(Ok(mut m)) = self.mempool.as_ref().map(|m| m.lock()) {
            m.forget_above(reorg.fork_height);
            if let Err(e) = m.save() {
                tracing::error!(error = %e, "devnet coins not saved");
            }
        }
        self.announce()?;
        Ok(reorg)
    }
}

/// `RequestTransactionData`'s answer: the template's transactions, or the spec's
/// `template-id-not-found` for a template never issued or no longer kept.
fn transaction_data_frame(
    state: &TemplateState,
    template_id: u64,
) -> Result<sv2_io::Frame, String> {
    let encode_err = |what: &str| format!("RequestTransactionData answer: {what}");
    match state.transaction_data(template_id) {
        Some(txs) => {
            let list = txs
                .into_iter()
                .map(|t| binary_sv2::B016MOwned::try_from(t).map_err(|_| encode_err("transaction")))
                .collect::<Result<Vec<_>, _>>()?;
            let ok = RequestTransactionDataSuccessOwned {
                template_id,
                excess_data: binary_sv2::B064KOwned::try_from(Vec::new())
                    .map_err(|_| encode_err("excess data"))?,
                transaction_list: binary_sv2::Seq064KOwned::new(list)
                    .map_err(|_| encode_err("transaction list"))?,
            };
            sv2_io::encode(ok, MESSAGE_TYPE_REQUEST_TRANSACTION_DATA_SUCCESS, 0, false)
                .map_err(|e| e.to_string())
        }
        None => {
            let err = RequestTransactionDataErrorOwned {
                template_id,
                error_code: binary_sv2::Str0255Owned::try_from("template-id-not-found".to_string())
                    .map_err(|_| encode_err("error code"))?,
            };
            sv2_io::encode(err, MESSAGE_TYPE_REQUEST_TRANSACTION_DATA_ERROR, 0, false)
                .map_err(|e| e.to_string())
        }
    }
}

/// A template on `tip`, with the mempool's transactions for its height.
fn template_on(id: u64, tip: &Tip, mempool: Option<&Mutex<DevnetMempool>>) -> TemplateRecord {
    let record = TemplateRecord::on_tip(id, tip, now_secs());
    match mempool.and_then(|m| m.lock().ok()) {
        Some(m) => {
            let txs = m.transactions_for(record.height);
            record.with_transactions(txs)
        }
        None => record,
    }
}

/// Accepts pool connections until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    keys: AuthorityKeypair,
    state: Arc<TemplateState>,
    shutdown: CancellationToken,
) {
    let ticker_state = state.clone();
    let ticker_sd = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = ticker_sd.cancelled() => return,
                _ = tick.tick() => ticker_state.ease_if_stalled(),
            }
        }
    });
    sv2_io::serve(
        listener,
        keys,
        "template-provider",
        shutdown,
        move |r, s, _peer| serve_pool(r, s, state.clone()),
    )
    .await;
}

async fn send_announcement(
    sender: &FrameSender,
    a: &Announcement,
    future: bool,
) -> Result<(), String> {
    let nt = a.template.new_template(future).map_err(|e| e.to_string())?;
    let snph = a.template.set_new_prev_hash(a.target);
    let f1 = sv2_io::encode(nt, MESSAGE_TYPE_NEW_TEMPLATE, 0, false).map_err(|e| e.to_string())?;
    let f2 = sv2_io::encode(snph, MESSAGE_TYPE_SET_NEW_PREV_HASH, 0, false)
        .map_err(|e| e.to_string())?;
    sender.send(f1).await.map_err(|e| e.to_string())?;
    sender.send(f2).await.map_err(|e| e.to_string())
}

async fn serve_pool(
    mut reader: FrameReader,
    sender: FrameSender,
    state: Arc<TemplateState>,
) -> Result<(), String> {
    let _presence = PoolPresence::new(state.clone());
    // SetupConnection first.
    let mut frame = reader.next().await.map_err(|e| e.to_string())?;
    let (ext, t) = sv2_io::frame::kind(&frame);
    let setup = match (ext, CommonMessages::try_from((t, frame.payload()))) {
        (0, Ok(CommonMessages::SetupConnection(s))) => s,
        _ => return Err(format!("expected SetupConnection, got type {t:#04x}")),
    };
    if setup.protocol != Protocol::TemplateDistributionProtocol || setup.min_version > 2 {
        let err = SetupConnectionErrorOwned {
            flags: 0,
            error_code: binary_sv2::Str0255Owned::try_from("unsupported-protocol".to_string())
                .map_err(|_| "encode")?,
        };
        let f = sv2_io::encode(err, MESSAGE_TYPE_SETUP_CONNECTION_ERROR, 0, false)
            .map_err(|e| e.to_string())?;
        let _ = sender.send(f).await;
        return Err("peer asked for another protocol".into());
    }
    let ok = SetupConnectionSuccess {
        used_version: 2,
        flags: 0,
    };
    sender
        .send(
            sv2_io::encode(ok, MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS, 0, false)
                .map_err(|e| e.to_string())?,
        )
        .await
        .map_err(|e| e.to_string())?;

    let mut announcements = state.subscribe();
    let mut started = false;
    loop {
        tokio::select! {
            changed = announcements.changed(), if started => {
                if changed.is_err() { return Ok(()); }
                let a = announcements.borrow_and_update().clone();
                send_announcement(&sender, &a, true).await?;
            }
            frame = reader.next() => {
                let mut frame = frame.map_err(|e| e.to_string())?;
                let (ext, t) = sv2_io::frame::kind(&frame);
                if ext != 0 {
                    tracing::debug!(ext, t, "ignoring extension frame on TDP");
                    continue;
                }
                match TemplateDistribution::try_from((t, frame.payload())) {
                    Ok(TemplateDistribution::CoinbaseOutputConstraints(c)) => {
                        tracing::debug!(max_size = c.coinbase_output_max_additional_size, "coinbase output constraints");
                        if !started {
                            started = true;
                            let a = announcements.borrow_and_update().clone();
                            send_announcement(&sender, &a, true).await?;
                        }
                    }
                    Ok(TemplateDistribution::SubmitSolution(s)) => {
                        let state = state.clone();
                        let s = s.into_owned();
                        let outcome = tokio::task::spawn_blocking(move || state.submit_solution(&s))
                            .await
                            .map_err(|e| e.to_string())?;
                        if let Err(e) = outcome {
                            tracing::warn!(error = %e, "solution refused");
                        }
                    }
                    Ok(TemplateDistribution::RequestTransactionData(r)) => {
                        let reply = transaction_data_frame(&state, r.template_id)?;
                        sender.send(reply).await.map_err(|e| e.to_string())?;
                    }
                    Ok(other) => tracing::debug!(msg = ?other, "ignoring TDP message"),
                    Err(e) => return Err(format!("malformed TDP frame type {t:#04x}: {e:?}")),
                }
            }
        }
    }
}
