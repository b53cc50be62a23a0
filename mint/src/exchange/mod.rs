//! Ehash for sats: redemption of final epochs at their fixed rate, and buyback of non-final
//! epochs at a quoted price. Both spend the ehash inputs and store the `sat` signatures in one
//! CDK database transaction, so inputs can never be turned into sats twice.

pub mod buyback;
mod epoch_swap;
mod error;

pub use buyback::Buyback;
pub use epoch_swap::swap_in_epoch;
pub use error::ExchangeError;

use crate::EhashLedger;
use cdk::mint::Mint;
use cdk::nuts::{BlindedMessage, CurrencyUnit, Id, Proofs, PublicKey, State, SwapRequest};
use cdk::Amount;
use cdk_common::mint::Operation;
use cdk_common::nuts::SpendingConditionVerification;
use ehash_api::ExchangeResponse;
use std::collections::BTreeMap;

/// Ehash per keyset in a request's inputs.
pub type InputsByKeyset = BTreeMap<Id, u64>;

/// Spends `inputs` (ehash) and signs `outputs` (sat), after `price` (millisats for the inputs,
/// by keyset) and the outputs' total agree.
pub async fn exchange(
    ledger: &EhashLedger,
    inputs: Proofs,
    outputs: Vec<BlindedMessage>,
    price: impl FnOnce(&InputsByKeyset) -> Result<u64, ExchangeError>,
) -> Result<ExchangeResponse, ExchangeError> {
    let mint: &Mint = ledger.mint();
    if inputs.is_empty() {
        return Err(ExchangeError::Invalid("no inputs".into()));
    }
    Mint::check_inputs_unique(&inputs).map_err(ExchangeError::from_cdk)?;
    let v_in = mint
        .verify_inputs(&inputs)
        .await
        .map_err(ExchangeError::from_cdk)?;
    if v_in.amount.unit() != ledger.unit() {
        return Err(ExchangeError::NotEhash);
    }
    refuse_known_inputs(mint, &inputs).await?;
    let v_out = mint
        .verify_outputs(&outputs)
        .map_err(ExchangeError::from_cdk)?;
    if v_out.amount.unit() != &CurrencyUnit::Sat {
        return Err(ExchangeError::NotSat);
    }
    SwapRequest::new(inputs.clone(), outputs.clone())
        .verify_spending_conditions()
        .map_err(|e| ExchangeError::Invalid(format!("spending conditions: {e}")))?;
    let mut by_keyset = InputsByKeyset::new();
    for p in &inputs {
        let entry = by_keyset.entry(p.keyset_id).or_insert(0);
        *entry = entry
            .checked_add(u64::from(p.amount))
            .ok_or_else(|| ExchangeError::Invalid("input amounts overflow".into()))?;
    }
    let msat = price(&by_keyset)?;
    let sat = msat / ehash_protocol::economics::MSAT_PER_SAT;
    if sat == 0 {
        return Err(ExchangeError::NothingToPay);
    }
    if v_out.amount.value() != sat {
        return Err(ExchangeError::WrongOutputs {
            got: v_out.amount.value(),
            expected: sat,
        });
    }
    let signatures = mint
        .blind_sign(outputs.clone())
        .await
        .map_err(ExchangeError::from_cdk)?;
    let op = Operation::new_swap(
        Amount::from(sat),
        Amount::from(v_in.amount.value()),
        Amount::ZERO,
    );
    spend_and_store(mint, &inputs, &outputs, &signatures, &op).await?;
    tracing::info!(
        inputs = inputs.len(),
        hash = v_in.amount.value(),
        sat,
        msat,
        "ehash exchanged for sats"
    );
    Ok(ExchangeResponse {
        signatures,
        sat,
        msat,
    })
}

/// Early, clear refusal of inputs the mint already saw spent or pending (the transaction in
/// [`spend_and_store`] stays the guarantee).
pub(crate) async fn refuse_known_inputs(mint: &Mint, inputs: &Proofs) -> Result<(), ExchangeError> {
    let ys = inputs
        .iter()
        .map(|p| p.y())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ExchangeError::Invalid(e.to_string()))?;
    let states = mint
        .localstore()
        .get_proofs_states(&ys)
        .await
        .map_err(|e| ExchangeError::Internal(e.to_string()))?;
    for state in states.into_iter().flatten() {
        match state {
            State::Spent => return Err(ExchangeError::AlreadySpent),
            State::Pending | State::Reserved | State::PendingSpent => {
                return Err(ExchangeError::Pending)
            }
            State::Unspent => {}
        }
    }
    Ok(())
}

/// In one transaction: marks `inputs` spent (refusing any already known to the mint) and stores
/// `signatures` on `outputs`.
pub(crate) async fn spend_and_store(
    mint: &Mint,
    inputs: &Proofs,
    outputs: &[BlindedMessage],
    signatures: &[cdk::nuts::BlindSignature],
    op: &Operation,
) -> Result<(), ExchangeError> {
    let points: Vec<PublicKey> = outputs.iter().map(|o| o.blinded_secret).collect();
    let mut tx = mint
        .localstore()
        .begin_transaction()
        .await
        .map_err(|e| ExchangeError::Internal(e.to_string()))?;
    let result = async {
        let mut acquired = tx
            .add_proofs(inputs.clone(), None, op)
            .await
            .map_err(ExchangeError::from_db)?;
        Mint::update_proofs_state(&mut tx, &mut acquired, State::Spent)
            .await
            .map_err(ExchangeError::from_cdk)?;
        tx.add_blinded_messages(None, outputs, op)
            .await
            .map_err(ExchangeError::from_db)?;
        tx.add_blind_signatures(&points, signatures, None)
            .await
            .map_err(ExchangeError::from_db)?;
        Ok::<(), ExchangeError>(())
    }
    .await;
    match result {
        Ok(()) => tx
            .commit()
            .await
            .map_err(|e| ExchangeError::Internal(e.to_string())),
        Err(e) => {
            if let Err(rb) = tx.rollback().await {
                tracing::error!(error = %rb, "rollback of a refused exchange failed");
            }
            Err(e)
        }
    }
}

/// Redeems ehash of final epochs at their fixed rates.
pub async fn redeem(
    ledger: &EhashLedger,
    inputs: Proofs,
    outputs: Vec<BlindedMessage>,
) -> Result<ExchangeResponse, ExchangeError> {
    exchange(ledger, inputs, outputs, |by_keyset| {
        let mut msat = 0u64;
        for (keyset, amount) in by_keyset {
            let terms = ledger.epochs().redeem_terms(keyset)?;
            msat = msat.saturating_add(ehash_protocol::economics::redeem_msat(
                *amount,
                terms.credit_msat,
                terms.issued,
            ));
        }
        Ok(msat)
    })
    .await
}
