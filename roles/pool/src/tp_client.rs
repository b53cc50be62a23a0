//! Template Distribution client: keeps a link to the template provider, publishes its work
//! and submits block solutions. Reconnects with backoff.

use crate::stats::PoolStats;
use crate::work::{WorkEvent, WorkState};
use std::sync::Arc;
use std::time::Duration;
use stratum_core::bitcoin::TxOut;
use stratum_core::parsers_sv2::TemplateDistribution;
use stratum_core::template_distribution_sv2::{
    RequestTransactionData, SubmitSolutionOwned, MESSAGE_TYPE_REQUEST_TRANSACTION_DATA,
    MESSAGE_TYPE_SUBMIT_SOLUTION,
};
use sv2_io::{AuthorityPublicKey, Backoff, Failover};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Runs the TP link until shutdown.
pub async fn run(
    mut providers: Failover,
    outputs: Vec<TxOut>,
    work: Arc<WorkState>,
    stats: Arc<PoolStats>,
    mut solutions: mpsc::Receiver<SubmitSolutionOwned>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let Some(tp) = providers.current().cloned() else {
            tracing::error!("no template provider configured");
            return;
        };
        let ups = stats.tp.ups();
        let session = session(
            &tp.address,
            &tp.authority,
            &outputs,
            &work,
            &stats,
            &mut solutions,
        );
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = session => r,
        };
        stats.tp.set_up(false);
        match result {
            Ok(()) => backoff.reset(),
            Err(e) => {
                tracing::warn!(address = %tp.address, error = %e, retry_in = ?backoff.delay(), "template provider link down")
            }
        }
        let before = tp.address;
        providers.session_ended(stats.tp.ups() > ups);
        if providers.current().is_some_and(|p| p.address != before) {
            backoff.reset();
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

async fn session(
    address: &str,
    authority: &AuthorityPublicKey,
    outputs: &[TxOut],
    work: &WorkState,
    stats: &PoolStats,
    solutions: &mut mpsc::Receiver<SubmitSolutionOwned>,
) -> Result<(), String> {
    let (mut reader, sender) =
        sv2_io::setup::connect_template_provider(address, authority, outputs)
            .await
            .map_err(|e| e.to_string())?;
    stats.tp.set_up(true);
    tracing::info!(%address, "template provider link up");
    loop {
        tokio::select! {
            solution = solutions.recv() => {
                let Some(s) = solution else { return Ok(()) };
                let frame = sv2_io::encode(s, MESSAGE_TYPE_SUBMIT_SOLUTION, 0, false).map_err(|e| e.to_string())?;
                sender.send(frame).await.map_err(|e| e.to_string())?;
            }
            frame = reader.next() => {
                let mut frame = frame.map_err(|e| e.to_string())?;
                stats.tp.seen();
                let (ext, t) = sv2_io::frame::kind(&frame);
                if ext != 0 { continue; }
                match TemplateDistribution::try_from((t, frame.payload())) {
                    Ok(TemplateDistribution::NewTemplate(nt)) => {
                        let id = nt.template_id;
                        let has_txs = !nt.merkle_path.is_empty();
                        work.publish(WorkEvent::Template(nt.into_owned()));
                        if has_txs {
                            // Job declarations may name these transactions without providing them.
                            let ask = RequestTransactionData { template_id: id };
                            let frame = sv2_io::encode(ask, MESSAGE_TYPE_REQUEST_TRANSACTION_DATA, 0, false)
                                .map_err(|e| e.to_string())?;
                            sender.send(frame).await.map_err(|e| e.to_string())?;
                        }
                    }
                    Ok(TemplateDistribution::RequestTransactionDataSuccess(data)) => {
                        let learned = work
                            .known_transactions()
                            .learn(data.transaction_list.as_slice().iter().map(|t| t.as_bytes()));
                        tracing::debug!(template_id = data.template_id, learned, "template transactions");
                    }
                    Ok(TemplateDistribution::RequestTransactionDataError(e)) => {
                        tracing::debug!(template_id = e.template_id, code = %e.error_code.as_utf8_or_hex(), "template transactions not given");
                    }
                    Ok(TemplateDistribution::SetNewPrevHash(p)) => {
                        work.publish(WorkEvent::PrevHash(p.into_owned()));
                    }
                    Ok(other) => tracing::debug!(msg = ?other, "ignoring TDP message"),
                    Err(e) => return Err(format!("malformed TDP frame {t:#04x}: {e:?}")),
                }
            }
        }
    }
}
