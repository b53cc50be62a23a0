//! What a holder does with ehash: see it by epoch, redeem final epochs for sats, sell non-final
//! ones to the mint, send and receive `cashuB` tokens. Always one epoch (keyset) at a time, so
//! value never crosses epochs.

use super::mint_api::MintApi;
use super::{EhashWallet, IncomingSignature, Outstanding, WalletError};
use cdk::nuts::{
    BlindSignature, BlindedMessage, Id, Proofs, State, SwapRequest, SwapResponse, Token,
};
use cdk::types::ProofInfo;
use cdk::Amount;
use ehash_api::{
    BuybackQuote, BuybackQuoteRequest, EpochReport, ExchangeRequest, ExchangeResponse, Liabilities,
};
use ehash_protocol::economics::{redeem_msat, redeem_sat, MSAT_PER_SAT};
use serde::Serialize;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Ehash of one epoch in the wallet.
#[derive(Debug, Clone, Serialize)]
pub struct EpochHolding {
    /// Epoch number (none if the mint does not list the keyset).
    pub epoch: Option<u32>,
    /// Keyset id.
    pub keyset_id: String,
    /// `open`, `closed`, `final` or `unknown`.
    pub status: String,
    /// HASH held.
    pub amount: u64,
    /// Proofs held.
    pub proofs: u64,
    /// Sats a redemption pays now (final epochs).
    pub value_sat: Option<u64>,
    /// Sats the mint's buyback quote offers (non-final epochs, when asked for).
    pub buyback_sat: Option<u64>,
}

/// The wallet's holdings.
#[derive(Debug, Clone, Serialize)]
pub struct Holdings {
    /// Ehash by epoch, newest first.
    pub epochs: Vec<EpochHolding>,
    /// All ehash.
    pub ehash: u64,
    /// Sats from redemptions and sales.
    pub sat: u64,
}

/// Outcome of a redemption or sale.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SatsReceived {
    /// Epochs whose ehash was turned into sats.
    pub epochs: Vec<u32>,
    /// HASH given.
    pub hash: u64,
    /// Sats received.
    pub sat: u64,
    /// Buyback quote used (sales).
    pub quote: Option<String>,
}

/// Powers of two that sum to `n`, smallest first.
pub fn split_amount(n: u64) -> Vec<u64> {
    (0..64).map(|i| 1u64 << i).filter(|b| n & b != 0).collect()
}

impl EhashWallet {
    /// The mint's ehash API.
    pub fn api(&self) -> MintApi {
        MintApi::new(&self.wallet.mint_url.to_string())
    }

    /// The mint's per-epoch report.
    pub async fn liabilities(&self) -> Result<Liabilities, WalletError> {
        self.api().get(ehash_api::EPOCHS_PATH).await
    }

    async fn unspent_by_keyset(&self) -> Result<BTreeMap<Id, Vec<ProofInfo>>, WalletError> {
        let proofs = self
            .wallet
            .localstore
            .get_proofs(
                Some(self.wallet.mint_url.clone()),
                Some(self.wallet.unit.clone()),
                Some(vec![State::Unspent]),
                None,
            )
            .await?;
        let mut by = BTreeMap::<Id, Vec<ProofInfo>>::new();
        for p in proofs {
            by.entry(p.proof.keyset_id).or_default().push(p);
        }
        Ok(by)
    }

    /// Unspent sats.
    pub async fn sat_balance(&self) -> Result<u64, WalletError> {
        Ok(u64::from(self.sat_wallet.total_balance().await?))
    }

