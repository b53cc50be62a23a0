//! The epoch ledger's storage: epochs and their keysets, ehash issued for shares per epoch,
//! found blocks, and fixed rates. Two backends: SQLite in the data directory (one mint process)
//! and PostgreSQL next to CDK's tables (several mint processes on one database).
//!
//! Issuance is counted from issue receipts (see [`super::receipts`]): running totals the
//! signer stores with each batch of signatures in CDK's transaction, and settles here. Settling
//! counts what a receipt's totals add to its mark (the totals counted before) and raises the
//! mark, so settling twice counts once. A mark is forgotten only after its receipt left CDK's
//! store, so no total is ever counted twice.
//!
//! Versions before receipts wrote a row per blinded message here before CDK's commit
//! (`pending_issue`); rows a crash left behind are still settled against CDK at start.

pub mod postgres;
pub mod sqlite;

pub use postgres::PgEpochStore;
pub use sqlite::SqliteEpochStore;

use std::path::PathBuf;

/// Errors of the epoch store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQLite file failed.
    #[error("epoch ledger {path}: {source}")]
    Sqlite {
        /// Database file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// The PostgreSQL database failed (the URL is not repeated: it may hold a password).
    #[error("epoch ledger on PostgreSQL: {}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// The connection to PostgreSQL was lost and could not be made again.
    #[error("epoch ledger on PostgreSQL: no connection")]
    Disconnected,
    /// TLS to PostgreSQL could not be set up.
    #[error("epoch ledger on PostgreSQL: TLS: {0}")]
    Tls(#[from] native_tls::Error),
}

/// One epoch as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochRow {
    /// Epoch number (`height / epoch_blocks` of its first block, or the next number when an
    /// operator rotated early).
    pub epoch: u32,
    /// Keyset id (text), none while its rotation is in progress.
    pub keyset_id: Option<String>,
    /// Height of the first block mined in it.
    pub start_height: u32,
    /// Unix time it opened.
    pub opened_at: i64,
    /// Unix time it stopped being the current epoch.
    pub closed_at: Option<i64>,
    /// Ehash issued for shares.
    pub issued: u64,
    /// Fixed credit in millisats, once final.
    pub final_credit_msat: Option<u64>,
    /// Unix time it became final.
    pub finalized_at: Option<i64>,
}

/// One found block as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRow {
    /// Hash (internal order).
    pub hash: [u8; 32],
    /// Height.
    pub height: u32,
    /// Coinbase value, sats.
    pub reward: u64,
    /// Epoch credited.
    pub epoch: u32,
    /// Status code.
    pub status: u8,
    /// Confirmations last reported.
    pub confirmations: u32,
}

/// A signature about to be committed: (B_, keyset id text, amount).
pub type IssueEntry = ([u8; 33], String, u64);

pub use super::receipts::{IssueReceipt, ReceiptEntry};

/// Held while an epoch rotation (or a receipt sweep) runs; other mint processes on the same
/// ledger wait for it (or skip their sweep).
pub struct RotationLock {
    _held: Option<Box<dyn Send + Sync>>,
}

impl RotationLock {
    /// A lock that excludes nothing beyond this process (one process owns the ledger).
    pub fn local() -> Self {
        Self { _held: None }
    }

    /// A lock held as long as `guard` lives.
    pub fn holding(guard: impl Send + Sync + 'static) -> Self {
        Self {
            _held: Some(Box::new(guard)),
        }
    }
}

/// Storage of the epoch ledger.
#[async_trait::async_trait]
pub trait EpochStore: Send + Sync {
    /// Whether other mint processes may change the ledger, so it must be re-read.
    fn shared(&self) -> bool;

    /// Every epoch, oldest first.
    async fn epochs(&self) -> Result<Vec<EpochRow>, StoreError>;

