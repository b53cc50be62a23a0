//! The epoch ledger on SQLite (`epochs.sqlite`, WAL, `synchronous=FULL` except settlements),
//! owned by one mint process.

use super::{
    i64_of, u64_of, BlockRow, EpochRow, EpochStore, IssueEntry, IssueReceipt, ReceiptEntry,
    RotationLock, StoreError,
};
use rusqlite::{params, Connection, OptionalExtension};
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
             );
             CREATE TABLE IF NOT EXISTS receipt_mark (
                 key TEXT NOT NULL,
                 keyset_id TEXT NOT NULL,
                 counted INTEGER NOT NULL,
                 PRIMARY KEY (key, keyset_id)
             );
             CREATE TABLE IF NOT EXISTS ledger_meta (name TEXT PRIMARY KEY, value INTEGER);",
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

    #[cfg(test)]
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
        self.with(|db| unflushed(db, |db| settle_rows(db, signed, all)))
    }

    async fn settle_receipts(
        &self,
        receipts: &[IssueReceipt],
        forget: &[String],
    ) -> Result<Vec<ReceiptEntry>, StoreError> {
        self.with(|db| unflushed(db, |db| settle_receipt_rows(db, receipts, forget)))
    }

    async fn sync(&self) -> Result<(), StoreError> {
        // A write under `synchronous=FULL` flushes the log, and with it every commit before.
        self.with(|db| {
            db.execute(
                "INSERT INTO ledger_meta (name, value) VALUES ('synced', 1)
                 ON CONFLICT(name) DO UPDATE SET value = value + 1",
                [],
            )
            .map(|_| ())
        })
    }

    async fn sweep_lock(&self) -> Result<Option<RotationLock>, StoreError> {
        Ok(Some(RotationLock::local()))
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

/// Runs `f` without flushing its commit: a settlement lost to a power cut leaves its receipt
/// (or legacy rows) in CDK's store, and the next start settles it again — counted once either
/// way. [`EpochStore::sync`] flushes before anything that relies on it.
fn unflushed<T>(
    db: &mut Connection,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    db.pragma_update(None, "synchronous", "NORMAL")?;
    let out = f(db);
    db.pragma_update(None, "synchronous", "FULL")?;
    out
}

fn settle_receipt_rows(
    db: &mut Connection,
    receipts: &[IssueReceipt],
    forget: &[String],
) -> rusqlite::Result<Vec<ReceiptEntry>> {
    let tx = db.transaction()?;
    let mut counted = Vec::new();
    {
        let mut mark = tx
            .prepare_cached("SELECT counted FROM receipt_mark WHERE key = ?1 AND keyset_id = ?2")?;
        let mut remark = tx.prepare_cached(
            "INSERT INTO receipt_mark (key, keyset_id, counted) VALUES (?1, ?2, ?3)
             ON CONFLICT(key, keyset_id) DO UPDATE SET counted = excluded.counted",
        )?;
        let mut add =
            tx.prepare_cached("UPDATE epoch SET issued = issued + ?2 WHERE keyset_id = ?1")?;
        let mut unmark = tx.prepare_cached("DELETE FROM receipt_mark WHERE key = ?1")?;
        for r in receipts {
            for (keyset, total) in &r.entries {
                let before: i64 = mark
                    .query_row(params![&r.key, keyset], |row| row.get(0))
                    .optional()?
                    .unwrap_or(0);
                let fresh = total.saturating_sub(u64_of(before));
                if fresh > 0 {
                    remark.execute(params![&r.key, keyset, i64_of(*total)])?;
                    add.execute(params![keyset, i64_of(fresh)])?;
                    counted.push((keyset.clone(), fresh));
                }
            }
        }
        for key in forget {
            unmark.execute([key])?;
        }
    }
    tx.commit()?;
    Ok(counted)
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
