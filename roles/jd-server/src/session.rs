//! One job declarator client connection: token allocation, declarations (with the
//! transactions the jd-server must be given), and pushed solutions.

use crate::coinbase::{block_header, coinbase_merkle_path, subsidy, DeclaredCoinbase};
use crate::node::KnownTx;
use crate::token::{sign, unix_now, CustomJobFields};
use crate::JobDeclarator;
use binary_sv2::{B0255Owned, B064KOwned, Seq064KOwned, Str0255Owned};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratum_core::bitcoin::block::{Header, Version};
use stratum_core::bitcoin::consensus::{deserialize, serialize};
use stratum_core::bitcoin::hashes::Hash;
use stratum_core::bitcoin::{Block, BlockHash, CompactTarget, Transaction, TxMerkleNode};
use stratum_core::common_messages_sv2::Protocol;
use stratum_core::job_declaration_sv2::{
    AllocateMiningJobTokenSuccessOwned, DeclareMiningJobErrorOwned, DeclareMiningJobOwned,
    DeclareMiningJobSuccessOwned, ProvideMissingTransactionsOwned,
    ProvideMissingTransactionsSuccessOwned, PushSolutionOwned,
};
use stratum_core::parsers_sv2::{JobDeclaration, JobDeclarationOwned};
use sv2_io::{FrameReader, FrameSender};

/// Declared jobs kept per connection for pushed solutions.
const KEEP_JOBS: usize = 16;
/// Declarations waiting for transactions, per connection.
const MAX_PENDING: usize = 16;

/// SV2 error codes of `DeclareMiningJob.Error`.
pub mod codes {
    pub use stratum_core::job_declaration_sv2::{
        ERROR_CODE_DECLARE_MINING_JOB_INTERNAL_ERROR as INTERNAL_ERROR,
        ERROR_CODE_DECLARE_MINING_JOB_INVALID_COINBASE_TX as INVALID_COINBASE_TX,
        ERROR_CODE_DECLARE_MINING_JOB_INVALID_MINING_JOB_TOKEN as INVALID_MINING_JOB_TOKEN,
        ERROR_CODE_DECLARE_MINING_JOB_MISSING_TXS as MISSING_TXS,
        ERROR_CODE_DECLARE_MINING_JOB_STALE_CHAIN_TIP as STALE_CHAIN_TIP,
    };
}

/// A refusal: SV2 error code and details for the client.
struct Refusal(&'static str, String);

/// A declaration parsed and waiting for its transactions.
struct Declaration {
    request_id: u32,
    version: u32,
    coinbase: DeclaredCoinbase,
    prev_hash: [u8; 32],
    wtxids: Vec<[u8; 32]>,
    txs: Vec<Option<KnownTx>>,
    deadline: Instant,
}

/// A declared job, for solutions pushed later.
struct DeclaredJob {
    prev_hash: [u8; 32],
    coinbase: DeclaredCoinbase,
    txs: Vec<Arc<Transaction>>,
    merkle_path: Vec<[u8; 32]>,
}

struct Session {
    jd: Arc<JobDeclarator>,
    sender: FrameSender,
    connection: u64,
    pending: HashMap<u32, Declaration>,
    jobs: VecDeque<DeclaredJob>,
}

/// Serves one accepted Noise connection until it closes.
pub async fn serve(
    jd: Arc<JobDeclarator>,
    mut reader: FrameReader,
    sender: FrameSender,
    peer: std::net::SocketAddr,
) -> Result<(), String> {
    sv2_io::setup::expect_setup(&mut reader, Protocol::JobDeclarationProtocol).await?;
    sv2_io::setup::accept_setup(&sender).await?;
    let connection = jd.next_connection.fetch_add(1, Ordering::Relaxed);
    tracing::info!(%peer, connection, "job declarator client connected");
    let mut session = Session {
        jd,
        sender,
        connection,
        pending: HashMap::new(),
        jobs: VecDeque::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            frame = reader.next() => session.on_frame(frame.map_err(|e| e.to_string())?).await?,
            _ = tick.tick() => session.expire_pending().await?,
        }
    }
}

