//! Buyback of non-final ehash: the mint quotes the expected value of a HASH from the current
//! network difficulty and block reward, minus a discount, and pays it at once (the operator
//! takes the luck of the epoch). Quotes live in memory and expire.

use super::{exchange, ExchangeError};
use crate::EhashLedger;
use cdk::nuts::{BlindedMessage, Id, Proofs};
use ehash_api::{BuybackQuote, ExchangeResponse};
use ehash_protocol::difficulty::expected_hashes;
use ehash_protocol::economics::{expected_msat_per_hash, net_reward_sat, PPM};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Open quotes at most (old ones are dropped first).
const MAX_QUOTES: usize = 10_000;

/// Buyback terms and open quotes.
pub struct Buyback {
    discount_ppm: u32,
    validity: Duration,
    quotes: Mutex<HashMap<String, BuybackQuote>>,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Buyback {
    /// Buyback with `discount_ppm` off the expected value and quotes valid for `validity`.
    pub fn new(discount_ppm: u32, validity: Duration) -> Self {
        Self {
            discount_ppm,
            validity,
            quotes: Mutex::new(HashMap::new()),
        }
    }

    /// Millisats per HASH the mint pays now, after the discount.
    pub fn price_msat_per_hash(&self, ledger: &EhashLedger) -> Result<f64, ExchangeError> {
        let tip = ledger.epochs().tip().ok_or(ExchangeError::NoPrice)?;
        let net = net_reward_sat(tip.coinbase_value, ledger.epochs().config().pool_fee_ppm);
        let ev = expected_msat_per_hash(net, tip.share_unit_log2, expected_hashes(&tip.target_le));
        let keep = 1.0 - f64::from(self.discount_ppm.min(PPM as u32)) / PPM as f64;
        Ok(ev * keep)
    }

    /// Quotes a price for `amount` HASH of `keyset`.
    pub fn quote(
        &self,
        ledger: &EhashLedger,
        keyset: Id,
        amount: u64,
    ) -> Result<BuybackQuote, ExchangeError> {
        if amount == 0 {
            return Err(ExchangeError::Invalid("amount must be positive".into()));
        }
        let epoch = ledger.epochs().buyback_epoch(&keyset)?;
        let price = self.price_msat_per_hash(ledger)?;
        let sat = (amount as f64 * price / 1000.0).floor();
        if !(sat >= 1.0 && sat < u64::MAX as f64) {
            return Err(ExchangeError::NothingToPay);
        }
        let id: [u8; 16] = rand::random();
        let quote = BuybackQuote {
            quote: hex::encode(id),
            keyset_id: keyset,
            epoch,
            amount,
            sat: sat as u64,
            msat_per_hash: price,
            expiry: now_secs() + self.validity.as_secs(),
        };
        let mut quotes = self.quotes.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_secs();
        quotes.retain(|_, q| q.expiry >= now);
        if quotes.len() >= MAX_QUOTES {
            return Err(ExchangeError::Invalid(
                "too many open quotes; retry later".into(),
            ));
        }
        quotes.insert(quote.quote.clone(), quote.clone());
        tracing::info!(quote = %quote.quote, epoch, amount, sat = quote.sat, "buyback quoted");
        Ok(quote)
    }

    /// Accepts quote `id`: the inputs must be exactly its amount of its keyset.
    pub async fn accept(
        &self,
        ledger: &EhashLedger,
        id: &str,
        inputs: Proofs,
        outputs: Vec<BlindedMessage>,
    ) -> Result<ExchangeResponse, ExchangeError> {
        // Taken out first, so a quote is used at most once even by concurrent requests.
        let quote = self
            .quotes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .ok_or_else(|| ExchangeError::UnknownQuote(id.to_string()))?;
        if quote.expiry < now_secs() {
            return Err(ExchangeError::QuoteExpired(id.to_string()));
        }
        let result = exchange(ledger, inputs, outputs, |by_keyset| {
            let want = [(quote.keyset_id, quote.amount)];
            if by_keyset.iter().map(|(k, v)| (*k, *v)).ne(want) {
                return Err(ExchangeError::QuoteMismatch(format!(
                    "the quote is for {} HASH of keyset {}",
                    quote.amount, quote.keyset_id
                )));
            }
            // The epoch must still be open to buyback (it may have become final meanwhile).
            ledger.epochs().buyback_epoch(&quote.keyset_id)?;
            Ok(quote
                .sat
                .saturating_mul(ehash_protocol::economics::MSAT_PER_SAT))
        })
        .await;
        if let Err(e) = &result {
            // A refused attempt that spent nothing leaves the quote usable until it expires.
            if !matches!(e, ExchangeError::AlreadySpent | ExchangeError::Internal(_)) {
                self.quotes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_string(), quote);
            }
        }
        result
    }
}
