//! The devnet's own transactions, so templates carry real transactions, fees and merkle paths.
//!
//! The template provider pre-mines blocks whose coinbase pays `OP_TRUE` (spendable by anyone
//! on this throwaway chain, no keys), and once those coinbases mature (100 blocks) every
//! template spends a few of its coins, each into two `OP_TRUE` outputs less a fee. Outputs of a
//! block's transactions are coins for the next block, so the supply never runs out. The kernel
//! validates every block that carries them. The coins are kept in `data_dir/mempool.json`.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use stratum_core::bitcoin::hashes::Hash;
use stratum_core::bitcoin::{
    absolute::LockTime, transaction, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxOut, Txid, Witness,
};

/// File of the coins in the template provider's data dir.
pub const COINS_FILE: &str = "mempool.json";

/// Blocks a coinbase output waits before it can be spent (consensus).
pub const COINBASE_MATURITY: u32 = 100;

/// Fee each devnet transaction pays, sats.
pub const TX_FEE: u64 = 2_000;

/// An `OP_TRUE` output the template provider may spend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coin {
    /// Transaction id (internal byte order, hex).
    pub txid: String,
    /// Output index.
    pub vout: u32,
    /// Value, sats.
    pub value: u64,
    /// First height of a block that may spend it.
    pub spendable_at: u32,
    /// Height of the block that created it.
    #[serde(default)]
    pub created: u32,
}

