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
