//! The pool's durable record of accepted ehash shares.
//!
//! An ehash share is acknowledged once its claim on a signature is durable. Usually that is
//! the signature the mint stored, and the share is only counted here (`count`, no flush of
//! its own: the mint holds the claim). A share whose signature does not come back in time is
//! written here as an open entry (group commit, SQLite WAL with `synchronous=FULL`) before it
//! is acknowledged, and the entry stays open until the mint answers. After a crash of the pool
//! or the mint, every open entry is sent to the mint again as a replay, which the mint answers
//! with the signature it stored, if any. So an acknowledged share is always paid, and the
//! totals here are what the pool acknowledged.

use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use serde::Serialize;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Operations committed per transaction at most.
const MAX_BATCH: usize = 1024;

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite failed.
    #[error("share journal {path}: {source}")]
    Sqlite {
        /// Database file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// No journal at that path.
    #[error("no share journal at {0}")]
    Missing(PathBuf),
    /// The writer thread could not start.
    #[error("cannot start the journal writer: {0}")]
    Thread(std::io::Error),
}

/// One accepted share's claim on a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// B_.
    pub blinded: [u8; 33],
    /// Keyset id bytes.
    pub keyset_id: Vec<u8>,
    /// Amount.
    pub amount: u64,
}

/// What happened to a record request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Durable: the share may be acknowledged.
    Recorded,
    /// The same B_ is already waiting for a signature.
    Duplicate,
    /// The commit failed; the share must not be acknowledged.
    Failed(String),
}

/// Durable totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JournalTotals {
    /// Ehash shares acknowledged since the journal was created.
    pub accepted_shares: u64,
    /// Sum of their amounts.
    pub accepted_amount: u64,
    /// Entries still waiting for the mint.
    pub open: u64,
}

type Done = Box<dyn FnOnce(RecordOutcome) + Send>;

enum Op {
    Record(JournalEntry, Done),
    Complete([u8; 33]),
    Count(u64, Box<dyn FnOnce() + Send>),
    Flushed(Box<dyn FnOnce() + Send>),
}

/// Handle to the journal's writer thread.
#[derive(Clone)]
pub struct ShareJournal {
    tx: mpsc::UnboundedSender<Op>,
}

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
    move |source| JournalError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens a SQLite file for the pool's durable records: WAL, every commit flushed.
pub(crate) fn open_durable(path: &Path) -> rusqlite::Result<Connection> {
    let db = Connection::open(path)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    Ok(db)
}

fn open_db(path: &Path) -> Result<Connection, JournalError> {
    let err = sqlite(path);
    let db = open_durable(path).map_err(&err)?;
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS open_share (
             blinded BLOB PRIMARY KEY,
             keyset_id BLOB NOT NULL,
             amount INTEGER NOT NULL,
             recorded_at INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS totals (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             accepted_shares INTEGER NOT NULL,
             accepted_amount INTEGER NOT NULL
         );
         INSERT OR IGNORE INTO totals (id, accepted_shares, accepted_amount) VALUES (1, 0, 0);",
    )
    .map_err(&err)?;
    Ok(db)
}

