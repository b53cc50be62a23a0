//! Answers that come back to a downstream connection from the share journal and the mint:
//! acknowledgements, refusals, and signatures, which go out batched when several are ready.

use crate::downstream::Connection;
use crate::mint_client::EhashReply;
use ehash_protocol::messages as m;

impl Connection {
    pub(crate) async fn on_replies(&self, replies: Vec<EhashReply>) -> Result<(), String> {
        let mut signed = Vec::new();
        for reply in replies {
            match reply {
                EhashReply::Signed(sig) => signed.push(sig),
                other => self.on_reply(other).await?,
            }
        }
        self.send_signatures(signed).await
    }

    /// Sends signatures: one alone as `EhashSignature`, more as `EhashSignatures` per channel
    /// and keyset.
    async fn send_signatures(&self, mut signed: Vec<m::EhashSignature>) -> Result<(), String> {
        use ehash_protocol::signature_batch::{EhashSignatures, MAX_RECORDS, MSG_EHASH_SIGNATURES};
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

    async fn on_reply(&self, reply: EhashReply) -> Result<(), String> {
        match reply {
            EhashReply::Signed(sig) => self.send_signatures(vec![sig]).await,
            EhashReply::Recorded { pending, outcome } => self.on_recorded(pending, outcome).await,
            EhashReply::Refused {
                channel_id,
                sequence_number,
                code,
            } => self.ehash_error(channel_id, sequence_number, &code).await,
        }
    }
}
