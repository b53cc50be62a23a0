//! The regtest chain: Bitcoin Core's validation (libbitcoinkernel) over a data directory.

use bitcoinkernel::prelude::*;
use bitcoinkernel::{Block, ChainType, ChainstateManager, Context, ContextBuilder};
use std::path::Path;
use std::sync::Mutex;

/// Regtest's fixed compact target (regtest never retargets).
pub const REGTEST_NBITS: u32 = 0x207f_ffff;

/// Errors of the kernel chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The kernel refused to open or operate.
    #[error("bitcoinkernel: {0}")]
    Kernel(String),
    /// The data directory path is not UTF-8.
    #[error("data dir {0} is not valid UTF-8")]
    Path(String),
}

/// The active tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    /// Height of the tip (genesis = 0).
    pub height: u32,
    /// Hash in internal byte order.
    pub hash: [u8; 32],
    /// Median time past of the tip (a child needs a strictly larger time).
    pub median_time_past: u32,
}

/// What became of a submitted block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockOutcome {
    /// The block is the new active tip.
    Accepted,
    /// Already known.
    Duplicate,
    /// Invalid, or valid but not on the active chain.
    Rejected,
}

/// Where a block stands, as Bitcoin Core's `getblockheader` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPlace {
    /// Height of the block.
    pub height: u32,
    /// Confirmations in the active chain; -1 when the block is on a side branch.
    pub confirmations: i64,
    /// Parent hash (internal order), none for genesis.
    pub prev: Option<[u8; 32]>,
    /// Header time.
    pub time: u32,
}

/// A reorg made on purpose (devnet only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reorg {
    /// Height of the last block both branches share.
    pub fork_height: u32,
    /// Blocks that left the active chain (internal order).
    pub orphaned: Vec<[u8; 32]>,
    /// Blocks of the new branch (internal order).
    pub new_blocks: Vec<[u8; 32]>,
    /// Their coinbase txids (each pays the subsidy to `OP_TRUE`).
    pub coinbase_txids: Vec<[u8; 32]>,
}

/// Bitcoin Core's chainstate for the devnet, serialized behind a mutex (the kernel's
/// `Chain::tip()` is not safe against a concurrent writer).
pub struct KernelChain {
    chainman: Mutex<Option<ChainstateManager>>,
    _context: Context,
}