fn read_totals(db: &Connection, path: &Path) -> Result<JournalTotals, JournalError> {
    let err = sqlite(path);
    let (shares, amount): (i64, i64) = db
        .query_row(
            "SELECT accepted_shares, accepted_amount FROM totals WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(&err)?
        .unwrap_or((0, 0));
    let open: i64 = db
        .query_row("SELECT COUNT(*) FROM open_share", [], |r| r.get(0))
        .map_err(&err)?;
    Ok(JournalTotals {
        accepted_shares: shares as u64,
        accepted_amount: amount as u64,
        open: open as u64,
    })
}

impl ShareJournal {
    /// Opens (or creates) the journal; returns it with the entries still waiting for the mint.
    pub fn open(path: &Path) -> Result<(Self, Vec<JournalEntry>), JournalError> {
        let db = open_db(path)?;
        let open = {
            let err = sqlite(path);
            let mut stmt = db
                .prepare("SELECT blinded, keyset_id, amount FROM open_share ORDER BY recorded_at")
                .map_err(&err)?;
            let rows = stmt
                .query_map([], |r| {
                    let b: Vec<u8> = r.get(0)?;
                    let amount: i64 = r.get(2)?;
                    Ok((b, r.get::<_, Vec<u8>>(1)?, amount as u64))
                })
                .map_err(&err)?;
            let mut out = Vec::new();
            for row in rows {
                let (b, keyset_id, amount) = row.map_err(&err)?;
                match <[u8; 33]>::try_from(b.as_slice()) {
                    Ok(blinded) => out.push(JournalEntry {
                        blinded,
                        keyset_id,
                        amount,
                    }),
                    Err(_) => tracing::error!(len = b.len(), "journal entry with a bad B_ skipped"),
                }
            }
            out
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("share-journal".into())
            .spawn(move || writer(db, path, rx))
            .map_err(JournalError::Thread)?;
        Ok((Self { tx }, open))
    }

    /// Totals of an existing journal, read without starting a writer (offline inspection).
    pub fn totals_at(path: &Path) -> Result<JournalTotals, JournalError> {
        if !path.exists() {
            return Err(JournalError::Missing(path.to_path_buf()));
        }
        let db = open_db(path)?;
        read_totals(&db, path)
    }

    /// Records an accepted share; `done` runs on the writer thread once the outcome is known.
    pub fn record(&self, entry: JournalEntry, done: impl FnOnce(RecordOutcome) + Send + 'static) {
        if let Err(e) = self.tx.send(Op::Record(entry, Box::new(done))) {
            if let Op::Record(_, done) = e.0 {
                done(RecordOutcome::Failed("journal writer stopped".into()));
            }
        }
    }

    /// Adds a share whose signature the mint stored to the totals; `done` runs on the writer
    /// thread once that is written (or failed, which is logged: the mint holds the claim).
    pub fn count(&self, amount: u64, done: impl FnOnce() + Send + 'static) {
        if let Err(e) = self.tx.send(Op::Count(amount, Box::new(done))) {
            tracing::error!("journal writer stopped; share not counted");
            if let Op::Count(_, done) = e.0 {
                done();
            }
        }
    }

    /// Waits until everything sent before is committed (or failed, which is logged).
    pub async fn flushed(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done = Box::new(move || {
            let _ = tx.send(());
        });
        if self.tx.send(Op::Flushed(done)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Closes the entry of a B_ whose signature came back (or can never come).
    pub fn complete(&self, blinded: [u8; 33]) {
        if self.tx.send(Op::Complete(blinded)).is_err() {
            tracing::error!("journal writer stopped; entry stays open until restart");
        }
    }
}

fn writer(mut db: Connection, path: PathBuf, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(op) = rx.blocking_recv() {
        batch.push(op);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        // Closing entries and counting signed shares need no flush of their own: a close lost
        // to a power cut only makes the entry be replayed, which the mint answers with the
        // signature it stored; a count lost to one under-reports what the mint holds anyway
        // (a process crash loses neither: the write is in the OS). A batch with records is
        // flushed (synchronous=FULL), and with it everything before it.
        let records = batch.iter().any(|op| matches!(op, Op::Record(..)));
        let mode = if records { "FULL" } else { "NORMAL" };
        if let Err(e) = db.pragma_update(None, "synchronous", mode) {
            tracing::warn!(path = %path.display(), error = %e, "cannot set the journal's sync mode");
        }
        let outcomes = commit(&mut db, &batch);
        let failure = outcomes.as_ref().err().map(|e| e.to_string());
        if let Some(e) = &failure {
            tracing::error!(path = %path.display(), error = %e, "journal commit failed");
        }
        let mut outcomes = outcomes.unwrap_or_default().into_iter();
        for op in batch.drain(..) {
            match op {
                Op::Record(_, done) => {
                    let outcome = match &failure {
                        Some(e) => RecordOutcome::Failed(e.clone()),
                        None => outcomes
                            .next()
                            .unwrap_or(RecordOutcome::Failed("lost".into())),
                    };
                    done(outcome);
                }
                Op::Count(_, done) | Op::Flushed(done) => done(),
                Op::Complete(_) => {}
            }
        }
    }
}

/// Applies a batch in one transaction; returns the outcome of each record, in order.
fn commit(db: &mut Connection, batch: &[Op]) -> Result<Vec<RecordOutcome>, rusqlite::Error> {
    let tx = db.transaction()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut outcomes = Vec::new();
    let (mut shares, mut amount) = (0i64, 0i64);
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO open_share (blinded, keyset_id, amount, recorded_at) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut delete = tx.prepare_cached("DELETE FROM open_share WHERE blinded = ?1")?;
        for op in batch {
            match op {
                Op::Record(e, _) => {
                    let amount_i64 = i64::try_from(e.amount).unwrap_or(i64::MAX);
                    match insert.execute(params![&e.blinded[..], &e.keyset_id, amount_i64, now]) {
                        Ok(_) => {
                            shares += 1;
                            amount = amount.saturating_add(amount_i64);
                            outcomes.push(RecordOutcome::Recorded);
                        }
                        Err(rusqlite::Error::SqliteFailure(f, _))
                            if f.code == ErrorCode::ConstraintViolation =>
                        {
                            outcomes.push(RecordOutcome::Duplicate)
                        }
                        Err(e) => return Err(e),
                    }
                }
                Op::Complete(b) => {
                    delete.execute(params![&b[..]])?;
                }
                Op::Count(a, _) => {
                    shares += 1;
                    amount = amount.saturating_add(i64::try_from(*a).unwrap_or(i64::MAX));
                }
                Op::Flushed(_) => {}
            }
        }
    }
    if shares > 0 {
        tx.execute(
            "UPDATE totals SET accepted_shares = accepted_shares + ?1,
                               accepted_amount = accepted_amount + ?2 WHERE id = 1",
            params![shares, amount],
        )?;
    }
    tx.commit()?;
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc as std_mpsc;

    fn entry(b: u8, amount: u64) -> JournalEntry {
        JournalEntry {
            blinded: [b; 33],
            keyset_id: vec![1; 33],
            amount,
        }
    }

    fn record(j: &ShareJournal, e: JournalEntry) -> RecordOutcome {
        let (tx, rx) = std_mpsc::channel();
        j.record(e, move |o| {
            let _ = tx.send(o);
        });
        rx.recv().unwrap()
    }

    #[test]
    fn entries_survive_reopen_until_completed() {
        let dir = std::env::temp_dir().join(format!("hashpool-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("journal.sqlite");
        {
            let (j, open) = ShareJournal::open(&path).unwrap();
            assert!(open.is_empty());
            assert_eq!(record(&j, entry(2, 8)), RecordOutcome::Recorded);
            assert_eq!(record(&j, entry(3, 16)), RecordOutcome::Recorded);
            assert_eq!(record(&j, entry(2, 8)), RecordOutcome::Duplicate);
            j.complete([3; 33]);
            // the complete is applied before this record's commit answers
            assert_eq!(record(&j, entry(4, 1)), RecordOutcome::Recorded);
            // a share the mint signed in time is counted without an entry
            let (tx, rx) = std_mpsc::channel();
            j.count(32, move || tx.send(()).unwrap());
            rx.recv().unwrap();
        }
        let t = ShareJournal::totals_at(&path).unwrap();
        assert_eq!(
            t,
            JournalTotals {
                accepted_shares: 4,
                accepted_amount: 57,
                open: 2
            }
        );
        let (_j, open) = ShareJournal::open(&path).unwrap();
        assert_eq!(open, vec![entry(2, 8), entry(4, 1)]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
