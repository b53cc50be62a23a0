//! The link to the jd-server: allocates a token per template, declares the job (coinbase
//! paying the pool's outputs, transactions by wtxid, providing those it lacks), publishes the
//! declared job with its token, and pushes found blocks. If the jd-server refuses or goes away,
//! the client falls back to pool templates until it can declare again.

use crate::templates::Work;
use crate::JdClientStats;
use binary_sv2::{B0255Owned, B064KOwned, Seq064KOwned, Str0255Owned, U256Owned};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use stratum_core::bitcoin::consensus::deserialize;
use stratum_core::bitcoin::{Amount, TxOut};
use stratum_core::channels_sv2::server::jobs::factory::JobFactory;
use stratum_core::common_messages_sv2::Protocol;
use stratum_core::job_declaration_sv2::{
    AllocateMiningJobTokenOwned, DeclareMiningJobOwned, ProvideMissingTransactionsSuccessOwned,
    PushSolutionOwned, ERROR_CODE_DECLARE_MINING_JOB_STALE_CHAIN_TIP,
};
use stratum_core::parsers_sv2::{JobDeclaration, JobDeclarationOwned};
use sv2_io::{AuthorityPublicKey, FrameReader, FrameSender};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Longest wait for the jd-server's answer to one request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// How often an unchanged template is declared again (well within a token's lifetime).
const REDECLARE: Duration = Duration::from_secs(60);

/// A job the jd-server accepted: the work, the token the pool checks, the coinbase outputs.
#[derive(Debug)]
pub struct DeclaredJob {
    /// The template and its transactions.
    pub work: Arc<Work>,
    /// `DeclareMiningJob.Success`'s token, for `SetCustomMiningJob`.
    pub token: B0255Owned,
    /// The pool's outputs with the template's whole value.
    pub outputs: Vec<TxOut>,
    /// Full extranonce size the coinbase was declared with.
    pub full_extranonce_size: usize,
}

/// Whether new miner sessions declare their work or mine pool templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not known yet (no jd-server answer so far).
    Starting,
    /// The jd-server accepts declarations.
    Declaring,
    /// The jd-server refused or is unreachable: pool templates.
    PoolTemplates,
}

/// The coinbase shape every declaration and custom job of this client uses (its tag included),
/// so the jd-server and the pool see the same scriptSig.
pub fn job_factory() -> JobFactory {
    JobFactory::new(true, None, Some("jdc".into()))
}

/// What the declarer needs.
pub struct Declarer {
    /// jd-server address.
    pub address: String,
    /// Its authority key.
    pub authority: AuthorityPublicKey,
    /// User identifier sent with token requests.
    pub user: String,
    /// Retry interval after a refusal or loss.
    pub retry: Duration,
    /// Current work from the template provider.
    pub work: watch::Receiver<Option<Arc<Work>>>,
    /// Full extranonce size of the pool's channels (known once one opened).
    pub extranonce: watch::Receiver<Option<usize>>,
    /// Declared jobs out.
    pub declared: watch::Sender<Option<Arc<DeclaredJob>>>,
    /// Mode out.
    pub mode: watch::Sender<Mode>,
    /// Pool outputs out (for the template provider's constraints).
    pub outputs: watch::Sender<Option<Vec<TxOut>>>,
    /// Found blocks in.
    pub solutions: mpsc::Receiver<PushSolutionOwned>,
    /// Counters.
    pub stats: Arc<JdClientStats>,
}

