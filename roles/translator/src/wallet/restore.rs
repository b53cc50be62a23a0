//! Restore from the seed (NUT-13 derivations, NUT-09 lookups by blinded message).
//!
//! CDK's own restore unblinds a signature with the keys of the keyset the message was derived
//! for; ours uses the keys of the keyset that signed, because after an epoch rotation the mint
//! signs messages derived for the previous keyset with the new one.

use super::{EhashWallet, IncomingSignature, WalletError};
use cdk::nuts::{BlindedMessage, Id, RestoreRequest, State};
use cdk::wallet::types::KeysetLoadPolicy;
use cdk::Amount;
use std::collections::HashMap;

/// Derivations asked about per request.
const BATCH: u32 = 100;
/// Empty batches after the highest reserved counter before a keyset's scan stops.
const MAX_GAP_BATCHES: u32 = 3;

/// What a restore found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Restored {
    /// Unspent proofs recovered (or already held).
    pub unspent_proofs: u64,
    /// Their amount.
    pub unspent: u64,
    /// Amount the mint signed for us that is spent already.
    pub spent: u64,
}

impl EhashWallet {
    /// Recovers every proof the mint signed for our seed, e.g. after a crash or on a new
    /// machine. Each keyset is scanned at least to the highest counter ever reserved, whatever
    /// the gaps, and the counters are moved past everything found so nothing is derived twice.
    pub async fn restore(&self) -> Result<Restored, WalletError> {
        let keysets = self.wallet.keysets(KeysetLoadPolicy::Refresh).await?;
        let mut total = Restored::default();
        for keyset in keysets {
            let r = self.restore_keyset(keyset.id).await?;
            total.unspent_proofs += r.unspent_proofs;
            total.unspent += r.unspent;
            total.spent += r.spent;
        }
        Ok(total)
    }

    async fn restore_keyset(&self, keyset: Id) -> Result<Restored, WalletError> {
        // Incrementing by zero reads the counter atomically.
        let reserved = self
            .wallet
            .localstore
            .increment_keyset_counter(&keyset, 0)
            .await?;
        let client = cdk::wallet::HttpClient::new(self.wallet.mint_url.clone(), None);
        let mut restored = Restored::default();
        let (mut start, mut empty, mut highest_found) = (0u32, 0u32, None::<u32>);
        while start < reserved || empty < MAX_GAP_BATCHES {
            let end = start.saturating_add(BATCH);
            let mut by_point = HashMap::new();
            let mut outputs = Vec::with_capacity(BATCH as usize);
            for counter in start..end {
                let out = self.derive(keyset, counter)?;
                outputs.push(BlindedMessage::new(Amount::ZERO, keyset, out.blinded));
                by_point.insert(out.blinded.to_bytes(), out);
            }
            let response =
                cdk::wallet::MintConnector::post_restore(&client, RestoreRequest { outputs })
                    .await?;
            if response.signatures.is_empty() {
                empty += 1;
            } else {
                empty = 0;
            }
            let mut infos = Vec::with_capacity(response.signatures.len());
            for (output, sig) in response.outputs.iter().zip(&response.signatures) {
                let point = output.blinded_secret.to_bytes();
                let Some(out) = by_point.remove(&point) else {
                    return Err(WalletError::BadSignature(
                        "restore answered a message we did not ask about".into(),
                    ));
                };
                let incoming = IncomingSignature::from_blind_signature(&out.blinded, sig)
                    .ok_or_else(|| {
                        WalletError::BadSignature("restored signature without DLEQ".into())
                    })?;
                highest_found = Some(highest_found.map_or(out.counter, |h| h.max(out.counter)));
                infos.push(self.proof_from(&incoming, out).await?);
            }
            if !infos.is_empty() {
                let proofs = infos.iter().map(|i| i.proof.clone()).collect();
                let states = self.wallet.check_proofs_spent(proofs).await?;
                let mut keep = Vec::with_capacity(infos.len());
                for (mut info, state) in infos.into_iter().zip(states) {
                    let amount = u64::from(info.proof.amount);
                    if state.state == State::Spent {
                        restored.spent += amount;
                        continue;
                    }
                    restored.unspent += amount;
                    restored.unspent_proofs += 1;
                    info.state = state.state;
                    keep.push(info);
                }
                self.wallet.localstore.update_proofs(keep, vec![]).await?;
            }
            start = end;
        }
        if let Some(h) = highest_found {
            let need = h.saturating_add(1);
            if need > reserved {
                self.wallet
                    .localstore
                    .increment_keyset_counter(&keyset, need - reserved)
                    .await?;
            }
        }
        Ok(restored)
    }
}
