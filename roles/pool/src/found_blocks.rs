//! Blocks the pool found, followed to maturity.
//!
//! Every block the pool submits is written to `blocks.sqlite` (with the height and coinbase value
//! of its template) and then followed through the [`ChainView`]: it is *pending* while in the best
//! chain below `maturity` confirmations, *matured* at `maturity`, *orphaned* when it leaves the
//! best chain or the node never accepted it. Every change is reported to the mint, which credits
//! matured rewards to epochs, until the mint acknowledges the final state.

use crate::chain_view::{BlockPlace, ChainView};
use crate::mint_client::MintLink;
use crate::stats::PoolStats;
use ehash_protocol::messages::{BLOCK_MATURED, BLOCK_ORPHANED, BLOCK_PENDING};
use rusqlite::{params, Connection};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// File name of the found-block store in the pool's data dir.
pub const BLOCKS_FILE: &str = "blocks.sqlite";
/// How long a submitted block may stay unknown to the node before it counts as orphaned.
const UNKNOWN_GRACE_SECS: i64 = 120;

/// Errors of the block store.
#[derive(Debug, thiserror::Error)]
#[error("found-block store {path}: {source}")]
pub struct BlockStoreError {
    /// Database file.
    pub path: PathBuf,
    /// Cause.
    pub source: rusqlite::Error,
}

/// A block the pool found, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundBlock {
    /// Hash, internal byte order.
    #[serde(serialize_with = "display_hash")]
    pub hash: [u8; 32],
    /// Height.
    pub height: u32,
    /// Coinbase value (subsidy + fees), sats.
    pub reward: u64,
    /// Unix time it was found.
    pub found_at: i64,
    /// `BLOCK_PENDING`, `BLOCK_MATURED` or `BLOCK_ORPHANED`.
    pub status: u8,
    /// Confirmations in the best chain at the last check.
    pub confirmations: u32,
    /// Status the mint acknowledged, if any.
    pub acked_status: Option<u8>,
}

fn display_hash<S: serde::Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    let mut shown = *hash;
    shown.reverse();
    s.serialize_str(&hex::encode(shown))
}

impl FoundBlock {
    /// No more checks needed: matured, or orphaned with the chain `maturity` blocks past it.
    pub fn settled(&self, tip_height: u32, maturity: u32) -> bool {
        self.status == BLOCK_MATURED
            || (self.status == BLOCK_ORPHANED && tip_height >= self.height.saturating_add(maturity))
    }

    /// The report the mint gets for this block.
    pub fn report(&self) -> ehash_protocol::BlockReport {
        ehash_protocol::BlockReport {
            hash: self.hash.into(),
            height: self.height,
            reward: self.reward,
            status: self.status,
            confirmations: self.confirmations,
        }
    }
}

/// Status and confirmations of a block from where the node places it.
pub fn judge(place: Option<BlockPlace>, maturity: u32, unknown_for_secs: i64) -> Option<(u8, u32)> {
    match place {
        Some(p) if p.confirmations >= i64::from(maturity.max(1)) => Some((
            BLOCK_MATURED,
            u32::try_from(p.confirmations).unwrap_or(u32::MAX),
        )),
        Some(p) if p.confirmations > 0 => {
            Some((BLOCK_PENDING, u32::try_from(p.confirmations).unwrap_or(0)))
        }
        Some(_) => Some((BLOCK_ORPHANED, 0)),
        None if unknown_for_secs > UNKNOWN_GRACE_SECS => Some((BLOCK_ORPHANED, 0)),
        // Not processed by the node yet: no verdict.
        None => None,
    }
}