impl Declarer {
    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let r = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.session() => r,
            };
            if shutdown.is_cancelled() {
                return;
            }
            let why = match r {
                Ok(()) => "link closed".to_string(),
                Err(e) => e,
            };
            tracing::warn!(address = %self.address, reason = %why, retry_in = ?self.retry, "jd-server unusable; new miners mine pool templates");
            self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
            self.declared.send_replace(None);
            self.mode.send_replace(Mode::PoolTemplates);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.retry) => {}
            }
        }
    }

    async fn session(&mut self) -> Result<(), String> {
        let (mut reader, sender) = sv2_io::connect_with_setup(
            &self.address,
            &self.authority,
            Protocol::JobDeclarationProtocol,
            0,
        )
        .await
        .map_err(|e| e.to_string())?;
        tracing::info!(address = %self.address, "jd-server link up");
        let mut request_id = 0u32;
        // A first token tells the pool's outputs before any template (the template provider
        // needs their size).
        request_id += 1;
        let (_, outputs) = self.allocate(&mut reader, &sender, request_id).await?;
        self.outputs.send_replace(Some(outputs));
        self.mode.send_replace(Mode::Declaring);
        self.work.mark_changed();
        // Tokens expire: the same template is declared again now and then.
        let mut redeclare = tokio::time::interval(REDECLARE);
        redeclare.tick().await;
        loop {
            tokio::select! {
                _ = redeclare.tick() => self.work.mark_changed(),
                changed = self.work.changed() => {
                    changed.map_err(|_| "template source stopped")?;
                    let work = self.work.borrow_and_update().clone();
                    let size = *self.extranonce.borrow();
                    if let (Some(work), Some(size)) = (work, size) {
                        request_id += 2;
                        self.declare(&mut reader, &sender, request_id, work, size).await?;
                    }
                }
                changed = self.extranonce.changed() => {
                    changed.map_err(|_| "proxy stopped")?;
                    self.work.mark_changed();
                }
                Some(s) = self.solutions.recv() => {
                    let frame = sv2_io::frame::encode_standard(JobDeclarationOwned::PushSolution(s)).map_err(|e| e.to_string())?;
                    sender.send(frame).await.map_err(|e| e.to_string())?;
                    self.stats.solutions_pushed.fetch_add(1, Ordering::Relaxed);
                }
                frame = reader.next() => {
                    frame.map_err(|e| e.to_string())?;
                    tracing::debug!("unexpected jd-server message between requests");
                }
            }
        }
    }

    async fn next_message(reader: &mut FrameReader) -> Result<JobDeclarationOwned, String> {
        let mut frame = tokio::time::timeout(ANSWER_TIMEOUT, reader.next())
            .await
            .map_err(|_| "jd-server did not answer in time")?
            .map_err(|e| e.to_string())?;
        let (_, t) = sv2_io::frame::kind(&frame);
        JobDeclaration::try_from((t, frame.payload()))
            .map(JobDeclaration::into_owned)
            .map_err(|e| format!("malformed job declaration frame {t:#04x}: {e:?}"))
    }

    async fn allocate(
        &self,
        reader: &mut FrameReader,
        sender: &FrameSender,
        request_id: u32,
    ) -> Result<(B0255Owned, Vec<TxOut>), String> {
        let ask = AllocateMiningJobTokenOwned {
            user_identifier: Str0255Owned::try_from(self.user.clone())
                .map_err(|e| format!("{e:?}"))?,
            request_id,
        };
        let frame =
            sv2_io::frame::encode_standard(JobDeclarationOwned::AllocateMiningJobToken(ask))
                .map_err(|e| e.to_string())?;
        sender.send(frame).await.map_err(|e| e.to_string())?;
        match Self::next_message(reader).await? {
            JobDeclarationOwned::AllocateMiningJobTokenSuccess(ok)
                if ok.request_id == request_id =>
            {
                let outputs: Vec<TxOut> = deserialize(ok.coinbase_outputs.as_bytes())
                    .map_err(|e| format!("jd-server's coinbase outputs do not parse: {e}"))?;
                Ok((ok.mining_job_token, outputs))
            }
            other => Err(format!("expected a token, got {other}")),
        }
    }

    async fn declare(
        &mut self,
        reader: &mut FrameReader,
        sender: &FrameSender,
        request_id: u32,
        work: Arc<Work>,
        full_extranonce_size: usize,
    ) -> Result<(), String> {
        let (token, outputs) = self.allocate(reader, sender, request_id).await?;
        // The pool's outputs take the template's whole value.
        let value = work.template.coinbase_tx_value_remaining;
        let mut outputs: Vec<TxOut> = outputs;
        let Some(first) = outputs.first_mut() else {
            return Err("jd-server gave no coinbase output".into());
        };
        first.value = Amount::from_sat(value);
        let (prefix, suffix) = job_factory()
            .new_coinbase_tx_prefix_and_suffix(
                work.template.clone(),
                outputs.clone(),
                full_extranonce_size,
            )
            .map_err(|e| format!("cannot build the coinbase: {e:?}"))?;
        let wtxids = work
            .wtxids
            .iter()
            .map(|w| U256Owned::from(*w))
            .collect::<Vec<_>>();
        let declare = DeclareMiningJobOwned {
            request_id: request_id + 1,
            mining_job_token: token,
            version: work.template.version,
            coinbase_tx_prefix: B064KOwned::try_from(prefix).map_err(|e| format!("{e:?}"))?,
            coinbase_tx_suffix: B064KOwned::try_from(suffix).map_err(|e| format!("{e:?}"))?,
            wtxid_list: Seq064KOwned::new(wtxids).map_err(|e| format!("{e:?}"))?,
            excess_data: B064KOwned::try_from(Vec::new()).map_err(|e| format!("{e:?}"))?,
        };
        let frame = sv2_io::frame::encode_standard(JobDeclarationOwned::DeclareMiningJob(declare))
            .map_err(|e| e.to_string())?;
        sender.send(frame).await.map_err(|e| e.to_string())?;
        loop {
            match Self::next_message(reader).await? {
                JobDeclarationOwned::ProvideMissingTransactions(ask) => {
                    let list = ask
                        .unknown_tx_position_list
                        .into_inner()
                        .into_iter()
                        .map(|i| {
                            work.txs
                                .get(usize::from(i))
                                .ok_or_else(|| {
                                    format!(
                                        "jd-server asked for transaction {i} of {}",
                                        work.txs.len()
                                    )
                                })
                                .and_then(|t| {
                                    binary_sv2::B016MOwned::try_from(t.clone())
                                        .map_err(|e| format!("{e:?}"))
                                })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    self.stats
                        .transactions_provided
                        .fetch_add(list.len() as u64, Ordering::Relaxed);
                    let give = ProvideMissingTransactionsSuccessOwned {
                        request_id: ask.request_id,
                        transaction_list: Seq064KOwned::new(list).map_err(|e| format!("{e:?}"))?,
                    };
                    let frame = sv2_io::frame::encode_standard(
                        JobDeclarationOwned::ProvideMissingTransactionsSuccess(give),
                    )
                    .map_err(|e| e.to_string())?;
                    sender.send(frame).await.map_err(|e| e.to_string())?;
                }
                JobDeclarationOwned::DeclareMiningJobSuccess(ok) => {
                    self.stats.declared_jobs.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        template_id = work.template.template_id,
                        txs = work.txs.len(),
                        "job declared"
                    );
                    self.declared.send_replace(Some(Arc::new(DeclaredJob {
                        work,
                        token: ok.new_mining_job_token,
                        outputs,
                        full_extranonce_size,
                    })));
                    return Ok(());
                }
                JobDeclarationOwned::DeclareMiningJobError(e) => {
                    let code = e.error_code.as_utf8_or_hex();
                    let details = String::from_utf8_lossy(e.error_details.as_bytes()).to_string();
                    self.stats
                        .declarations_refused
                        .fetch_add(1, Ordering::Relaxed);
                    if code == ERROR_CODE_DECLARE_MINING_JOB_STALE_CHAIN_TIP {
                        // The jd-server's node is a block behind or ahead: the next template
                        // settles it.
                        tracing::info!(%details, "declaration on a stale tip; waiting for the next template");
                        return Ok(());
                    }
                    return Err(format!("jd-server refused the job: {code}: {details}"));
                }
                other => return Err(format!("unexpected answer to a declaration: {other}")),
            }
        }
    }
}
