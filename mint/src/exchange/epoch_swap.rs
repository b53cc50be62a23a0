//! Swaps inside one ehash epoch (NUT-03 semantics, any epoch keyset, active or not): how a
//! holder splits proofs and how a buyer takes ownership of a received token of a closed epoch.
//! Inputs and outputs must all be of the same keyset, so value never moves between epochs.

use super::{spend_and_store, ExchangeError};
use crate::EhashLedger;
use cdk::mint::Mint;
use cdk::nuts::{SwapRequest, SwapResponse};
use cdk::Amount;
use cdk_common::mint::Operation;
use cdk_common::nuts::SpendingConditionVerification;

/// Largest number of outputs in one epoch swap.
const MAX_OUTPUTS: usize = 1000;

/// Performs an epoch-preserving swap.
pub async fn swap_in_epoch(
    ledger: &EhashLedger,
    request: SwapRequest,
) -> Result<SwapResponse, ExchangeError> {
    let (inputs, outputs) = (request.inputs(), request.outputs());
    let Some(keyset) = inputs.first().map(|p| p.keyset_id) else {
        return Err(ExchangeError::Invalid("no inputs".into()));
    };
    if outputs.is_empty() || outputs.len() > MAX_OUTPUTS {
        return Err(ExchangeError::Invalid(format!(
            "between 1 and {MAX_OUTPUTS} outputs"
        )));
    }
    if !ledger.is_ehash_keyset(&keyset) {
        return Err(ExchangeError::NotEhash);
    }
    let one_keyset = inputs.iter().all(|p| p.keyset_id == keyset)
        && outputs.iter().all(|o| o.keyset_id == keyset);
    if !one_keyset {
        return Err(ExchangeError::Invalid(
            "all inputs and outputs must be of one keyset (epoch)".into(),
        ));
    }
    let mint: &Mint = ledger.mint();
    Mint::check_inputs_unique(inputs).map_err(ExchangeError::from_cdk)?;
    Mint::check_outputs_unique(outputs).map_err(ExchangeError::from_cdk)?;
    let v_in = mint
        .verify_inputs(inputs)
        .await
        .map_err(ExchangeError::from_cdk)?;
    super::refuse_known_inputs(mint, inputs).await?;
    request
        .verify_spending_conditions()
        .map_err(|e| ExchangeError::Invalid(format!("spending conditions: {e}")))?;
    let out_total = Amount::try_sum(outputs.iter().map(|o| o.amount))
        .map_err(|e| ExchangeError::Invalid(e.to_string()))?;
    if u64::from(out_total) != v_in.amount.value() {
        return Err(ExchangeError::WrongOutputs {
            got: u64::from(out_total),
            expected: v_in.amount.value(),
        });
    }
    let keys = ledger
        .epoch_keys()
        .keyset(&keyset)
        .await
        .map_err(|e| ExchangeError::Internal(e.to_string()))?;
    let signatures = crate::epoch_keys::EpochKeys::sign(&keys, outputs)
        .map_err(|e| ExchangeError::Invalid(e.to_string()))?;
    let op = Operation::new_swap(out_total, Amount::from(v_in.amount.value()), Amount::ZERO);
    spend_and_store(mint, inputs, outputs, &signatures, &op).await?;
    tracing::info!(%keyset, amount = v_in.amount.value(), outputs = outputs.len(), "epoch swap");
    Ok(SwapResponse::new(signatures))
}