/// The found-block table.
pub struct BlockStore {
    db: Mutex<Connection>,
    path: PathBuf,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl BlockStore {
    /// Opens (or creates) the store.
    pub fn open(path: &Path) -> Result<Self, BlockStoreError> {
        let err = |source| BlockStoreError {
            path: path.to_path_buf(),
            source,
        };
        let db = crate::journal::open_durable(path).map_err(err)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS found_block (
                 hash BLOB PRIMARY KEY,
                 height INTEGER NOT NULL,
                 reward INTEGER NOT NULL,
                 found_at INTEGER NOT NULL,
                 status INTEGER NOT NULL,
                 confirmations INTEGER NOT NULL,
                 acked_status INTEGER
             );",
        )
        .map_err(err)?;
        Ok(Self {
            db: Mutex::new(db),
            path: path.to_path_buf(),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, BlockStoreError> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        f(&db).map_err(|source| BlockStoreError {
            path: self.path.clone(),
            source,
        })
    }

    /// Records a newly found block as pending (nothing if it is known already).
    pub fn insert(&self, hash: [u8; 32], height: u32, reward: u64) -> Result<(), BlockStoreError> {
        let reward = i64::try_from(reward).unwrap_or(i64::MAX);
        self.with(|db| {
            db.execute(
                "INSERT OR IGNORE INTO found_block
                 (hash, height, reward, found_at, status, confirmations, acked_status)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, NULL)",
                params![&hash[..], height, reward, now_secs(), BLOCK_PENDING],
            )
            .map(|_| ())
        })
    }

    /// Every block, newest first.
    pub fn all(&self) -> Result<Vec<FoundBlock>, BlockStoreError> {
        self.select("SELECT hash, height, reward, found_at, status, confirmations, acked_status FROM found_block ORDER BY height DESC, found_at DESC")
    }

    /// Blocks whose current state the mint has not acknowledged.
    pub fn unacked(&self) -> Result<Vec<FoundBlock>, BlockStoreError> {
        self.select("SELECT hash, height, reward, found_at, status, confirmations, acked_status FROM found_block WHERE acked_status IS NULL OR acked_status != status")
    }

    fn select(&self, sql: &str) -> Result<Vec<FoundBlock>, BlockStoreError> {
        self.with(|db| {
            let mut stmt = db.prepare(sql)?;
            let rows = stmt.query_map([], |r| {
                let hash: Vec<u8> = r.get(0)?;
                let reward: i64 = r.get(2)?;
                Ok(FoundBlock {
                    hash: hash.try_into().unwrap_or([0; 32]),
                    height: r.get(1)?,
                    reward: u64::try_from(reward).unwrap_or(0),
                    found_at: r.get(3)?,
                    status: r.get(4)?,
                    confirmations: r.get(5)?,
                    acked_status: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Stores a new status.
    pub fn update(
        &self,
        hash: [u8; 32],
        status: u8,
        confirmations: u32,
    ) -> Result<(), BlockStoreError> {
        self.with(|db| {
            db.execute(
                "UPDATE found_block SET status = ?2, confirmations = ?3 WHERE hash = ?1",
                params![&hash[..], status, confirmations],
            )
            .map(|_| ())
        })
    }

    /// The mint recorded `status` for `hash`.
    pub fn mark_acked(&self, hash: [u8; 32], status: u8) -> Result<(), BlockStoreError> {
        self.with(|db| {
            db.execute(
                "UPDATE found_block SET acked_status = ?2 WHERE hash = ?1",
                params![&hash[..], status],
            )
            .map(|_| ())
        })
    }
}

/// A block just submitted to the template provider.
#[derive(Debug, Clone, Copy)]
pub struct NewBlock {
    /// Hash, internal order.
    pub hash: [u8; 32],
    /// Height of its template.
    pub height: u32,
    /// Coinbase value of its template.
    pub reward: u64,
}

/// How found blocks are followed.
#[derive(Debug, Clone, Copy)]
pub struct FollowPolicy {
    /// Confirmations for maturity.
    pub maturity: u32,
    /// Time between polls of the node.
    pub poll: Duration,
}

/// Follows found blocks until shutdown: records new ones, polls the node every `poll`, reports
/// changes to the mint.
pub async fn follow<C: ChainView>(
    store: Arc<BlockStore>,
    view: Option<C>,
    mint: Arc<MintLink>,
    stats: Arc<PoolStats>,
    policy: FollowPolicy,
    mut found: mpsc::Receiver<NewBlock>,
    shutdown: CancellationToken,
) {
    if view.is_none() {
        tracing::warn!("no chain_rpc configured: found blocks are never followed to maturity");
    }
    match store.unacked() {
        Ok(blocks) => blocks.iter().for_each(|b| mint.report_block(b.report())),
        Err(e) => tracing::error!(error = %e, "cannot read found blocks"),
    }
    let mut tick = tokio::time::interval(policy.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            b = found.recv() => {
                let Some(b) = b else { return };
                if let Err(e) = store.insert(b.hash, b.height, b.reward) {
                    tracing::error!(error = %e, height = b.height, "found block not recorded");
                    continue;
                }
                mint.report_block(ehash_protocol::BlockReport {
                    hash: b.hash.into(),
                    height: b.height,
                    reward: b.reward,
                    status: BLOCK_PENDING,
                    confirmations: 0,
                });
            }
            _ = tick.tick() => {
                if let Some(view) = &view {
                    match poll_once(&store, view, &mint, policy.maturity).await {
                        Ok(tip) => {
                            stats.chain_tip_height.store(u64::from(tip), Ordering::Relaxed);
                            stats.node.set_up(true);
                        }
                        Err(e) => {
                            stats.node.set_up(false);
                            tracing::warn!(error = %e, "following found blocks failed; retrying");
                        }
                    }
                }
            }
        }
    }
}

async fn poll_once<C: ChainView>(
    store: &BlockStore,
    view: &C,
    mint: &MintLink,
    maturity: u32,
) -> Result<u32, String> {
    let tip = view.tip_height().await.map_err(|e| e.to_string())?;
    let blocks = store.all().map_err(|e| e.to_string())?;
    for b in blocks.into_iter().filter(|b| !b.settled(tip, maturity)) {
        let place = view.block_place(b.hash).await.map_err(|e| e.to_string())?;
        let Some((status, confirmations)) = judge(place, maturity, now_secs() - b.found_at) else {
            continue;
        };
        if (status, confirmations) == (b.status, b.confirmations) {
            continue;
        }
        store
            .update(b.hash, status, confirmations)
            .map_err(|e| e.to_string())?;
        if status != b.status {
            tracing::info!(
                height = b.height,
                reward = b.reward,
                status,
                confirmations,
                "found block changed state"
            );
        }
        mint.report_block(
            FoundBlock {
                status,
                confirmations,
                ..b
            }
            .report(),
        );
    }
    Ok(tip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(confirmations: i64) -> Option<BlockPlace> {
        Some(BlockPlace {
            height: 10,
            confirmations,
        })
    }

    #[test]
    fn judging_a_block() {
        assert_eq!(judge(place(1), 3, 0), Some((BLOCK_PENDING, 1)));
        assert_eq!(judge(place(3), 3, 0), Some((BLOCK_MATURED, 3)));
        assert_eq!(judge(place(-1), 3, 0), Some((BLOCK_ORPHANED, 0)));
        assert_eq!(judge(None, 3, 5), None);
        assert_eq!(judge(None, 3, 500), Some((BLOCK_ORPHANED, 0)));
    }

    #[test]
    fn store_round_trip_and_acks() {
        let dir = std::env::temp_dir().join(format!("found-blocks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = BlockStore::open(&dir.join(BLOCKS_FILE)).unwrap();
        store.insert([7; 32], 12, 5_000_000_000).unwrap();
        store.insert([7; 32], 12, 1).unwrap(); // ignored: known
        assert_eq!(store.unacked().unwrap().len(), 1);
        store.mark_acked([7; 32], BLOCK_PENDING).unwrap();
        assert!(store.unacked().unwrap().is_empty());
        store.update([7; 32], BLOCK_MATURED, 3).unwrap();
        let b = store.unacked().unwrap().pop().unwrap();
        assert_eq!(
            (b.status, b.reward, b.height),
            (BLOCK_MATURED, 5_000_000_000, 12)
        );
        assert!(b.settled(15, 3));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
