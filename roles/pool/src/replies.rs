//! Answers that come back to a downstream connection from the share journal and the mint:
//! acknowledgements, refusals, and signatures, which go out batched when several are ready.

use crate::downstream::Connection;
use crate::journal::RecordOutcome;
use crate::mint_client::EhashReply;
use crate::share_race::{MintAnswer, Verdict};
use ehash_protocol::messages as m;

impl Connection {
    pub(crate) async fn on_replies(&mut self, replies: Vec<EhashReply>) -> Result<(), String> {
        let mut signed = Vec::new();
        for reply in replies {
            let verdict = match reply {
                EhashReply::Recorded { blinded, outcome } => {
                    if let RecordOutcome::Failed(e) = &outcome {
                        tracing::error!(error = %e, "share not journaled; only its signature can save it");
                    }
                    self.unacked.on_journal(&blinded, &outcome)
                }
                EhashReply::Signed { blinded, signature } => self
                    .unacked
                    .on_mint(&blinded, MintAnswer::Signed(signature)),
                EhashReply::Refused {
                    blinded,
                    channel_id,
                    sequence_number,
                    code,
                } => self.unacked.on_mint(
                    &blinded,
                    MintAnswer::Refused {
                        channel_id,
                        sequence_number,
                        code,
                    },
                ),
            };
            self.send_verdict(verdict, &mut signed).await?;
        }
        self.send_signatures(signed).await
    }

    /// Sends the acknowledgement or rejection now; a signature joins `signed` (sent after).
    async fn send_verdict(
        &self,
        verdict: Verdict,
        signed: &mut Vec<m::EhashSignature>,
    ) -> Result<(), String> {
        if let Some(s) = verdict.ack {
            self.acknowledge(s.channel_id, s.sequence_number, s.amount)
                .await?;
        }
        if let Some(s) = verdict.reject {
            tracing::error!(
                channel_id = s.channel_id,
                sequence_number = s.sequence_number,
                "share neither journaled nor signed; refused"
            );
            self.reject(s.channel_id, s.sequence_number, m::ERR_POOL_JOURNAL)
                .await?;
        }
        match verdict.answer {
            Some(MintAnswer::Signed(sig)) => signed.push(sig),
            Some(MintAnswer::Refused {
                channel_id,
                sequence_number,
                code,
            }) => self.ehash_error(channel_id, sequence_number, &code).await?,
            None => {}
        }
        Ok(())
    }

    /// Sends signatures: one alone as `EhashSignature`, more as `EhashSignatures` per channel
    /// and keyset.
    async fn send_signatures(&self, mut signed: Vec<m::EhashSignature>) -> Result<(), String> {
        use ehash_protocol::signature_batch::{EhashSignatures, MAX_RECORDS, MSG_EHASH_SIGNATURES};
        if signed.is_empty() {
            return Ok(());
        }
        if signed.len() == 1 {
            if let Some(sig) = signed.pop() {
                return self.send_ehash(sig, m::MSG_EHASH_SIGNATURE).await;
            }
        }
        signed.sort_by(|a, b| {
            (a.channel_id, a.keyset_id.as_bytes()).cmp(&(b.channel_id, b.keyset_id.as_bytes()))
        });
        for group in signed.chunk_by(|a, b| {
            a.channel_id == b.channel_id && a.keyset_id.as_bytes() == b.keyset_id.as_bytes()
        }) {
            for part in group.chunks(MAX_RECORDS) {
                let batch = EhashSignatures::pack(part).map_err(|e| e.to_string())?;
                self.send_ehash(batch, MSG_EHASH_SIGNATURES).await?;
            }
        }
        Ok(())
    }
}
