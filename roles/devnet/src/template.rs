//! Block templates (coinbase-only, or with the devnet's own transactions) and block assembly
//! from a submitted solution.

use crate::chain::{regtest_subsidy, Tip, REGTEST_NBITS};
use binary_sv2::{B0255Owned, B064KOwned, Seq0255Owned, U256Owned};
use std::sync::Arc;
use stratum_core::bitcoin::block::{Header, Version};
use stratum_core::bitcoin::consensus::{deserialize, serialize};
use stratum_core::bitcoin::hashes::{sha256d, Hash};
use stratum_core::bitcoin::script::Builder;
use stratum_core::bitcoin::{
    Amount, Block, BlockHash, CompactTarget, ScriptBuf, Transaction, TxMerkleNode, TxOut,
};
use stratum_core::template_distribution_sv2::{NewTemplateOwned, SetNewPrevHashOwned};

/// Block version offered (BIP9 base, no signalling).
pub const BLOCK_VERSION: u32 = 0x2000_0000;

/// Errors turning a solution into a block.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The coinbase bytes do not decode as a transaction.
    #[error("coinbase does not decode: {0}")]
    BadCoinbase(String),
    /// A field could not be encoded.
    #[error("template field too large: {0}")]
    Encode(&'static str),
}

/// What the TP remembers of a template it announced.
#[derive(Debug, Clone)]
pub struct TemplateRecord {
    /// Template id.
    pub id: u64,
    /// Parent block.
    pub prev_hash: [u8; 32],
    /// Height of the block built on it.
    pub height: u32,
    /// Coinbase value available (subsidy + fees).
    pub value: u64,
    /// Minimum header time.
    pub min_time: u32,
    /// Transactions after the coinbase.
    pub txs: Arc<Vec<Transaction>>,
}

impl TemplateRecord {
    /// A coinbase-only template on `tip`.
    pub fn on_tip(id: u64, tip: &Tip, now: u32) -> Self {
        let height = tip.height + 1;
        Self {
            id,
            prev_hash: tip.hash,
            height,
            value: regtest_subsidy(height),
            min_time: now.max(tip.median_time_past + 1),
            txs: Arc::new(Vec::new()),
        }
    }

    /// The same template carrying `txs` after the coinbase; their fees join the coinbase value.
    pub fn with_transactions(mut self, txs: Vec<Transaction>) -> Self {
        self.value += crate::mempool::fees(&txs);
        self.txs = Arc::new(txs);
        self
    }

    /// `NewTemplate` for this record.
    pub fn new_template(&self, future: bool) -> Result<NewTemplateOwned, TemplateError> {
        let prefix = Builder::new()
            .push_int(i64::from(self.height))
            .into_script()
            .into_bytes();
        let outputs = serialize(&witness_commitment_output_for(&self.txs));
        Ok(NewTemplateOwned {
            template_id: self.id,
            future_template: future,
            version: BLOCK_VERSION,
            coinbase_tx_version: 2,
            coinbase_prefix: B0255Owned::try_from(prefix)
                .map_err(|_| TemplateError::Encode("coinbase_prefix"))?,
            coinbase_tx_input_sequence: u32::MAX,
            coinbase_tx_value_remaining: self.value,
            coinbase_tx_outputs_count: 1,
            coinbase_tx_outputs: B064KOwned::try_from(outputs)
                .map_err(|_| TemplateError::Encode("coinbase_tx_outputs"))?,
            coinbase_tx_locktime: 0,
            merkle_path: Seq0255Owned::new(
                crate::mempool::coinbase_merkle_path(&self.txs)
                    .into_iter()
                    .map(U256Owned::from)
                    .collect(),
            )
            .map_err(|_| TemplateError::Encode("merkle_path"))?,
        })
    }

    /// `SetNewPrevHash` activating this template, with the pacing `target` (little-endian).
    pub fn set_new_prev_hash(&self, target_le: [u8; 32]) -> SetNewPrevHashOwned {
        SetNewPrevHashOwned {
            template_id: self.id,
            prev_hash: U256Owned::from(self.prev_hash),
            header_timestamp: self.min_time,
            n_bits: REGTEST_NBITS,
            target: U256Owned::from(target_le),
        }
    }