    /// Opens `epoch` (keyset still unknown) and closes `previous` in one transaction; opening
    /// an epoch that exists changes nothing.
    async fn open_epoch(
        &self,
        epoch: u32,
        start_height: u32,
        previous: Option<u32>,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Records the keyset of `epoch` once its rotation is done.
    async fn set_keyset(&self, epoch: u32, keyset_id: &str) -> Result<(), StoreError>;

    /// Fixes the credit of `epoch`; the first credit fixed stays.
    async fn finalize(&self, epoch: u32, credit_msat: u64, now: i64) -> Result<(), StoreError>;

    /// Writes the rows versions before receipts wrote ahead of a signing batch.
    #[cfg(test)]
    async fn begin_issue(&self, entries: &[IssueEntry]) -> Result<(), StoreError>;

    /// Counts what each receipt's totals add to its mark into the epochs of their keysets,
    /// and forgets the marks of `forget` (receipts gone from CDK's store), in one transaction.
    /// Returns the amounts counted now. May return before it is durable: see
    /// [`EpochStore::sync`].
    async fn settle_receipts(
        &self,
        receipts: &[IssueReceipt],
        forget: &[String],
    ) -> Result<Vec<ReceiptEntry>, StoreError>;

    /// Makes every settlement so far durable.
    async fn sync(&self) -> Result<(), StoreError>;

    /// Excludes other mint processes' receipt sweeps until dropped; `None` if one is running.
    async fn sweep_lock(&self) -> Result<Option<RotationLock>, StoreError>;

    /// Settles rows written before receipts: `signed` are the entries CDK committed (their amounts count as issued
    /// to the epoch of their keyset); every other pending entry of `all` is dropped. An entry
    /// counts only if its pending row is still there, so settling twice counts once. Returns
    /// the entries counted now.
    async fn settle_issue(
        &self,
        signed: &[IssueEntry],
        all: &[[u8; 33]],
    ) -> Result<Vec<IssueEntry>, StoreError>;

    /// Pending issue entries: left by a crash, or (on a shared ledger) in flight at any mint.
    async fn pending_issue(&self) -> Result<Vec<IssueEntry>, StoreError>;

    /// Every found block.
    async fn blocks(&self) -> Result<Vec<BlockRow>, StoreError>;

    /// Inserts or updates a found block.
    async fn upsert_block(&self, b: &BlockRow, now: i64) -> Result<(), StoreError>;

    /// Excludes every other mint process's rotation until dropped.
    async fn rotation_lock(&self) -> Result<RotationLock, StoreError>;
}

/// A PostgreSQL error with the server's own message (tokio-postgres shows only "db error").
pub fn postgres_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

pub(crate) fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(b: u8, keyset: &str, amount: u64) -> IssueEntry {
        ([b; 33], keyset.into(), amount)
    }

    /// Write-ahead, partial commit, second settlement: counted exactly once.
    async fn issuance_is_counted_once_whoever_settles(store: &dyn EpochStore) {
        store.open_epoch(0, 0, None, 1).await.unwrap();
        store.set_keyset(0, "k0").await.unwrap();
        let (a, b) = (entry(2, "k0", 64), entry(3, "k0", 8));
        store.begin_issue(&[a.clone(), b.clone()]).await.unwrap();
        assert_eq!(store.pending_issue().await.unwrap().len(), 2);
        // Only `a` was committed by CDK; both write-ahead rows go.
        let counted = store
            .settle_issue(std::slice::from_ref(&a), &[a.0, b.0])
            .await
            .unwrap();
        assert_eq!(counted, vec![a.clone()]);
        // A second settlement (a retry, a restart) counts nothing more.
        let only_a = [a.0];
        let again = store.settle_issue(std::slice::from_ref(&a), &only_a);
        assert!(again.await.unwrap().is_empty());
        assert!(store.pending_issue().await.unwrap().is_empty());
        assert_eq!(store.epochs().await.unwrap()[0].issued, 64);
        // Opening an epoch twice (two mints, one rotation) changes nothing.
        store.open_epoch(1, 10, Some(0), 5).await.unwrap();
        store.open_epoch(1, 11, Some(0), 6).await.unwrap();
        let epochs = store.epochs().await.unwrap();
        assert_eq!(epochs.len(), 2);
        assert_eq!((epochs[1].start_height, epochs[0].closed_at), (10, Some(5)));
        // The first fixed credit stays.
        store.finalize(0, 1_000, 7).await.unwrap();
        store.finalize(0, 2_000, 8).await.unwrap();
        assert_eq!(
            store.epochs().await.unwrap()[0].final_credit_msat,
            Some(1_000)
        );
    }

    fn receipt(key: &str, entries: &[(&str, u64)]) -> IssueReceipt {
        IssueReceipt {
            key: key.into(),
            written_ms: 1,
            entries: entries.iter().map(|(k, a)| (k.to_string(), *a)).collect(),
        }
    }