    /// Ehash by epoch with what it is worth now; `quotes` asks the mint for buyback offers.
    pub async fn holdings(&self, quotes: bool) -> Result<Holdings, WalletError> {
        let report = self.liabilities().await?;
        let by_keyset: BTreeMap<String, &EpochReport> = report
            .epochs
            .iter()
            .filter_map(|e| e.keyset_id.clone().map(|k| (k, e)))
            .collect();
        let mut epochs = Vec::new();
        let mut ehash = 0u64;
        for (keyset, proofs) in self.unspent_by_keyset().await? {
            let amount: u64 = proofs.iter().map(|p| u64::from(p.proof.amount)).sum();
            ehash += amount;
            let report = by_keyset.get(&keyset.to_string());
            let value_sat =
                report.and_then(|r| r.credit_msat.map(|c| redeem_sat(amount, c, r.issued)));
            let buyback_sat = match report {
                Some(r) if quotes && r.credit_msat.is_none() => {
                    self.quote(keyset, amount).await.map(|q| q.sat).ok()
                }
                _ => None,
            };
            epochs.push(EpochHolding {
                epoch: report.map(|r| r.epoch),
                keyset_id: keyset.to_string(),
                status: report.map_or("unknown".into(), |r| r.status.clone()),
                amount,
                proofs: proofs.len() as u64,
                value_sat,
                buyback_sat,
            });
        }
        epochs.sort_by_key(|b| std::cmp::Reverse(b.epoch));
        Ok(Holdings {
            epochs,
            ehash,
            sat: self.sat_balance().await?,
        })
    }

    /// Fresh outputs of `keyset` for `amounts` (NUT-13 counters reserved in one write).
    async fn fresh_outputs(
        &self,
        keyset: Id,
        amounts: &[u64],
    ) -> Result<(Vec<BlindedMessage>, Vec<Outstanding>), WalletError> {
        let n = u32::try_from(amounts.len())
            .map_err(|_| WalletError::Derive("too many outputs".into()))?;
        let end = self
            .wallet
            .localstore
            .increment_keyset_counter(&keyset, n)
            .await?;
        let mut messages = Vec::with_capacity(amounts.len());
        let mut secrets = Vec::with_capacity(amounts.len());
        for (i, amount) in amounts.iter().enumerate() {
            let counter = end - n + i as u32;
            let out = self.derive(keyset, counter)?;
            messages.push(BlindedMessage::new(
                Amount::from(*amount),
                keyset,
                out.blinded,
            ));
            secrets.push(out);
        }
        Ok((messages, secrets))
    }

    /// Verifies and unblinds the signatures on `outs`, in order.
    async fn unblind_all(
        &self,
        signatures: &[BlindSignature],
        outs: Vec<Outstanding>,
    ) -> Result<Vec<ProofInfo>, WalletError> {
        if signatures.len() != outs.len() {
            return Err(WalletError::BadSignature(format!(
                "{} signatures for {} outputs",
                signatures.len(),
                outs.len()
            )));
        }
        let mut infos = Vec::with_capacity(outs.len());
        for (sig, out) in signatures.iter().zip(outs) {
            let incoming = IncomingSignature::from_blind_signature(&out.blinded, sig)
                .ok_or_else(|| WalletError::BadSignature("signature without DLEQ".into()))?;
            infos.push(self.proof_from(&incoming, out).await?);
        }
        Ok(infos)
    }

    /// Sends `inputs` and `outputs` to an exchange endpoint, keeping the inputs reserved
    /// meanwhile; stores the sats and drops the inputs on success.
    async fn exchange_for_sats(
        &self,
        path: &str,
        quote: Option<String>,
        inputs: Vec<ProofInfo>,
        sat: u64,
    ) -> Result<ExchangeResponse, WalletError> {
        let sat_keyset = self.sat_wallet.active_keyset().await?.id;
        let (outputs, outs) = self.fresh_outputs(sat_keyset, &split_amount(sat)).await?;
        let ys = inputs.iter().map(|p| p.y).collect::<Vec<_>>();
        let proofs: Proofs = inputs.into_iter().map(|p| p.proof).collect();
        self.wallet
            .localstore
            .update_proofs_state(ys.clone(), State::Pending)
            .await?;
        let request = ExchangeRequest {
            quote,
            inputs: proofs,
            outputs,
        };
        let response: ExchangeResponse = match self.api().post(path, &request).await {
            Ok(r) => r,
            Err(e @ WalletError::Refused { .. }) => {
                // A refusal spent nothing: the proofs are ours again.
                self.wallet
                    .localstore
                    .update_proofs_state(ys, State::Unspent)
                    .await?;
                return Err(e);
            }
            // Unknown outcome: the inputs stay pending; a restore (sat keyset) finds the sats.
            Err(e) => return Err(e),
        };
        let sats = self.unblind_all(&response.signatures, outs).await?;
        self.wallet.localstore.update_proofs(sats, ys).await?;
        Ok(response)
    }

