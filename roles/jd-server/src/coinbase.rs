//! A declared coinbase: parsing the prefix/suffix around the extranonce, who it pays, and the
//! chain facts a declaration is checked against (BIP34 height, subsidy, merkle path).

use stratum_core::bitcoin::block::{Header, Version};
use stratum_core::bitcoin::consensus::{deserialize, serialize};
use stratum_core::bitcoin::hashes::{sha256d, Hash};
use stratum_core::bitcoin::{
    BlockHash, CompactTarget, Network, ScriptBuf, Transaction, TxMerkleNode, TxOut,
};
use stratum_core::channels_sv2::merkle_root::merkle_root_from_path_;

/// Why a declared coinbase is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoinbaseError {
    /// The bytes are not a coinbase with an extranonce gap at the end of its scriptSig.
    #[error("coinbase does not parse: {0}")]
    Malformed(String),
    /// The scriptSig does not start with a BIP34 height.
    #[error("coinbase scriptSig has no BIP34 height")]
    NoHeight,
    /// An output with value goes to someone other than the pool.
    #[error("coinbase output {index} pays {value} sat to a script that is not the pool's")]
    ForeignOutput {
        /// Output index.
        index: usize,
        /// Its value.
        value: u64,
    },
    /// The pool gets less than the block's reward.
    #[error("coinbase pays the pool {paid} sat, the block's reward is at least {required} sat")]
    Underpays {
        /// What the coinbase pays the pool.
        paid: u64,
        /// Subsidy plus the fees of the transactions the jd-server knows.
        required: u64,
    },
}

/// A coinbase transaction declared with an extranonce gap.
#[derive(Debug, Clone)]
pub struct DeclaredCoinbase {
    /// The transaction with the extranonce zeroed.
    pub tx: Transaction,
    /// Bytes of the extranonce (the gap between prefix and suffix).
    pub extranonce_len: usize,
    /// The scriptSig before the extranonce.
    pub script_sig_prefix: Vec<u8>,
    /// BIP34 height.
    pub height: u32,
    /// As declared: serialized bytes before and after the extranonce.
    pub prefix: Vec<u8>,
    /// See `prefix`.
    pub suffix: Vec<u8>,
}

impl DeclaredCoinbase {
    /// Parses `prefix ‖ extranonce ‖ suffix`, where the extranonce ends the scriptSig of the
    /// only input (so its length follows from the scriptSig length in the prefix).
    pub fn parse(prefix: &[u8], suffix: &[u8]) -> Result<Self, CoinbaseError> {
        let bad = |why: &str| CoinbaseError::Malformed(why.to_string());
        // version(4), optional segwit marker+flag, input count, null prevout(36), script length.
        let mut at = 4;
        if prefix.get(4) == Some(&0) && prefix.get(5) == Some(&1) {
            at += 2;
        }
        if prefix.get(at) != Some(&1) {
            return Err(bad("a coinbase has exactly one input"));
        }
        at += 1 + 36;
        let script_len = usize::from(*prefix.get(at).ok_or_else(|| bad("prefix too short"))?);
        if script_len > 100 {
            return Err(bad("scriptSig longer than 100 bytes"));
        }
        let script_start = at + 1;
        let in_prefix = prefix
            .len()
            .checked_sub(script_start)
            .filter(|n| *n <= script_len)
            .ok_or_else(|| bad("the prefix must end inside the scriptSig"))?;
        let extranonce_len = script_len - in_prefix;
        let mut raw = Vec::with_capacity(prefix.len() + extranonce_len + suffix.len());
        raw.extend_from_slice(prefix);
        raw.resize(prefix.len() + extranonce_len, 0);
        raw.extend_from_slice(suffix);
        let tx: Transaction =
            deserialize(&raw).map_err(|e| CoinbaseError::Malformed(e.to_string()))?;
        if !tx.is_coinbase() {
            return Err(bad("the input is not a coinbase input"));
        }
        let script_sig_prefix = prefix[script_start..].to_vec();
        let height = bip34_height(&script_sig_prefix).ok_or(CoinbaseError::NoHeight)?;
        Ok(Self {
            tx,
            extranonce_len,
            script_sig_prefix,
            height,
            prefix: prefix.to_vec(),
            suffix: suffix.to_vec(),
        })
    }

    /// What the coinbase pays `pool`, if every output with value pays it and the total
    /// reaches `required`.
    pub fn pays_pool(&self, pool: &ScriptBuf, required: u64) -> Result<u64, CoinbaseError> {
        let paid = pool_reward(&self.tx.output, pool)?;
        if paid < required {
            return Err(CoinbaseError::Underpays { paid, required });
        }
        Ok(paid)
    }

    /// The outputs, consensus-serialized as `SetCustomMiningJob` carries them.
    pub fn outputs_bytes(&self) -> Vec<u8> {
        serialize(&self.tx.output)
    }