async fn send<T>(sender: &FrameSender, msg: T) -> Result<(), String>
where
    T: binary_sv2::Serialize + binary_sv2::GetSize + stratum_core::parsers_sv2::IsSv2Message,
{
    let frame = sv2_io::frame::encode_standard(msg).map_err(|e| e.to_string())?;
    sender.send(frame).await.map_err(|e| e.to_string())
}

impl Session {
    async fn on_frame(&mut self, mut frame: sv2_io::Frame) -> Result<(), String> {
        let (ext, t) = sv2_io::frame::kind(&frame);
        if ext != 0 {
            tracing::debug!(ext, msg_type = t, "ignoring extension message");
            return Ok(());
        }
        let msg = JobDeclaration::try_from((t, frame.payload()))
            .map_err(|e| format!("malformed job declaration frame {t:#04x}: {e:?}"))?;
        match msg {
            JobDeclaration::AllocateMiningJobToken(a) => self.allocate(a.request_id).await,
            JobDeclaration::DeclareMiningJob(d) => self.declare(d.into_owned()).await,
            JobDeclaration::ProvideMissingTransactionsSuccess(p) => {
                self.provided(p.into_owned()).await
            }
            JobDeclaration::PushSolution(s) => {
                self.push_solution(s.into_owned()).await;
                Ok(())
            }
            other => {
                tracing::debug!(msg = %other, "ignoring job declaration message");
                Ok(())
            }
        }
    }

    async fn allocate(&mut self, request_id: u32) -> Result<(), String> {
        let token = self.jd.allocate(self.connection);
        let outputs = serialize(&vec![stratum_core::bitcoin::TxOut {
            value: stratum_core::bitcoin::Amount::ZERO,
            script_pubkey: self.jd.policy.payout.clone(),
        }]);
        let ok = AllocateMiningJobTokenSuccessOwned {
            request_id,
            mining_job_token: B0255Owned::try_from(token.to_vec()).map_err(|e| format!("{e:?}"))?,
            coinbase_outputs: B064KOwned::try_from(outputs).map_err(|e| format!("{e:?}"))?,
        };
        send(
            &self.sender,
            JobDeclarationOwned::AllocateMiningJobTokenSuccess(ok),
        )
        .await
    }

    async fn refuse(&mut self, request_id: u32, refusal: Refusal) -> Result<(), String> {
        let Refusal(code, details) = refusal;
        tracing::info!(connection = self.connection, request_id, code, %details, "declaration refused");
        self.jd.stats.refused(code);
        let err = DeclareMiningJobErrorOwned {
            request_id,
            error_code: Str0255Owned::try_from(code.to_string()).map_err(|e| format!("{e:?}"))?,
            error_details: B064KOwned::try_from(details.into_bytes())
                .map_err(|e| format!("{e:?}"))?,
        };
        send(
            &self.sender,
            JobDeclarationOwned::DeclareMiningJobError(err),
        )
        .await
    }

    async fn declare(&mut self, d: DeclareMiningJobOwned) -> Result<(), String> {
        let request_id = d.request_id;
        match self.start_declaration(d).await {
            Ok(decl) => self.continue_declaration(decl).await,
            Err(r) => self.refuse(request_id, r).await,
        }
    }

    /// Token, coinbase and tip checks; then looks the transactions up.
    async fn start_declaration(
        &mut self,
        d: DeclareMiningJobOwned,
    ) -> Result<Declaration, Refusal> {
        self.jd
            .redeem(d.mining_job_token.as_ref(), self.connection)
            .map_err(|why| Refusal(codes::INVALID_MINING_JOB_TOKEN, why.into()))?;
        let coinbase =
            DeclaredCoinbase::parse(d.coinbase_tx_prefix.as_ref(), d.coinbase_tx_suffix.as_ref())
                .map_err(|e| Refusal(codes::INVALID_COINBASE_TX, e.to_string()))?;
        let tip = self
            .jd
            .node
            .tip()
            .await
            .map_err(|e| Refusal(codes::INTERNAL_ERROR, format!("node unreachable: {e}")))?;
        if coinbase.height != tip.height + 1 {
            return Err(Refusal(
                codes::STALE_CHAIN_TIP,
                format!(
                    "job is for height {}, the tip is {}",
                    coinbase.height, tip.height
                ),
            ));
        }
        let wtxids: Vec<[u8; 32]> = d
            .wtxid_list
            .into_inner()
            .iter()
            .map(|w| w.to_array())
            .collect();
        let mut txs: Vec<Option<KnownTx>> = wtxids.iter().map(|w| self.jd.lookup(w)).collect();
        if txs.iter().any(Option::is_none) {
            if let Err(e) = self.jd.node.refresh().await {
                tracing::warn!(error = %e, "mempool refresh failed");
            }
            for (slot, w) in txs.iter_mut().zip(&wtxids) {
                if slot.is_none() {
                    *slot = self.jd.lookup(w);
                }
            }
        }
        Ok(Declaration {
            request_id: d.request_id,
            version: d.version,
            coinbase,
            prev_hash: tip.hash,
            wtxids,
            txs,
            deadline: Instant::now() + self.jd.policy.missing_txs_timeout,
        })
    }