    /// Redeems every ehash of final epochs at their rates.
    pub async fn redeem_final(&self) -> Result<SatsReceived, WalletError> {
        let report = self.liabilities().await?;
        let terms: BTreeMap<String, (u32, u64, u64)> = report
            .epochs
            .iter()
            .filter_map(|e| Some((e.keyset_id.clone()?, (e.epoch, e.credit_msat?, e.issued))))
            .collect();
        let mut inputs = Vec::new();
        let (mut msat, mut hash, mut epochs) = (0u64, 0u64, Vec::new());
        for (keyset, proofs) in self.unspent_by_keyset().await? {
            let Some((epoch, credit, issued)) = terms.get(&keyset.to_string()).copied() else {
                continue;
            };
            let amount: u64 = proofs.iter().map(|p| u64::from(p.proof.amount)).sum();
            msat = msat.saturating_add(redeem_msat(amount, credit, issued));
            hash += amount;
            epochs.push(epoch);
            inputs.extend(proofs);
        }
        let sat = msat / MSAT_PER_SAT;
        if inputs.is_empty() || sat == 0 {
            return Ok(SatsReceived {
                epochs: Vec::new(),
                ..Default::default()
            });
        }
        let r = self
            .exchange_for_sats(ehash_api::REDEEM_PATH, None, inputs, sat)
            .await?;
        tracing::info!(hash, sat = r.sat, ?epochs, "redeemed final-epoch ehash");
        Ok(SatsReceived {
            epochs,
            hash,
            sat: r.sat,
            quote: None,
        })
    }

    /// Asks the mint for a buyback quote.
    pub async fn quote(&self, keyset: Id, amount: u64) -> Result<BuybackQuote, WalletError> {
        self.api()
            .post(
                ehash_api::BUYBACK_QUOTE_PATH,
                &BuybackQuoteRequest {
                    keyset_id: keyset,
                    amount,
                },
            )
            .await
    }

    /// Sells `amount` HASH of `keyset` to the mint at its buyback quote.
    pub async fn sell(&self, keyset: Id, amount: u64) -> Result<SatsReceived, WalletError> {
        let quote = self.quote(keyset, amount).await?;
        let inputs = self.take_exact(keyset, amount).await?;
        let r = self
            .exchange_for_sats(
                ehash_api::BUYBACK_PATH,
                Some(quote.quote.clone()),
                inputs,
                quote.sat,
            )
            .await?;
        Ok(SatsReceived {
            epochs: vec![quote.epoch],
            hash: amount,
            sat: r.sat,
            quote: Some(quote.quote),
        })
    }

    /// Swaps proofs of one keyset into new ones of the same keyset (`amounts`), stored now.
    async fn swap_in_epoch(
        &self,
        keyset: Id,
        inputs: Proofs,
        amounts: &[u64],
    ) -> Result<Vec<ProofInfo>, WalletError> {
        let (outputs, outs) = self.fresh_outputs(keyset, amounts).await?;
        let request = SwapRequest::new(inputs, outputs);
        let response: SwapResponse = self
            .api()
            .post(ehash_api::EPOCH_SWAP_PATH, &request)
            .await?;
        self.unblind_all(&response.signatures, outs).await
    }

