//! The transactions of recent templates, by wtxid, as the template provider sent them
//! (`RequestTransactionData`): what a job declaration may name without providing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use stratum_core::bitcoin::consensus::deserialize;
use stratum_core::bitcoin::hashes::Hash;
use stratum_core::bitcoin::Transaction;

/// Transactions kept before the oldest are forgotten.
pub const KEEP: usize = 50_000;

/// Recent template transactions, by wtxid (internal byte order).
#[derive(Debug, Default)]
pub struct KnownTransactions {
    inner: Mutex<Known>,
}

#[derive(Debug, Default)]
struct Known {
    by_wtxid: HashMap<[u8; 32], Arc<Transaction>>,
    order: VecDeque<[u8; 32]>,
}

impl KnownTransactions {
    /// Learns serialized transactions; returns how many were new. Bytes that do not decode as
    /// a transaction are skipped (and counted out).
    pub fn learn<'a>(&self, raw: impl IntoIterator<Item = &'a [u8]>) -> usize {
        let mut k = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut added = 0;
        for bytes in raw {
            let Ok(tx) = deserialize::<Transaction>(bytes) else {
                tracing::warn!(len = bytes.len(), "template transaction does not decode");
                continue;
            };
            let wtxid = tx.compute_wtxid().to_byte_array();
            if k.by_wtxid.insert(wtxid, Arc::new(tx)).is_none() {
                k.order.push_back(wtxid);
                added += 1;
            }
        }
        while k.order.len() > KEEP {
            if let Some(old) = k.order.pop_front() {
                k.by_wtxid.remove(&old);
            }
        }
        added
    }

    /// The transaction with this wtxid, if a recent template carried it.
    pub fn get(&self, wtxid: &[u8; 32]) -> Option<Arc<Transaction>> {
        let k = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        k.by_wtxid.get(wtxid).cloned()
    }

    /// How many are known.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .order
            .len()
    }

    /// Whether none is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratum_core::bitcoin::consensus::serialize;
    use stratum_core::bitcoin::{absolute::LockTime, transaction, Amount, ScriptBuf, TxOut};

    fn tx(n: u64) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![],
            output: vec![TxOut {
                value: Amount::from_sat(n),
                script_pubkey: ScriptBuf::new(),
            }],
        }
    }

    #[test]
    fn learns_by_wtxid_once_and_skips_garbage() {
        let known = KnownTransactions::default();
        let (a, b) = (serialize(&tx(1)), serialize(&tx(2)));
        assert_eq!(known.learn([&a[..], &b[..], &[0xff, 0x00][..]]), 2);
        assert_eq!(known.learn([&a[..]]), 0);
        assert_eq!(known.len(), 2);
        let wtxid = tx(1).compute_wtxid().to_byte_array();
        assert_eq!(known.get(&wtxid).map(|t| serialize(&*t)), Some(a));
        assert!(known.get(&[7; 32]).is_none());
    }
}
