//! The devnet faucet from the wallet's side: derive outputs like shares do, have the mint sign
//! them, and keep the proofs.

use super::exchange::split_amount;
use super::{EhashWallet, IncomingSignature, WalletError};
use cdk::nuts::{BlindedMessage, PublicKey};
use cdk::Amount;
use ehash_api::{FaucetInfo, FaucetRequest, FaucetResponse, FAUCET_PATH};

impl EhashWallet {
    /// What the mint's faucet gives; an error if it has none (any mint but a devnet one).
    pub async fn faucet_info(&self) -> Result<FaucetInfo, WalletError> {
        self.api().get(FAUCET_PATH).await
    }

    /// Takes one gift of the faucet; returns the epoch and HASH received.
    pub async fn faucet(&self) -> Result<(u32, u64), WalletError> {
        let info = self.faucet_info().await.map_err(|e| {
            WalletError::Unavailable(format!("this mint has no faucet (devnet only): {e}"))
        })?;
        let epoch = self.liabilities().await?.current_epoch;
        let keyset = self.keyset_of_epoch(epoch).await?;
        let mut outputs = Vec::new();
        for amount in split_amount(info.amount) {
            let b = self.next_blinded(keyset).await?;
            let blinded_secret =
                PublicKey::from_slice(&b).map_err(|e| WalletError::Derive(e.to_string()))?;
            outputs.push(BlindedMessage::new(
                Amount::from(amount),
                keyset,
                blinded_secret,
            ));
        }
        let answer: FaucetResponse = self
            .api()
            .post(
                FAUCET_PATH,
                &FaucetRequest {
                    outputs: outputs.clone(),
                },
            )
            .await?;
        if answer.signatures.len() != outputs.len() {
            return Err(WalletError::Mint(format!(
                "faucet answered {} signatures for {} outputs",
                answer.signatures.len(),
                outputs.len()
            )));
        }
        let incoming: Vec<IncomingSignature> = outputs
            .iter()
            .zip(&answer.signatures)
            .map(|(o, s)| {
                IncomingSignature::from_blind_signature(&o.blinded_secret, s).ok_or_else(|| {
                    WalletError::BadSignature("faucet signature without DLEQ".into())
                })
            })
            .collect::<Result<_, _>>()?;
        let mut received = 0;
        for r in self.receive_batch(&incoming).await {
            received += r?;
        }
        tracing::info!(epoch, amount = received, "ehash from the devnet faucet");
        Ok((epoch, received))
    }
}
