//! Where the pool learns what became of the blocks it found: Bitcoin Core's JSON-RPC in
//! production, the devnet template provider's subset of the same RPC (answered from
//! libbitcoinkernel) on devnet — one client, behind the [`ChainView`] trait.

use serde_json::{json, Value};
use std::future::Future;

pub use node_rpc::{BitcoinRpc, ChainRpcConfig, NodeRpcError as ChainViewError};

/// A found block's place in the node's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPlace {
    /// Height.
    pub height: u32,
    /// Confirmations in the best chain, or -1 when the block is not in it.
    pub confirmations: i64,
}

/// Read access to the chain the pool mines on.
pub trait ChainView: Send + Sync + 'static {
    /// Where block `hash` (internal byte order) stands; `None` if the node does not know it.
    fn block_place(
        &self,
        hash: [u8; 32],
    ) -> impl Future<Output = Result<Option<BlockPlace>, ChainViewError>> + Send;
    /// Height of the node's best chain.
    fn tip_height(&self) -> impl Future<Output = Result<u32, ChainViewError>> + Send;
}

impl ChainView for BitcoinRpc {
    async fn block_place(&self, hash: [u8; 32]) -> Result<Option<BlockPlace>, ChainViewError> {
        let mut shown = hash;
        shown.reverse();
        match self
            .call("getblockheader", json!([hex::encode(shown), true]))
            .await
        {
            Ok(header) => {
                let field = |name: &str| header.get(name).and_then(Value::as_i64);
                match (field("height"), field("confirmations")) {
                    (Some(height), Some(confirmations)) => Ok(Some(BlockPlace {
                        height: u32::try_from(height).unwrap_or(0),
                        confirmations,
                    })),
                    _ => Err(ChainViewError::Transport {
                        url: self.url().to_string(),
                        reason: "getblockheader answer lacks height or confirmations".into(),
                    }),
                }
            }
            Err(ChainViewError::Rpc { code, .. })
                if code == node_rpc::RPC_INVALID_ADDRESS_OR_KEY =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn tip_height(&self) -> Result<u32, ChainViewError> {
        let v = self.call("getblockcount", json!([])).await?;
        v.as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .ok_or_else(|| ChainViewError::Transport {
                url: self.url().to_string(),
                reason: format!("getblockcount answered {v}"),
            })
    }
}