    /// Asks for what is missing, or finishes.
    async fn continue_declaration(&mut self, decl: Declaration) -> Result<(), String> {
        let missing: Vec<u16> = decl
            .txs
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_none())
            .map(|(i, _)| i as u16)
            .collect();
        if missing.is_empty() {
            let request_id = decl.request_id;
            return match self.finish(decl) {
                Ok(token) => {
                    let ok = DeclareMiningJobSuccessOwned {
                        request_id,
                        new_mining_job_token: B0255Owned::try_from(token)
                            .map_err(|e| format!("{e:?}"))?,
                    };
                    send(
                        &self.sender,
                        JobDeclarationOwned::DeclareMiningJobSuccess(ok),
                    )
                    .await
                }
                Err(r) => self.refuse(request_id, r).await,
            };
        }
        if self.pending.len() >= MAX_PENDING {
            return self
                .refuse(
                    decl.request_id,
                    Refusal(
                        codes::MISSING_TXS,
                        "too many declarations waiting for transactions".into(),
                    ),
                )
                .await;
        }
        let ask = ProvideMissingTransactionsOwned {
            request_id: decl.request_id,
            unknown_tx_position_list: Seq064KOwned::new(missing).map_err(|e| format!("{e:?}"))?,
        };
        self.pending.insert(decl.request_id, decl);
        send(
            &self.sender,
            JobDeclarationOwned::ProvideMissingTransactions(ask),
        )
        .await
    }

    async fn provided(&mut self, p: ProvideMissingTransactionsSuccessOwned) -> Result<(), String> {
        let Some(mut decl) = self.pending.remove(&p.request_id) else {
            tracing::debug!(
                request_id = p.request_id,
                "transactions for no pending declaration"
            );
            return Ok(());
        };
        let given = p.transaction_list.into_inner();
        let mut given = given.iter();
        for (slot, wtxid) in decl.txs.iter_mut().zip(&decl.wtxids) {
            if slot.is_some() {
                continue;
            }
            let Some(raw) = given.next() else { break };
            let tx: Option<Transaction> = deserialize(raw.as_bytes()).ok();
            match tx {
                Some(tx) if tx.compute_wtxid().to_byte_array() == *wtxid => {
                    *slot = Some(KnownTx {
                        tx: Arc::new(tx),
                        fee: None,
                    });
                }
                _ => {
                    return self
                        .refuse(
                            decl.request_id,
                            Refusal(
                                codes::MISSING_TXS,
                                "a provided transaction does not match its wtxid".into(),
                            ),
                        )
                        .await
                }
            }
        }
        if decl.txs.iter().any(Option::is_none) {
            return self
                .refuse(
                    decl.request_id,
                    Refusal(
                        codes::MISSING_TXS,
                        "not every missing transaction was provided".into(),
                    ),
                )
                .await;
        }
        self.continue_declaration(decl).await
    }

    /// Declarations whose transactions never came are refused.
    async fn expire_pending(&mut self) -> Result<(), String> {
        let now = Instant::now();
        let late: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, d)| d.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.pending.remove(&id);
            self.refuse(
                id,
                Refusal(
                    codes::MISSING_TXS,
                    "missing transactions were not provided in time".into(),
                ),
            )
            .await?;
        }
        Ok(())
    }

    /// Payment and witness checks on the complete job; signs its token.
    fn finish(&mut self, decl: Declaration) -> Result<Vec<u8>, Refusal> {
        let policy = &self.jd.policy;
        let txs: Vec<KnownTx> = decl.txs.into_iter().flatten().collect();
        let fees: u64 = txs.iter().filter_map(|t| t.fee).sum();
        let required = subsidy(policy.network, decl.coinbase.height) + fees;
        let paid = decl
            .coinbase
            .pays_pool(&policy.payout, required)
            .map_err(|e| Refusal(codes::INVALID_COINBASE_TX, e.to_string()))?;
        let txs: Vec<Arc<Transaction>> = txs.into_iter().map(|t| t.tx).collect();
        if txs
            .iter()
            .any(|t| t.input.iter().any(|i| !i.witness.is_empty()))
        {
            let block = Block {
                header: Header {
                    version: Version::from_consensus(decl.version as i32),
                    prev_blockhash: BlockHash::from_byte_array(decl.prev_hash),
                    merkle_root: TxMerkleNode::all_zeros(),
                    time: 0,
                    bits: CompactTarget::from_consensus(0),
                    nonce: 0,
                },
                txdata: std::iter::once(decl.coinbase.tx.clone())
                    .chain(txs.iter().map(|t| (**t).clone()))
                    .collect(),
            };
            if !block.check_witness_commitment() {
                return Err(Refusal(
                    codes::INVALID_COINBASE_TX,
                    "the coinbase's witness commitment does not match the transactions".into(),
                ));
            }
        }
        let txids: Vec<[u8; 32]> = txs
            .iter()
            .map(|t| t.compute_txid().to_byte_array())
            .collect();
        let merkle_path = coinbase_merkle_path(&txids);
        let outputs = decl.coinbase.outputs_bytes();
        let fields = CustomJobFields {
            version: decl.version,
            prev_hash: decl.prev_hash,
            coinbase_tx_version: decl.coinbase.tx.version.0 as u32,
            script_sig_prefix: &decl.coinbase.script_sig_prefix,
            sequence: decl.coinbase.tx.input[0].sequence.0,
            outputs: &outputs,
            locktime: decl.coinbase.tx.lock_time.to_consensus_u32(),
            merkle_path: &merkle_path,
        };
        let expires = unix_now() + policy.token_lifetime.as_secs();
        let token = sign(&self.jd.signer, expires, fields.digest());
        self.jd.stats.declared_jobs.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            connection = self.connection,
            height = decl.coinbase.height,
            txs = txs.len(),
            fees,
            paid,
            "job declared"
        );
        self.jobs.push_back(DeclaredJob {
            prev_hash: decl.prev_hash,
            coinbase: decl.coinbase,
            txs,
            merkle_path,
        });
        while self.jobs.len() > KEEP_JOBS {
            self.jobs.pop_front();
        }
        Ok(token)
    }

    /// Finds the declared job the solution solves and gives the block to the node.
    async fn push_solution(&mut self, s: PushSolutionOwned) {
        let prev_hash = s.prev_hash.to_array();
        self.jd
            .stats
            .solutions_pushed
            .fetch_add(1, Ordering::Relaxed);
        let found = self
            .jobs
            .iter()
            .rev()
            .filter(|j| j.prev_hash == prev_hash)
            .find_map(|job| {
                let coinbase = job.coinbase.with_extranonce(s.extranonce.as_bytes()).ok()?;
                let header = block_header(
                    s.version,
                    prev_hash,
                    coinbase.compute_txid().to_byte_array(),
                    &job.merkle_path,
                    s.ntime,
                    s.nbits,
                    s.nonce,
                );
                header.validate_pow(header.target()).ok()?;
                Some(Block {
                    header,
                    txdata: std::iter::once(coinbase)
                        .chain(job.txs.iter().map(|t| (**t).clone()))
                        .collect(),
                })
            });
        let Some(block) = found else {
            tracing::warn!(
                connection = self.connection,
                "pushed solution matches no declared job"
            );
            return;
        };
        let hash = block.block_hash();
        match self.jd.node.submit_block(&serialize(&block)).await {
            Ok(None) => {
                self.jd
                    .stats
                    .blocks_submitted
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(%hash, txs = block.txdata.len() - 1, "pushed block accepted by the node");
            }
            Ok(Some(reason)) => {
                tracing::info!(%hash, %reason, "node did not take the pushed block")
            }
            Err(e) => tracing::warn!(%hash, error = %e, "cannot submit the pushed block"),
        }
    }
}
