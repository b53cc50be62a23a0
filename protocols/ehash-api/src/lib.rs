//! Requests and answers of the mint's ehash endpoints under `/hashpool/v1/`, shared by the mint
//! (which serves them) and wallets (which call them). Standard Cashu routes stay under `/v1/`.

use cdk_common::nuts::{BlindSignature, BlindedMessage, Id, Proofs};
use serde::{Deserialize, Serialize};

/// Path of the per-epoch proof of liabilities (GET).
pub const EPOCHS_PATH: &str = "/hashpool/v1/epochs";
/// Path of redemption of final-epoch ehash for sats (POST [`ExchangeRequest`]).
pub const REDEEM_PATH: &str = "/hashpool/v1/redeem";
/// Path of buyback quotes (POST [`BuybackQuoteRequest`]).
pub const BUYBACK_QUOTE_PATH: &str = "/hashpool/v1/buyback/quote";
/// Path of accepting a buyback quote (POST [`ExchangeRequest`] with `quote`).
pub const BUYBACK_PATH: &str = "/hashpool/v1/buyback";
/// Path of the epoch-preserving swap (POST NUT-03 `SwapRequest`, answers `SwapResponse`): all
/// inputs and outputs of one ehash keyset, active or not.
pub const EPOCH_SWAP_PATH: &str = "/hashpool/v1/swap";
/// Base path (relative to the ehash mint URL) of the `sat` mint ordinary Cashu wallets use.
pub const SAT_MINT_PATH: &str = "/sat";

/// Ehash proofs in, blinded `sat` messages out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExchangeRequest {
    /// Buyback quote id (buyback only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    /// Ehash proofs (all of one epoch for a buyback; any final epochs for a redemption).
    pub inputs: Proofs,
    /// Blinded messages of the active `sat` keyset; their amounts must total the payout.
    pub outputs: Vec<BlindedMessage>,
}

/// The `sat` signatures, made and stored in the same transaction that spent the inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExchangeResponse {
    /// One signature per output, in order.
    pub signatures: Vec<BlindSignature>,
    /// Sats paid.
    pub sat: u64,
    /// Millisats the inputs were worth (`sat` is this floored to whole sats).
    pub msat: u64,
}

/// Ask for a buyback price.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuybackQuoteRequest {
    /// Ehash keyset (epoch) to sell.
    pub keyset_id: Id,
    /// HASH to sell.
    pub amount: u64,
}

/// A buyback offer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuybackQuote {
    /// Quote id.
    pub quote: String,
    /// Keyset (epoch) it is for.
    pub keyset_id: Id,
    /// Epoch number.
    pub epoch: u32,
    /// HASH it buys.
    pub amount: u64,
    /// Sats it pays.
    pub sat: u64,
    /// Price, millisats per HASH (after the discount).
    pub msat_per_hash: f64,
    /// Unix time after which it is refused.
    pub expiry: u64,
}

/// Error answer of every ehash endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable machine-readable code (see [`codes`]).
    pub code: String,
    /// Human-readable explanation.
    pub detail: String,
}

/// Error codes of [`ApiError`].
pub mod codes {
    /// Inputs are not ehash proofs.
    pub const NOT_EHASH: &str = "not-ehash";
    /// Outputs are not for the active sat keyset.
    pub const NOT_SAT: &str = "not-sat";
    /// A keyset is not an ehash epoch of this mint.
    pub const UNKNOWN_KEYSET: &str = "unknown-keyset";
    /// Redemption of an epoch whose rate is not fixed yet.
    pub const EPOCH_NOT_FINAL: &str = "epoch-not-final";
    /// Buyback of an epoch that is final (redeem it instead).
    pub const EPOCH_FINAL: &str = "epoch-final";
    /// Outputs do not total the payout.
    pub const WRONG_OUTPUT_AMOUNT: &str = "wrong-output-amount";
    /// The inputs are worth less than one sat.
    pub const NOTHING_TO_PAY: &str = "nothing-to-pay";
    /// Some input is spent.
    pub const ALREADY_SPENT: &str = "already-spent";
    /// Some input is being spent by another request.
    pub const PENDING: &str = "pending";
    /// Unknown or used quote.
    pub const UNKNOWN_QUOTE: &str = "unknown-quote";
    /// Expired quote.
    pub const QUOTE_EXPIRED: &str = "quote-expired";
    /// The inputs do not match the quote.
    pub const QUOTE_MISMATCH: &str = "quote-mismatch";
    /// No chain data to price a buyback yet.
    pub const NO_PRICE: &str = "no-price";
    /// Malformed or invalid request (bad signature, duplicate, ...).
    pub const INVALID: &str = "invalid";
    /// The mint failed.
    pub const INTERNAL: &str = "internal";
}