    /// Proofs of `keyset` worth exactly `amount`, splitting one through an epoch swap if no
    /// combination of the proofs held adds up. They are taken out of the wallet's unspent set.
    async fn take_exact(&self, keyset: Id, amount: u64) -> Result<Vec<ProofInfo>, WalletError> {
        let mut held = self
            .unspent_by_keyset()
            .await?
            .remove(&keyset)
            .unwrap_or_default();
        let total: u64 = held.iter().map(|p| u64::from(p.proof.amount)).sum();
        if amount == 0 || total < amount {
            return Err(WalletError::Unavailable(format!(
                "keyset {keyset} holds {total} HASH, {amount} asked"
            )));
        }
        held.sort_by_key(|p| std::cmp::Reverse(p.proof.amount));
        let (mut picked, mut rest, mut left) = (Vec::new(), Vec::new(), amount);
        for p in held {
            let a = u64::from(p.proof.amount);
            if a <= left {
                left -= a;
                picked.push(p);
            } else {
                rest.push(p);
            }
        }
        if left == 0 {
            return Ok(picked);
        }
        // Not exact: swap the smallest proof larger than what is missing into the exact
        // remainder plus change.
        rest.sort_by_key(|p| p.proof.amount);
        let big = rest
            .into_iter()
            .find(|p| u64::from(p.proof.amount) > left)
            .ok_or_else(|| WalletError::Unavailable("no proof to split".into()))?;
        let change = u64::from(big.proof.amount) - left;
        let mut amounts = split_amount(left);
        let wanted = amounts.len();
        amounts.extend(split_amount(change));
        self.wallet
            .localstore
            .update_proofs_state(vec![big.y], State::Pending)
            .await?;
        let mut fresh = match self
            .swap_in_epoch(keyset, vec![big.proof.clone()], &amounts)
            .await
        {
            Ok(f) => f,
            Err(e @ WalletError::Refused { .. }) => {
                self.wallet
                    .localstore
                    .update_proofs_state(vec![big.y], State::Unspent)
                    .await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        self.wallet
            .localstore
            .update_proofs(fresh.clone(), vec![big.y])
            .await?;
        picked.extend(fresh.drain(..wanted));
        Ok(picked)
    }

    /// A `cashuB` token worth `amount` HASH of `keyset`; the proofs are marked pending-spent.
    pub async fn send(
        &self,
        keyset: Id,
        amount: u64,
        memo: Option<String>,
    ) -> Result<String, WalletError> {
        let proofs = self.take_exact(keyset, amount).await?;
        let ys = proofs.iter().map(|p| p.y).collect();
        let token = Token::new(
            self.wallet.mint_url.clone(),
            proofs.into_iter().map(|p| p.proof).collect(),
            memo,
            self.wallet.unit.clone(),
        );
        self.wallet
            .localstore
            .update_proofs_state(ys, State::PendingSpent)
            .await?;
        Ok(token.to_string())
    }

    /// Takes ownership of a `cashuB` token of this mint: each epoch's proofs are swapped for
    /// new ones of the same epoch. Returns the HASH received.
    pub async fn receive(&self, token: &str) -> Result<u64, WalletError> {
        let token = Token::from_str(token.trim())
            .map_err(|e| WalletError::Unavailable(format!("not a token: {e}")))?;
        let url = token
            .mint_url()
            .map_err(|e| WalletError::Unavailable(e.to_string()))?;
        if url != self.wallet.mint_url {
            return Err(WalletError::Unavailable(format!(
                "token of another mint: {url}"
            )));
        }
        self.wallet
            .keysets(cdk::wallet::types::KeysetLoadPolicy::Refresh)
            .await?;
        let keysets = self
            .wallet
            .localstore
            .get_mint_keysets(self.wallet.mint_url.clone())
            .await?
            .unwrap_or_default();
        let proofs = token
            .proofs(&keysets)
            .map_err(|e| WalletError::Unavailable(e.to_string()))?;
        let mut by = BTreeMap::<Id, Proofs>::new();
        for p in proofs {
            by.entry(p.keyset_id).or_default().push(p);
        }
        let mut received = 0u64;
        for (keyset, proofs) in by {
            let amount: u64 = proofs.iter().map(|p| u64::from(p.amount)).sum();
            let fresh = self
                .swap_in_epoch(keyset, proofs, &split_amount(amount))
                .await?;
            self.wallet.localstore.update_proofs(fresh, vec![]).await?;
            received += amount;
        }
        Ok(received)
    }

    /// Keyset of epoch `epoch` from the mint's report.
    pub async fn keyset_of_epoch(&self, epoch: u32) -> Result<Id, WalletError> {
        let report = self.liabilities().await?;
        report
            .epochs
            .iter()
            .find(|e| e.epoch == epoch)
            .and_then(|e| e.keyset_id.as_deref())
            .and_then(|k| k.parse().ok())
            .ok_or_else(|| WalletError::Unavailable(format!("the mint lists no epoch {epoch}")))
    }
}