    /// The whole coinbase with `extranonce` in the gap.
    pub fn with_extranonce(&self, extranonce: &[u8]) -> Result<Transaction, CoinbaseError> {
        if extranonce.len() != self.extranonce_len {
            return Err(CoinbaseError::Malformed(format!(
                "extranonce of {} bytes, the job has {}",
                extranonce.len(),
                self.extranonce_len
            )));
        }
        let mut raw = self.prefix.clone();
        raw.extend_from_slice(extranonce);
        raw.extend_from_slice(&self.suffix);
        deserialize(&raw).map_err(|e| CoinbaseError::Malformed(e.to_string()))
    }
}

/// What coinbase `outputs` pay `pool`, if every output with value pays it (zero-value outputs,
/// such as the witness commitment, may be anything).
pub fn pool_reward(outputs: &[TxOut], pool: &ScriptBuf) -> Result<u64, CoinbaseError> {
    let mut paid = 0u64;
    for (index, out) in outputs.iter().enumerate() {
        let value = out.value.to_sat();
        if value == 0 {
            continue;
        }
        if &out.script_pubkey != pool {
            return Err(CoinbaseError::ForeignOutput { index, value });
        }
        paid = paid.saturating_add(value);
    }
    Ok(paid)
}

/// A block header whose coinbase has `coinbase_txid` and merkle path `path`.
pub fn block_header(
    version: u32,
    prev_hash: [u8; 32],
    coinbase_txid: [u8; 32],
    path: &[[u8; 32]],
    ntime: u32,
    nbits: u32,
    nonce: u32,
) -> Header {
    Header {
        version: Version::from_consensus(version as i32),
        prev_blockhash: BlockHash::from_byte_array(prev_hash),
        merkle_root: TxMerkleNode::from_byte_array(merkle_root_from_path_(coinbase_txid, path)),
        time: ntime,
        bits: CompactTarget::from_consensus(nbits),
        nonce,
    }
}

/// The height a coinbase scriptSig commits to (BIP34), if it starts with one.
pub fn bip34_height(script: &[u8]) -> Option<u32> {
    let first = *script.first()?;
    match first {
        0x51..=0x60 => Some(u32::from(first - 0x50)),
        1..=5 => {
            let bytes = script.get(1..=usize::from(first))?;
            let mut v: u64 = 0;
            for (i, b) in bytes.iter().enumerate() {
                v |= u64::from(*b) << (8 * i);
            }
            u32::try_from(v).ok()
        }
        _ => None,
    }
}

/// The block subsidy at `height` on `network`, sats.
pub fn subsidy(network: Network, height: u32) -> u64 {
    let interval = match network {
        Network::Regtest => 150,
        _ => 210_000,
    };
    let halvings = height / interval;
    if halvings >= 64 {
        return 0;
    }
    (50 * 100_000_000u64) >> halvings
}

/// The merkle path of the coinbase (leaf 0) in a block whose other transactions have `txids`
/// (internal byte order): the sibling at each level, which never depends on the coinbase.
pub fn coinbase_merkle_path(txids: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let mut path = Vec::new();
    // Level 0 without the coinbase; the coinbase side is always the leftmost node.
    let mut level: Vec<[u8; 32]> = txids.to_vec();
    while !level.is_empty() {
        path.push(level[0]);
        // Next level, still without the leftmost node (it depends on the coinbase).
        let rest = &level[1..];
        let mut next = Vec::with_capacity(rest.len().div_ceil(2));
        for pair in rest.chunks(2) {
            let right = pair.get(1).unwrap_or(&pair[0]);
            let mut cat = [0u8; 64];
            cat[..32].copy_from_slice(&pair[0]);
            cat[32..].copy_from_slice(right);
            next.push(sha256d::Hash::hash(&cat).to_byte_array());
        }
        level = next;
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_merkle_path_rebuilds_the_root_bitcoin_computes() {
        use stratum_core::bitcoin::merkle_tree::calculate_root;
        for n in 0..9u8 {
            let mut ids: Vec<[u8; 32]> = vec![[200; 32]];
            ids.extend((0..n).map(|i| [i; 32]));
            let expected = calculate_root(
                ids.iter()
                    .map(|h| stratum_core::bitcoin::Txid::from_byte_array(*h)),
            )
            .map(|r| r.to_byte_array());
            let path = coinbase_merkle_path(&ids[1..]);
            assert_eq!(
                Some(merkle_root_from_path_(ids[0], &path)),
                expected,
                "{n} transactions"
            );
        }
    }

    #[test]
    fn regtest_halves_every_150_blocks() {
        assert_eq!(subsidy(Network::Regtest, 149), 5_000_000_000);
        assert_eq!(subsidy(Network::Regtest, 150), 2_500_000_000);
        assert_eq!(subsidy(Network::Bitcoin, 840_000), 312_500_000);
    }
}