/// Errors of the coin file.
#[derive(Debug, thiserror::Error)]
pub enum MempoolError {
    /// Reading or writing the file failed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The coins and the transactions built from them.
#[derive(Debug)]
pub struct DevnetMempool {
    coins: Vec<Coin>,
    per_block: usize,
    path: PathBuf,
}

/// The script every devnet coin is locked with: `OP_TRUE`.
pub fn anyone_can_spend() -> ScriptBuf {
    ScriptBuf::from_bytes(vec![0x51])
}

impl DevnetMempool {
    /// Loads the coins of `data_dir` (none if it has no coin file yet).
    pub fn load(data_dir: &Path, per_block: usize) -> Result<Self, MempoolError> {
        let path = data_dir.join(COINS_FILE);
        let coins = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| MempoolError::File {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(MempoolError::File {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        Ok(Self {
            coins,
            per_block,
            path,
        })
    }

    /// Whether the template provider has never pre-mined coins here.
    pub fn is_empty(&self) -> bool {
        self.coins.is_empty()
    }

    /// Adds a pre-mined coinbase output at `height`.
    pub fn add_coinbase(&mut self, txid: Txid, value: u64, height: u32) {
        self.coins.push(Coin {
            txid: txid.to_string(),
            vout: 0,
            value,
            spendable_at: height + COINBASE_MATURITY,
            created: height,
        });
    }

    /// Transactions for a block at `height`: up to `per_block`, each spending one coin, the
    /// newest first (the pre-mined coinbases stay a reserve).
    pub fn transactions_for(&self, height: u32) -> Vec<Transaction> {
        self.coins
            .iter()
            .rev()
            .filter(|c| c.spendable_at <= height && c.value > TX_FEE + 2)
            .filter_map(|c| Some((c.txid.parse::<Txid>().ok()?, c)))
            .take(self.per_block)
            .map(|(txid, c)| {
                let rest = c.value - TX_FEE;
                Transaction {
                    version: transaction::Version::TWO,
                    lock_time: LockTime::ZERO,
                    input: vec![TxIn {
                        previous_output: OutPoint::new(txid, c.vout),
                        script_sig: ScriptBuf::new(),
                        sequence: Sequence::MAX,
                        witness: Witness::new(),
                    }],
                    output: vec![
                        TxOut {
                            value: Amount::from_sat(rest / 2),
                            script_pubkey: anyone_can_spend(),
                        },
                        TxOut {
                            value: Amount::from_sat(rest - rest / 2),
                            script_pubkey: anyone_can_spend(),
                        },
                    ],
                }
            })
            .collect()
    }

    /// The block at `height` with `txs` was connected: their inputs are spent, their outputs
    /// are coins.
    pub fn on_block(&mut self, height: u32, txs: &[Transaction]) {
        for tx in txs {
            for input in &tx.input {
                let (txid, vout) = (
                    input.previous_output.txid.to_string(),
                    input.previous_output.vout,
                );
                self.coins.retain(|c| !(c.txid == txid && c.vout == vout));
            }
            let txid = tx.compute_txid();
            for (vout, out) in tx.output.iter().enumerate() {
                self.coins.push(Coin {
                    txid: txid.to_string(),
                    vout: vout as u32,
                    value: out.value.to_sat(),
                    spendable_at: 0,
                    created: height,
                });
            }
        }
    }

    /// A reorg left the active chain above `fork_height`: coins its blocks created are gone.
    /// (Coins they spent are unspent again on the new branch; they are given up, which only
    /// shrinks a supply that grows with every block.)
    pub fn forget_above(&mut self, fork_height: u32) {
        self.coins.retain(|c| c.created <= fork_height);
    }

    /// Drops the coins `txs` spend (they were refused with their block).
    pub fn forget_spent_by(&mut self, txs: &[Transaction]) {
        for input in txs.iter().flat_map(|t| &t.input) {
            let txid = input.previous_output.txid.to_string();
            let vout = input.previous_output.vout;
            self.coins.retain(|c| !(c.txid == txid && c.vout == vout));
        }
    }

    /// Writes the coins (renamed into place, so a crash leaves the old or the new file).
    pub fn save(&self) -> Result<(), MempoolError> {
        let err = |e: std::io::Error| MempoolError::File {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let text = serde_json::to_string(&self.coins).map_err(|e| MempoolError::File {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, &self.path).map_err(err)
    }
}

/// Fees of `txs` given the coins they spend (each devnet transaction pays [`TX_FEE`]).
pub fn fees(txs: &[Transaction]) -> u64 {
    TX_FEE * txs.len() as u64
}

/// The merkle path of the coinbase (leaf 0) in a block of the coinbase and `txs`: the sibling
/// at each level, which never depends on the coinbase itself.
pub fn coinbase_merkle_path(txs: &[Transaction]) -> Vec<[u8; 32]> {
    let txids: Vec<[u8; 32]> = txs
        .iter()
        .map(|t| t.compute_txid().to_byte_array())
        .collect();
    hashpool_jd_server::coinbase::coinbase_merkle_path(&txids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratum_core::bitcoin::merkle_tree;

    #[test]
    fn the_coinbase_path_rebuilds_the_block_merkle_root() {
        let mut pool = DevnetMempool {
            coins: Vec::new(),
            per_block: 5,
            path: PathBuf::from("/nonexistent"),
        };
        for h in 0..5u32 {
            let txid = Txid::from_byte_array([h as u8 + 1; 32]);
            pool.add_coinbase(txid, 5_000_000_000, h);
        }
        assert!(pool.transactions_for(99).is_empty(), "immature coinbases");
        let txs = pool.transactions_for(104);
        assert_eq!(txs.len(), 5);
        assert!(txs
            .iter()
            .all(|t| t.output.iter().map(|o| o.value.to_sat()).sum::<u64>()
                == 5_000_000_000 - TX_FEE));
        let coinbase = Txid::from_byte_array([9; 32]);
        let ids: Vec<Txid> = std::iter::once(coinbase)
            .chain(txs.iter().map(|t| t.compute_txid()))
            .collect();
        let root = merkle_tree::calculate_root(ids.iter().copied()).expect("root");
        let mut acc = coinbase.to_byte_array();
        for sibling in coinbase_merkle_path(&txs) {
            let mut both = [0u8; 64];
            both[..32].copy_from_slice(&acc);
            both[32..].copy_from_slice(&sibling);
            acc = stratum_core::bitcoin::hashes::sha256d::Hash::hash(&both).to_byte_array();
        }
        assert_eq!(acc, root.to_byte_array());
        // Spending them makes their outputs the next coins.
        pool.on_block(105, &txs);
        assert_eq!(pool.coins.len(), 10);
        assert_eq!(pool.transactions_for(106).len(), 5);
        // A reorg below 105 takes the outputs of that block away.
        pool.forget_above(104);
        assert!(pool.coins.is_empty());
    }
}
