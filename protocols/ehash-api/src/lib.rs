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

/// A block's contribution to one epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockCredit {
    /// Block hash (display order hex).
    pub hash: String,
    /// Height.
    pub height: u32,
    /// Epoch it was found in.
    pub found_in_epoch: u32,
    /// Coinbase value, sats.
    pub reward_sat: u64,
    /// `pending`, `matured` or `orphaned`.
    pub status: String,
    /// Confirmations last reported.
    pub confirmations: u32,
    /// Millisats it pays this epoch (expected, while pending).
    pub credit_msat: u64,
}

/// One epoch's line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochReport {
    /// Epoch number.
    pub epoch: u32,
    /// Keyset id.
    pub keyset_id: Option<String>,
    /// Height of its first block.
    pub start_height: u32,
    /// `open`, `closed` or `final`.
    pub status: String,
    /// Ehash issued for shares.
    pub issued: u64,
    /// Ehash still unspent.
    pub outstanding: u64,
    /// Ehash turned into sats (issued − outstanding).
    pub redeemed: u64,
    /// Fixed credit, millisats (final epochs).
    pub credit_msat: Option<u64>,
    /// Credit from matured blocks so far.
    pub matured_credit_msat: u64,
    /// Credit if every pending block matures.
    pub expected_credit_msat: u64,
    /// Rate as `credit_msat / issued` millisats per HASH (final epochs; for display — payouts
    /// use the exact fraction).
    pub rate_msat_per_hash: Option<f64>,
    /// Millisats owed to the outstanding ehash at the rate (final epochs).
    pub owed_msat: Option<u64>,
    /// Blocks that pay it.
    pub blocks: Vec<BlockCredit>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Liabilities {
    /// Network blocks per epoch.
    pub epoch_blocks: u32,
    /// Epochs a block pays.
    pub accrual_epochs: u32,
    /// Pool fee, ppm.
    pub pool_fee_ppm: u32,
    /// Current epoch.
    pub current_epoch: u32,
    /// Height being mined, as last reported.
    pub tip_height: Option<u32>,
    /// Epochs, newest first.
    pub epochs: Vec<EpochReport>,
    /// Blocks found.
    pub blocks_found: u64,
    /// Sum of rewards of matured blocks, sats.
    pub matured_rewards_sat: u64,
    /// The same after the pool fee, sats.
    pub matured_net_sat: u64,
    /// Sum of fixed credits of final epochs, millisats.
    pub final_credit_msat: u64,
    /// Epochs that are final.
    pub epochs_final: u64,
    /// Millisats owed to all outstanding ehash of final epochs.
    pub owed_msat: u64,
    /// `final_credit_msat <= matured_net_sat * 1000`.
    pub solvent: bool,
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

/// Path of the devnet faucet (GET: how much it gives; POST: give).
pub const FAUCET_PATH: &str = "/hashpool/v1/faucet";

/// A gift request: blinded outputs whose amounts sum to at most the faucet's amount.
#[derive(Debug, Serialize, Deserialize)]
pub struct FaucetRequest {
    /// Outputs to sign.
    pub outputs: Vec<BlindedMessage>,
}

/// The signatures, in the order of the outputs.
#[derive(Debug, Serialize, Deserialize)]
pub struct FaucetResponse {
    /// Signatures (with DLEQ), made with the active keyset.
    pub signatures: Vec<BlindSignature>,
}

/// What the faucet gives.
#[derive(Debug, Serialize, Deserialize)]
pub struct FaucetInfo {
    /// HASH per request.
    pub amount: u64,
}
