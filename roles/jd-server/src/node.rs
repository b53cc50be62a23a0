//! What the jd-server knows of the network through its node's JSON-RPC: the mempool (the
//! transactions a declaration may name by wtxid alone, with their fees), the tip, and where
//! found blocks go (`submitblock`).

use node_rpc::{BitcoinRpc, NodeRpcError};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use stratum_core::bitcoin::consensus::deserialize;
use stratum_core::bitcoin::hashes::Hash;
use stratum_core::bitcoin::{Transaction, Wtxid};

/// A mempool transaction and its fee.
#[derive(Debug, Clone)]
pub struct KnownTx {
    /// The transaction.
    pub tx: Arc<Transaction>,
    /// Its fee in sats, when the node said.
    pub fee: Option<u64>,
}

/// The node's chain tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeTip {
    /// Best block hash (internal byte order).
    pub hash: [u8; 32],
    /// Its height.
    pub height: u32,
}

/// The node and a cache of its mempool, keyed by wtxid (internal byte order).
pub struct NodeView {
    rpc: BitcoinRpc,
    known: Mutex<HashMap<[u8; 32], KnownTx>>,
    refreshing: tokio::sync::Mutex<()>,
}

fn answer_err(rpc: &BitcoinRpc, what: String) -> NodeRpcError {
    NodeRpcError::Transport {
        url: rpc.url().to_string(),
        reason: what,
    }
}

fn parse_hash(rpc: &BitcoinRpc, v: &Value) -> Result<[u8; 32], NodeRpcError> {
    let mut hash: [u8; 32] = v
        .as_str()
        .and_then(|s| hex::decode(s).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| answer_err(rpc, format!("not a hash: {v}")))?;
    hash.reverse();
    Ok(hash)
}

impl NodeView {
    /// A view through `rpc`; the mempool cache starts empty.
    pub fn new(rpc: BitcoinRpc) -> Self {
        Self {
            rpc,
            known: Mutex::new(HashMap::new()),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// A mempool transaction by wtxid, if cached.
    pub fn get(&self, wtxid: &[u8; 32]) -> Option<KnownTx> {
        self.known.lock().ok()?.get(wtxid).cloned()
    }

    /// Transactions cached.
    pub fn len(&self) -> usize {
        self.known.lock().map(|k| k.len()).unwrap_or(0)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-reads the node's mempool: fetches the transactions not cached yet and forgets those
    /// that left it. Returns how many are cached.
    pub async fn refresh(&self) -> Result<usize, NodeRpcError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let listing = self.rpc.call("getrawmempool", json!([true])).await?;
        let entries = listing
            .as_object()
            .ok_or_else(|| answer_err(&self.rpc, "getrawmempool: not an object".into()))?;
        let mut fresh = HashMap::with_capacity(entries.len());
        for (txid, entry) in entries {
            let Some(wtxid) = entry
                .get("wtxid")
                .map(|w| parse_hash(&self.rpc, w))
                .transpose()?
            else {
                continue;
            };
            // Bitcoin Core reports fees in BTC; round to the satoshi.
            let fee = entry
                .pointer("/fees/base")
                .and_then(Value::as_f64)
                .map(|btc| (btc * 100_000_000.0).round() as u64);
            if let Some(mut known) = self.get(&wtxid) {
                known.fee = fee.or(known.fee);
                fresh.insert(wtxid, known);
                continue;
            }
            let raw = self.rpc.call("getrawtransaction", json!([txid])).await?;
            let tx: Transaction = raw
                .as_str()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| deserialize(&b).ok())
                .ok_or_else(|| answer_err(&self.rpc, format!("getrawtransaction {txid}")))?;
            if tx.compute_wtxid() != Wtxid::from_byte_array(wtxid) {
                return Err(answer_err(&self.rpc, format!("{txid}: wtxid mismatch")));
            }
            fresh.insert(
                wtxid,
                KnownTx {
                    tx: Arc::new(tx),
                    fee,
                },
            );
        }
        let n = fresh.len();
        if let Ok(mut k) = self.known.lock() {
            *k = fresh;
        }
        Ok(n)
    }

    /// The node's best block and height.
    pub async fn tip(&self) -> Result<NodeTip, NodeRpcError> {
        // Height first, then the hash at that height: a consistent pair even if a block
        // arrives in between.
        let height = self.rpc.call("getblockcount", json!([])).await?;
        let height = height
            .as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .ok_or_else(|| answer_err(&self.rpc, format!("getblockcount: {height}")))?;
        let hash = self.rpc.call("getblockhash", json!([height])).await?;
        let hash = parse_hash(&self.rpc, &hash)?;
        Ok(NodeTip { hash, height })
    }

    /// Gives a block to the node; `None` when accepted, else its reason (`duplicate`, ...).
    pub async fn submit_block(&self, raw: &[u8]) -> Result<Option<String>, NodeRpcError> {
        let answer = self
            .rpc
            .call("submitblock", json!([hex::encode(raw)]))
            .await?;
        Ok(answer.as_str().map(str::to_string))
    }
}
