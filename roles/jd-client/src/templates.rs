//! The miner's own template provider (Template Distribution): templates, their transactions,
//! chain tips; block solutions go back to it. Publishes the current work.

use crate::JdClientStats;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use stratum_core::bitcoin::consensus::deserialize;
use stratum_core::bitcoin::hashes::Hash;
use stratum_core::bitcoin::{Transaction, TxOut};
use stratum_core::parsers_sv2::TemplateDistribution;
use stratum_core::template_distribution_sv2::{
    NewTemplateOwned, RequestTransactionData, SetNewPrevHashOwned, SubmitSolutionOwned,
    MESSAGE_TYPE_REQUEST_TRANSACTION_DATA, MESSAGE_TYPE_SUBMIT_SOLUTION,
};
use sv2_io::{AuthorityPublicKey, Backoff};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Templates kept while waiting for their tip or their transactions.
const KEEP_TEMPLATES: usize = 16;

/// A template on the current tip with its transactions: what the jd-client declares and mines.
#[derive(Debug)]
pub struct Work {
    /// The template.
    pub template: NewTemplateOwned,
    /// The tip it builds on (TDP: prev hash, nBits, block target).
    pub tip: SetNewPrevHashOwned,
    /// Its transactions after the coinbase, serialized.
    pub txs: Vec<Vec<u8>>,
    /// Their wtxids (internal byte order).
    pub wtxids: Vec<[u8; 32]>,
}

/// Keeps a link to the template provider until `shutdown`; publishes each complete work.
pub async fn run(
    address: String,
    authority: AuthorityPublicKey,
    outputs: Vec<TxOut>,
    work: watch::Sender<Option<Arc<Work>>>,
    mut solutions: mpsc::Receiver<SubmitSolutionOwned>,
    stats: Arc<JdClientStats>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let r = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = session(&address, &authority, &outputs, &work, &mut solutions, &stats) => r,
        };
        if let Err(e) = r {
            tracing::warn!(%address, error = %e, retry_in = ?backoff.delay(), "template provider link down");
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

/// A template and its transactions once the provider sent them.
type TemplateSlot = (NewTemplateOwned, Option<Vec<Vec<u8>>>);

/// Templates waiting for their tip and transactions.
#[derive(Default)]
struct Pending {
    templates: HashMap<u64, TemplateSlot>,
    tip: Option<SetNewPrevHashOwned>,
}

impl Pending {
    /// The newest template on the current tip whose transactions are here, as work.
    fn ready(&self, id: u64) -> Option<Work> {
        let tip = self.tip.as_ref()?;
        let (template, txs) = self.templates.get(&id)?;
        if template.future_template && tip.template_id != id {
            return None;
        }
        let txs = txs.clone()?;
        let wtxids = txs
            .iter()
            .map(|raw| {
                deserialize::<Transaction>(raw)
                    .map(|t| t.compute_wtxid().to_byte_array())
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        Some(Work {
            template: template.clone(),
            tip: tip.clone(),
            txs,
            wtxids,
        })
    }
}

async fn session(
    address: &str,
    authority: &AuthorityPublicKey,
    outputs: &[TxOut],
    work: &watch::Sender<Option<Arc<Work>>>,
    solutions: &mut mpsc::Receiver<SubmitSolutionOwned>,
    stats: &JdClientStats,
) -> Result<(), String> {
    let (mut reader, sender) =
        sv2_io::setup::connect_template_provider(address, authority, outputs)
            .await
            .map_err(|e| e.to_string())?;
    tracing::info!(%address, "template provider link up");
    let mut pending = Pending::default();
    loop {
        tokio::select! {
            solution = solutions.recv() => {
                let Some(s) = solution else { return Ok(()) };
                let frame = sv2_io::encode(s, MESSAGE_TYPE_SUBMIT_SOLUTION, 0, false).map_err(|e| e.to_string())?;
                sender.send(frame).await.map_err(|e| e.to_string())?;
            }
            frame = reader.next() => {
                let mut frame = frame.map_err(|e| e.to_string())?;
                let (ext, t) = sv2_io::frame::kind(&frame);
                if ext != 0 { continue; }
                let ready = match TemplateDistribution::try_from((t, frame.payload())) {
                    Ok(TemplateDistribution::NewTemplate(nt)) => {
                        let nt = nt.into_owned();
                        let id = nt.template_id;
                        // Even a coinbase-only template is asked for: the answer is its (empty)
                        // list, and the work is complete only then.
                        let ask = RequestTransactionData { template_id: id };
                        let frame = sv2_io::encode(ask, MESSAGE_TYPE_REQUEST_TRANSACTION_DATA, 0, false)
                            .map_err(|e| e.to_string())?;
                        sender.send(frame).await.map_err(|e| e.to_string())?;
                        pending.templates.insert(id, (nt, None));
                        if pending.templates.len() > KEEP_TEMPLATES {
                            if let Some(oldest) = pending.templates.keys().min().copied() {
                                pending.templates.remove(&oldest);
                            }
                        }
                        None
                    }
                    Ok(TemplateDistribution::RequestTransactionDataSuccess(data)) => {
                        let id = data.template_id;
                        let txs: Vec<Vec<u8>> = data.transaction_list.as_slice().iter().map(|t| t.as_bytes().to_vec()).collect();
                        if let Some((_, slot)) = pending.templates.get_mut(&id) {
                            *slot = Some(txs);
                        }
                        Some(id)
                    }
                    Ok(TemplateDistribution::RequestTransactionDataError(e)) => {
                        tracing::warn!(template_id = e.template_id, code = %e.error_code.as_utf8_or_hex(), "template transactions refused");
                        None
                    }
                    Ok(TemplateDistribution::SetNewPrevHash(p)) => {
                        let p = p.into_owned();
                        let id = p.template_id;
                        pending.templates.retain(|k, _| *k >= id);
                        pending.tip = Some(p);
                        Some(id)
                    }
                    Ok(other) => {
                        tracing::debug!(msg = ?other, "ignoring TDP message");
                        None
                    }
                    Err(e) => return Err(format!("malformed TDP frame {t:#04x}: {e:?}")),
                };
                if let Some(w) = ready.and_then(|id| pending.ready(id)) {
                    stats.templates.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(template_id = w.template.template_id, txs = w.txs.len(), "work ready");
                    work.send_replace(Some(Arc::new(w)));
                }
            }
        }
    }
}
