//! Why an exchange was refused, with the HTTP status and [`ehash_api::codes`] code it maps to.

use ehash_api::codes;

/// A refused or failed exchange.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Inputs are not ehash.
    #[error("inputs must be ehash proofs")]
    NotEhash,
    /// Outputs are not for the active sat keyset.
    #[error("outputs must be blinded messages of the active sat keyset")]
    NotSat,
    /// A keyset that is not an epoch.
    #[error("keyset {0} is not an ehash epoch of this mint")]
    UnknownKeyset(String),
    /// Redemption before the rate is fixed.
    #[error("epoch {epoch} is {status}, not final: its rate is not fixed yet")]
    NotFinal {
        /// Epoch.
        epoch: u32,
        /// Its status.
        status: &'static str,
    },
    /// Buyback of a final epoch.
    #[error("epoch {0} is final: redeem it at its rate instead")]
    Final(u32),
    /// Outputs do not match the payout.
    #[error("outputs total {got} sat, the payout is {expected} sat")]
    WrongOutputs {
        /// Outputs' total.
        got: u64,
        /// Payout.
        expected: u64,
    },
    /// The inputs are worth less than a sat.
    #[error("the inputs are worth less than one sat")]
    NothingToPay,
    /// An input is spent.
    #[error("an input proof is already spent")]
    AlreadySpent,
    /// An input is being spent.
    #[error("an input proof is being spent by another request")]
    Pending,
    /// Unknown or used quote.
    #[error("quote {0} is unknown or already used")]
    UnknownQuote(String),
    /// Expired quote.
    #[error("quote {0} has expired")]
    QuoteExpired(String),
    /// Inputs do not match the quote.
    #[error("inputs do not match the quote: {0}")]
    QuoteMismatch(String),
    /// No tip known.
    #[error("no chain tip reported yet: cannot price a buyback")]
    NoPrice,
    /// Malformed or invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The mint failed.
    #[error("mint internal error: {0}")]
    Internal(String),
}

impl ExchangeError {
    /// Maps CDK's verification errors.
    pub fn from_cdk(e: cdk::Error) -> Self {
        match e {
            cdk::Error::TokenAlreadySpent => Self::AlreadySpent,
            cdk::Error::TokenPending => Self::Pending,
            cdk::Error::UnknownKeySet => Self::UnknownKeyset("in the request".into()),
            cdk::Error::Database(d) => Self::from_db(d),
            other => Self::Invalid(other.to_string()),
        }
    }

    /// Maps CDK's database errors.
    pub fn from_db(e: cdk::cdk_database::Error) -> Self {
        match e {
            cdk::cdk_database::Error::AttemptUpdateSpentProof => Self::AlreadySpent,
            cdk::cdk_database::Error::Duplicate => Self::Pending,
            other => Self::Internal(other.to_string()),
        }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotEhash => codes::NOT_EHASH,
            Self::NotSat => codes::NOT_SAT,
            Self::UnknownKeyset(_) => codes::UNKNOWN_KEYSET,
            Self::NotFinal { .. } => codes::EPOCH_NOT_FINAL,
            Self::Final(_) => codes::EPOCH_FINAL,
            Self::WrongOutputs { .. } => codes::WRONG_OUTPUT_AMOUNT,
            Self::NothingToPay => codes::NOTHING_TO_PAY,
            Self::AlreadySpent => codes::ALREADY_SPENT,
            Self::Pending => codes::PENDING,
            Self::UnknownQuote(_) => codes::UNKNOWN_QUOTE,
            Self::QuoteExpired(_) => codes::QUOTE_EXPIRED,
            Self::QuoteMismatch(_) => codes::QUOTE_MISMATCH,
            Self::NoPrice => codes::NO_PRICE,
            Self::Invalid(_) => codes::INVALID,
            Self::Internal(_) => codes::INTERNAL,
        }
    }

    /// HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::AlreadySpent | Self::Pending => 409,
            Self::Internal(_) => 500,
            Self::NoPrice => 503,
            _ => 400,
        }
    }
}
