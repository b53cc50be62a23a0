//! The epoch ledger on SQLite (`epochs.sqlite`, WAL, `synchronous=FULL`), owned by one mint
//! process.

use super::{i64_of, u64_of, BlockRow, EpochRow, EpochStore, IssueEntry, RotationLock, StoreError};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Handle to the database.
pub struct SqliteEpochStore {
    db: Mutex<Connection>,
    path: PathBuf,
}

impl SqliteEpochStore {
    /// Opens (or creates) the ledger.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let db = Connection::open(path).map_err(err)?;
        db.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        db.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS epoch (
                 epoch INTEGER PRIMARY KEY,
                 keyset_id TEXT UNIQUE,
                 start_height INTEGER NOT NULL,
                 opened_at INTEGER NOT NULL,
                 closed_at INTEGER,
                 issued INTEGER NOT NULL DEFAULT 0,
                 final_credit_msat INTEGER,
                 finalized_at INTEGER
             );
             CREATE TABLE IF NOT EXISTS block (
                 hash BLOB PRIMARY KEY,
                 height INTEGER NOT NULL,
                 reward INTEGER NOT NULL,
                 epoch INTEGER NOT NULL,
                 status INTEGER NOT NULL,
                 confirmations INTEGER NOT NULL,
                 updated_at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS pending_issue (
                 blinded BLOB PRIMARY KEY,
                 keyset_id TEXT NOT NULL,
                 amount INTEGER NOT NULL
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
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut db).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }
}

#[async_trait::async_trait]
impl EpochStore for SqliteEpochStore {
    fn shared(&self) -> bool {
        false
    }

    async fn rotation_lock(&self) -> Result<RotationLock, StoreError> {
        Ok(RotationLock::local())
    }

    async fn epochs(&self) -> Result<Vec<EpochRow>, StoreError> {
        self.with(|db| {
            let mut stmt = db.prepare(
                "SELECT epoch, keyset_id, start_height, opened_at, closed_at, issued,
                        final_credit_msat, finalized_at FROM epoch ORDER BY epoch",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(EpochRow {
                    epoch: r.get(0)?,
                    keyset_id: r.get(1)?,
                    start_height: r.get(2)?,
                    opened_at: r.get(3)?,
                    closed_at: r.get(4)?,
                    issued: u64_of(r.get(5)?),
                    final_credit_msat: r.get::<_, Option<i64>>(6)?.map(u64_of),
                    finalized_at: r.get(7)?,
                })
            })?;
            rows.collect()
        })
    }

    async fn open_epoch(
        &self,
        epoch: u32,
        start_height: u32,
        previous: Option<u32>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.with(|db| {
            let tx = db.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO epoch (epoch, keyset_id, start_height, opened_at)
                 VALUES (?1, NULL, ?2, ?3)",
                params![epoch, start_height, now],
            )?;
            if let Some(p) = previous {
                tx.execute(
                    "UPDATE epoch SET closed_at = ?2 WHERE epoch = ?1 AND closed_at IS NULL",
                    params![p, now],
                )?;
            }
            tx.commit()
        })
    }

    async fn set_keyset(&self, epoch: u32, keyset_id: &str) -> Result<(), StoreError> {
        self.with(|db| {
            db.execute(
                "UPDATE epoch SET keyset_id = ?2 WHERE epoch = ?1",
                params![epoch, keyset_id],
            )
            .map(|_| ())
        })
    }

    async fn finalize(&self, epoch: u32, credit_msat: u64, now: i64) -> Result<(), StoreError> {
        self.with(|db| {
            db.execute(
                "UPDATE epoch SET final_credit_msat = ?2, finalized_at = ?3
                 WHERE epoch = ?1 AND finalized_at IS NULL",
                params![epoch, i64_of(credit_msat), now],
            )
            .map(|_| ())
        })
    }

    async fn begin_issue(&self, entries: &[IssueEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.with(|db| {
            let tx = db.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO pending_issue (blinded, keyset_id, amount)
                     VALUES (?1, ?2, ?3)",
                )?;
                for (b, k, a) in entries {
                    insert.execute(params![&b[..], k, i64_of(*a)])?;
                }
            }
            tx.commit()
        })
    }

    async fn settle_issue(
        &self,
        signed: &[IssueEntry],
        all: &[[u8; 33]],
    ) -> Result<Vec<IssueEntry>, StoreError> {
        self.with(|db| {
            // Not flushed to disk on its own: the next batch's write-ahead commit (FULL) flushes
            // the log up to it. A settlement lost to a power cut leaves its rows pending, and
            // the next start settles them against CDK again — counted once either way.
            db.pragma_update(None, "synchronous", "NORMAL")?;
            let settled = settle_rows(db, signed, all);
            db.pragma_update(None, "synchronous", "FULL")?;
            settled
        })
    }

    async fn pending_issue(&self) -> Result<Vec<IssueEntry>, StoreError> {
        self.with(|db| {
            let mut stmt = db.prepare("SELECT blinded, keyset_id, amount FROM pending_issue")?;
            let rows = stmt.query_map([], |r| {
                let b: Vec<u8> = r.get(0)?;
                Ok((b, r.get::<_, String>(1)?, u64_of(r.get(2)?)))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (b, k, a) = row?;
                if let Ok(b) = <[u8; 33]>::try_from(b) {
                    out.push((b, k, a));
                }
            }
            Ok(out)
        })
    }

    async fn blocks(&self) -> Result<Vec<BlockRow>, StoreError> {
        self.with(|db| {
            let mut stmt = db.prepare(
                "SELECT hash, height, reward, epoch, status, confirmations FROM block
                 ORDER BY height, hash",
            )?;
            let rows = stmt.query_map([], |r| {
                let hash: Vec<u8> = r.get(0)?;
                Ok(BlockRow {
                    hash: hash.try_into().unwrap_or([0; 32]),
                    height: r.get(1)?,
                    reward: u64_of(r.get(2)?),
                    epoch: r.get(3)?,
                    status: r.get(4)?,
                    confirmations: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    async fn upsert_block(&self, b: &BlockRow, now: i64) -> Result<(), StoreError> {
        self.with(|db| {
            db.execute(
                "INSERT INTO block (hash, height, reward, epoch, status, confirmations, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(hash) DO UPDATE SET status = ?5, confirmations = ?6, updated_at = ?7",
                params![
                    &b.hash[..],
                    b.height,
                    i64_of(b.reward),
                    b.epoch,
                    b.status,
                    b.confirmations,
                    now
                ],
            )
            .map(|_| ())
        })
    }
}

fn settle_rows(
    db: &mut Connection,
    signed: &[IssueEntry],
    all: &[[u8; 33]],
) -> rusqlite::Result<Vec<IssueEntry>> {
    let tx = db.transaction()?;
    let mut counted = Vec::with_capacity(signed.len());
    {
        let mut add =
            tx.prepare_cached("UPDATE epoch SET issued = issued + ?2 WHERE keyset_id = ?1")?;
        let mut del = tx.prepare_cached("DELETE FROM pending_issue WHERE blinded = ?1")?;
        for entry in signed {
            let (b, k, a) = entry;
            if del.execute(params![&b[..]])? == 1 {
                add.execute(params![k, i64_of(*a)])?;
                counted.push(entry.clone());
            }
        }
        for b in all {
            del.execute(params![&b[..]])?;
        }
    }
    tx.commit()?;
    Ok(counted)
}