    /// A receipt's totals count once, whoever settles them how often, until forgotten.
    async fn receipts_are_counted_once(one: &dyn EpochStore, two: &dyn EpochStore) {
        let base = one.epochs().await.unwrap()[0].issued;
        let a = receipt("1-aa-0", &[("k0", 5)]);
        let counted = one
            .settle_receipts(std::slice::from_ref(&a), &[])
            .await
            .unwrap();
        assert_eq!(counted, vec![("k0".to_string(), 5)]);
        // The lane stored more; its signer and a sweep (of this mint or another) both settle
        // the new total, and an older total comes late: only the 7 added count.
        let a2 = receipt("1-aa-0", &[("k0", 12)]);
        let b = receipt("1-aa-1", &[("k0", 3), ("k1", 0)]);
        let counted = two.settle_receipts(&[a2.clone(), b.clone()], &[]).await;
        assert_eq!(
            counted.unwrap(),
            vec![("k0".to_string(), 7), ("k0".to_string(), 3)]
        );
        assert!(one
            .settle_receipts(&[a2, a, b], &[])
            .await
            .unwrap()
            .is_empty());
        one.sync().await.unwrap();
        // Forgotten once CDK let go of the receipts (lane keys are never reused).
        let gone = ["1-aa-0".to_string(), "1-aa-1".to_string()];
        assert!(two.settle_receipts(&[], &gone).await.unwrap().is_empty());
        assert_eq!(one.epochs().await.unwrap()[0].issued, base + 15);
        assert!(one.sweep_lock().await.unwrap().is_some());
    }

    #[tokio::test]
    async fn sqlite_counts_issuance_once() {
        let dir = std::env::temp_dir().join(format!("epoch-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteEpochStore::open(&dir.join("epochs.sqlite")).unwrap();
        issuance_is_counted_once_whoever_settles(&store).await;
        receipts_are_counted_once(&store, &store).await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn postgres_counts_issuance_once_across_mints() {
        let url = crate::testing::fresh_database("hp_unit_epoch_store")
            .await
            .unwrap();
        let one = PgEpochStore::open(&url).await.unwrap();
        issuance_is_counted_once_whoever_settles(&one).await;
        // Two mints sent the same blinded message: the one whose CDK commit lost releases its
        // claim, which must not take the winner's with it; the winner counts it once.
        let two = PgEpochStore::open(&url).await.unwrap();
        let x = entry(9, "k0", 16);
        one.begin_issue(std::slice::from_ref(&x)).await.unwrap();
        two.begin_issue(std::slice::from_ref(&x)).await.unwrap();
        assert!(two.settle_issue(&[], &[x.0]).await.unwrap().is_empty());
        assert_eq!(two.pending_issue().await.unwrap(), vec![x.clone()]);
        let counted = one.settle_issue(std::slice::from_ref(&x), &[x.0]).await;
        assert_eq!(counted.unwrap(), vec![x.clone()]);
        assert_eq!(two.epochs().await.unwrap()[0].issued, 64 + 16);
        // The winner died before settling: another mint sweeps its row up, once; the dead
        // mint's settlement (at its restart) then counts nothing.
        let z = entry(11, "k0", 32);
        one.begin_issue(std::slice::from_ref(&z)).await.unwrap();
        two.begin_issue(std::slice::from_ref(&z)).await.unwrap();
        assert_eq!(
            two.settle_issue(std::slice::from_ref(&z), &[])
                .await
                .unwrap(),
            vec![z.clone()]
        );
        assert!(one
            .settle_issue(std::slice::from_ref(&z), &[z.0])
            .await
            .unwrap()
            .is_empty());
        assert!(two.settle_issue(&[], &[z.0]).await.unwrap().is_empty());
        assert_eq!(one.epochs().await.unwrap()[0].issued, 64 + 16 + 32);
        // Two batches of one mint claimed the same message (a resend): the one whose commit
        // lost releases its claim, the winner still counts it, once.
        let y = entry(10, "k0", 4);
        one.begin_issue(std::slice::from_ref(&y)).await.unwrap();
        one.begin_issue(std::slice::from_ref(&y)).await.unwrap();
        assert!(one.settle_issue(&[], &[y.0]).await.unwrap().is_empty());
        let counted = one.settle_issue(std::slice::from_ref(&y), &[y.0]).await;
        assert_eq!(counted.unwrap(), vec![y.clone()]);
        assert!(one.pending_issue().await.unwrap().is_empty());
        assert_eq!(one.epochs().await.unwrap()[0].issued, 64 + 16 + 32 + 4);
        receipts_are_counted_once(&one, &two).await;
        // One receipt sweep at a time across mints.
        let sweeping = one.sweep_lock().await.unwrap();
        assert!(sweeping.is_some());
        assert!(two.sweep_lock().await.unwrap().is_none());
        drop(sweeping);
        // The rotation lock excludes the other process until dropped.
        let held = one.rotation_lock().await.unwrap();
        let waiting = tokio::spawn(async move { two.rotation_lock().await.map(|_| ()) });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "second rotation waits");
        drop(held);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("released with the first lock")
            .unwrap()
            .unwrap();
    }
}