impl KernelChain {
    /// Opens (or creates) the regtest chain under `dir`.
    pub fn open(dir: &Path) -> Result<Self, ChainError> {
        let kerr = |e: bitcoinkernel::KernelError| ChainError::Kernel(format!("{e:?}"));
        let data = dir
            .to_str()
            .ok_or_else(|| ChainError::Path(dir.display().to_string()))?
            .to_string();
        std::fs::create_dir_all(dir).map_err(|e| ChainError::Kernel(e.to_string()))?;
        let context = ContextBuilder::new()
            .chain_type(ChainType::Regtest)
            .build()
            .map_err(kerr)?;
        let blocks = format!("{data}/blocks");
        let chainman = ChainstateManager::builder(&context, &data, &blocks)
            .map_err(kerr)?
            .build()
            .map_err(kerr)?;
        chainman.import_blocks().map_err(kerr)?;
        Ok(Self {
            chainman: Mutex::new(Some(chainman)),
            _context: context,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&ChainstateManager) -> T) -> Result<T, ChainError> {
        let guard = self
            .chainman
            .lock()
            .map_err(|_| ChainError::Kernel("chain mutex poisoned".into()))?;
        let cm = guard
            .as_ref()
            .ok_or_else(|| ChainError::Kernel("chain is closed".into()))?;
        Ok(f(cm))
    }

    /// The active tip.
    pub fn tip(&self) -> Result<Tip, ChainError> {
        self.with(|cm| {
            let chain = cm.active_chain();
            let tip = chain.tip();
            let mut times = Vec::with_capacity(11);
            let mut entry = Some(tip);
            while let Some(e) = entry {
                if times.len() == 11 {
                    break;
                }
                times.push(e.header().timestamp());
                entry = e.prev();
            }
            times.sort_unstable();
            Tip {
                height: chain.height().max(0) as u32,
                hash: tip.block_hash().to_bytes(),
                median_time_past: times[times.len() / 2],
            }
        })
    }

    /// Hash of the active block at `height`.
    pub fn hash_at(&self, height: u32) -> Result<Option<[u8; 32]>, ChainError> {
        self.with(|cm| {
            cm.active_chain()
                .at_height(height as usize)
                .map(|e| e.block_hash().to_bytes())
        })
    }

    /// Height, confirmations and parent of any block the kernel knows, on any branch.
    pub fn block_place(&self, hash: [u8; 32]) -> Result<Option<BlockPlace>, ChainError> {
        self.with(|cm| {
            let chain = cm.active_chain();
            let entry = cm.get_block_tree_entry(&bitcoinkernel::BlockHash::from(hash))?;
            let height = entry.height();
            let confirmations = if chain.contains(&entry) {
                i64::from(chain.height() - height + 1)
            } else {
                -1
            };
            Some(BlockPlace {
                height: height.max(0) as u32,
                confirmations,
                prev: entry.prev().map(|p| p.block_hash().to_bytes()),
                time: entry.header().timestamp(),
            })
        })
    }

    /// Mines `depth + 1` blocks on the active block `depth` below the tip, so the kernel
    /// switches to them and the last `depth` blocks leave the active chain. The whole branch is
    /// built under one lock, so no other block can land in between and turn it into a tie.
    pub fn mine_competing_branch(&self, depth: u32, now: u32) -> Result<Reorg, ChainError> {
        self.with(|cm| {
            let chain = cm.active_chain();
            let tip_height = chain.height().max(0) as u32;
            // Depth 0 orphans nothing: one block on the tip (a new block on demand).
            if depth > tip_height {
                return Err(ChainError::Kernel(format!(
                    "reorg depth must be 0..={tip_height}, got {depth}"
                )));
            }
            let fork_height = tip_height - depth;
            let fork = chain
                .at_height(fork_height as usize)
                .ok_or_else(|| ChainError::Kernel("no block at the fork height".into()))?;
            let orphaned: Vec<[u8; 32]> = (fork_height + 1..=tip_height)
                .filter_map(|h| chain.at_height(h as usize))
                .map(|e| e.block_hash().to_bytes())
                .collect();
            let mut times = Vec::with_capacity(11 + depth as usize);
            let mut entry = Some(fork);
            while let Some(e) = entry.filter(|_| times.len() < 11) {
                times.push(e.header().timestamp());
                entry = e.prev();
            }
            times.reverse();
            let mut prev = fork.block_hash().to_bytes();
            let mut new_blocks = Vec::with_capacity(depth as usize + 1);
            let mut coinbase_txids = Vec::with_capacity(depth as usize + 1);
            for i in 0..=depth {
                let height = fork_height + 1 + i;
                let mut window = times[times.len().saturating_sub(11)..].to_vec();
                window.sort_unstable();
                let time = now.max(window[window.len() / 2] + 1);
                let crate::template::BranchBlock {
                    raw,
                    hash,
                    coinbase_txid: coinbase,
                } = crate::template::branch_block(prev, height, time, now, i)
                    .map_err(|e| ChainError::Kernel(e.to_string()))?;
                let block = Block::new(&raw).map_err(|e| ChainError::Kernel(format!("{e:?}")))?;
                if cm.process_block(&block).is_rejected() {
                    return Err(ChainError::Kernel(format!(
                        "branch block at height {height} rejected"
                    )));
                }
                times.push(time);
                prev = hash;
                new_blocks.push(hash);
                coinbase_txids.push(coinbase);
            }
            if cm.active_chain().tip().block_hash().to_bytes() != prev {
                return Err(ChainError::Kernel(
                    "the kernel did not switch to the new branch".into(),
                ));
            }
            Ok(Reorg {
                fork_height,
                orphaned,
                new_blocks,
                coinbase_txids,
            })
        })?
    }

    /// Validates and connects a serialized block; it counts only if it becomes the tip.
    pub fn submit(&self, raw: &[u8]) -> Result<BlockOutcome, ChainError> {
        let block = Block::new(raw).map_err(|e| ChainError::Kernel(format!("{e:?}")))?;
        let want = block.hash().to_bytes();
        self.with(|cm| {
            let result = cm.process_block(&block);
            if result.is_duplicate() {
                return BlockOutcome::Duplicate;
            }
            if result.is_rejected() {
                return BlockOutcome::Rejected;
            }
            if cm.active_chain().tip().block_hash().to_bytes() == want {
                BlockOutcome::Accepted
            } else {
                BlockOutcome::Rejected
            }
        })
    }

    /// Flushes the chainstate to disk and closes it (the kernel only flushes on drop).
    pub fn close(&self) {
        if let Ok(mut g) = self.chainman.lock() {
            g.take();
        }
    }
}

impl Drop for KernelChain {
    fn drop(&mut self) {
        self.close();
    }
}

/// Block subsidy on regtest (halving every 150 blocks).
pub fn regtest_subsidy(height: u32) -> u64 {
    let halvings = height / 150;
    if halvings >= 64 {
        0
    } else {
        5_000_000_000u64 >> halvings
    }
}