    /// Builds the full block from a solution's header fields and coinbase.
    pub fn assemble(
        &self,
        version: u32,
        time: u32,
        nonce: u32,
        coinbase: &[u8],
    ) -> Result<(Vec<u8>, [u8; 32]), TemplateError> {
        let tx: Transaction =
            deserialize(coinbase).map_err(|e| TemplateError::BadCoinbase(e.to_string()))?;
        let txdata: Vec<Transaction> = std::iter::once(tx)
            .chain(self.txs.iter().cloned())
            .collect();
        let merkle_root = stratum_core::bitcoin::merkle_tree::calculate_root(
            txdata.iter().map(|t| t.compute_txid().to_raw_hash()),
        )
        .map(TxMerkleNode::from_raw_hash)
        .ok_or(TemplateError::Encode("merkle root of no transactions"))?;
        let header = Header {
            version: Version::from_consensus(version as i32),
            prev_blockhash: BlockHash::from_byte_array(self.prev_hash),
            merkle_root,
            time,
            bits: CompactTarget::from_consensus(REGTEST_NBITS),
            nonce,
        };
        let hash = header.block_hash().to_byte_array();
        let block = Block { header, txdata };
        Ok((serialize(&block), hash))
    }
}

/// A mined block of a devnet reorg branch or pre-mine.
pub struct BranchBlock {
    /// The serialized block.
    pub raw: Vec<u8>,
    /// Its hash (internal order).
    pub hash: [u8; 32],
    /// Its coinbase txid (internal order).
    pub coinbase_txid: [u8; 32],
}

/// A coinbase-only block on `prev` at `height` for a devnet reorg or pre-mine; `tag` and
/// `index` in the coinbase make it differ from every block mined before; its coinbase pays
/// `OP_TRUE`.
pub fn branch_block(
    prev: [u8; 32],
    height: u32,
    time: u32,
    tag: u32,
    index: u32,
) -> Result<BranchBlock, TemplateError> {
    use stratum_core::bitcoin::{
        absolute::LockTime, transaction, OutPoint, Sequence, TxIn, Witness,
    };
    let script_sig = Builder::new()
        .push_int(i64::from(height))
        .push_slice(b"devnet-reorg")
        .push_slice(tag.to_le_bytes())
        .push_slice(index.to_le_bytes())
        .into_script();
    let coinbase = Transaction {
        version: transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig,
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[[0u8; 32]]),
        }],
        output: vec![
            TxOut {
                value: Amount::from_sat(regtest_subsidy(height)),
                // OP_TRUE: nobody's payout, spendable by anyone on this throwaway chain.
                script_pubkey: crate::mempool::anyone_can_spend(),
            },
            witness_commitment_output(),
        ],
    };
    let coinbase_txid = coinbase.compute_txid();
    let merkle_root = TxMerkleNode::from_raw_hash(coinbase_txid.to_raw_hash());
    let mut header = Header {
        version: Version::from_consensus(BLOCK_VERSION as i32),
        prev_blockhash: BlockHash::from_byte_array(prev),
        merkle_root,
        time,
        bits: CompactTarget::from_consensus(REGTEST_NBITS),
        nonce: 0,
    };
    let target = header.target();
    while !target.is_met_by(header.block_hash()) {
        header.nonce = header
            .nonce
            .checked_add(1)
            .ok_or(TemplateError::Encode("no nonce meets the regtest target"))?;
    }
    let hash = header.block_hash().to_byte_array();
    let block = Block {
        header,
        txdata: vec![coinbase],
    };
    Ok(BranchBlock {
        raw: serialize(&block),
        hash,
        coinbase_txid: coinbase_txid.to_byte_array(),
    })
}

/// The BIP141 commitment of a block of a coinbase (witness: 32 zero bytes) and `txs`: the
/// witness root over the coinbase (zero) and the transactions' wtxids, committed with the
/// coinbase's zero nonce.
pub fn witness_commitment_output_for(txs: &[Transaction]) -> TxOut {
    if txs.is_empty() {
        return witness_commitment_output();
    }
    let leaves = std::iter::once(sha256d::Hash::from_byte_array([0; 32]))
        .chain(txs.iter().map(|t| t.compute_wtxid().to_raw_hash()));
    let root = stratum_core::bitcoin::merkle_tree::calculate_root(leaves)
        .map(|h| h.to_byte_array())
        .unwrap_or([0; 32]);
    let mut preimage = [0u8; 64];
    preimage[..32].copy_from_slice(&root);
    commitment_output(sha256d::Hash::hash(&preimage).to_byte_array())
}

fn commitment_output(commitment: [u8; 32]) -> TxOut {
    let mut script = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    script.extend_from_slice(&commitment);
    TxOut {
        value: Amount::ZERO,
        script_pubkey: ScriptBuf::from_bytes(script),
    }
}

/// The BIP141 commitment of a coinbase-only block whose coinbase witness is 32 zero bytes:
/// witness root = 0 (the coinbase's wtxid counts as zero), commitment = sha256d(root ‖ nonce).
pub fn witness_commitment_output() -> TxOut {
    commitment_output(sha256d::Hash::hash(&[0u8; 64]).to_byte_array())
}
