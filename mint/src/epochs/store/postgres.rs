//! The epoch ledger on PostgreSQL, in the mint's database next to CDK's tables (`ehash_*`), so
//! several mint processes share it. Counters move with `issued = issued + n` in the database,
//! and epoch rotations (and receipt sweeps) are serialised by session advisory locks.
//!
//! Issue receipts are marked with the total counted so far in `ehash_receipt_mark`; a mint
//! settling a receipt locks its mark, so two mints never count the same part twice. Versions before receipts wrote a row per blinded message
//! (`ehash_pending_issue`), one whichever mints claimed it, counted by deleting it; rows a
//! crash left are still settled by the running mints.

use super::{
    i64_of, u64_of, BlockRow, EpochRow, EpochStore, IssueEntry, IssueReceipt, ReceiptEntry,
    RotationLock, StoreError,
};
use postgres_native_tls::MakeTlsConnector;
use std::collections::{BTreeMap, HashSet};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

/// Advisory lock keys (`hashtext` of these names).
const SCHEMA_LOCK: &str = "hashpool:epoch-ledger-schema";
const ROTATION_LOCK: &str = "hashpool:epoch-rotation";
const SWEEP_LOCK: &str = "hashpool:receipt-sweep";

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS ehash_epoch (
        epoch BIGINT PRIMARY KEY,
        keyset_id TEXT UNIQUE,
        start_height BIGINT NOT NULL,
        opened_at BIGINT NOT NULL,
        closed_at BIGINT,
        issued BIGINT NOT NULL DEFAULT 0,
        final_credit_msat BIGINT,
        finalized_at BIGINT
    );
    CREATE TABLE IF NOT EXISTS ehash_block (
        hash BYTEA PRIMARY KEY,
        height BIGINT NOT NULL,
        reward BIGINT NOT NULL,
        epoch BIGINT NOT NULL,
        status SMALLINT NOT NULL,
        confirmations BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS ehash_pending_issue (
        owner TEXT NOT NULL,
        blinded BYTEA PRIMARY KEY,
        keyset_id TEXT NOT NULL,
        amount BIGINT NOT NULL,
        claims INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE IF NOT EXISTS ehash_receipt_mark (
        key TEXT NOT NULL,
        keyset_id TEXT NOT NULL,
        counted BIGINT NOT NULL,
        PRIMARY KEY (key, keyset_id)
    );";

/// How to reach the server: TLS as the URL's `sslmode` asks (`disable`, `prefer`, `require`;
/// like libpq, `prefer` and `require` encrypt without checking the certificate).
#[derive(Clone)]
enum Tls {
    Off,
    On(MakeTlsConnector),
}

/// Handle to the ledger on PostgreSQL.
pub struct PgEpochStore {
    config: Config,
    tls: Tls,
    client: Mutex<Option<Client>>,
}

fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

impl PgEpochStore {
    /// Connects to `url`, creates the tables if needed.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let config: Config = url.parse()?;
        let tls = match config.get_ssl_mode() {
            SslMode::Disable => Tls::Off,
            _ => Tls::On(MakeTlsConnector::new(
                native_tls::TlsConnector::builder()
                    .danger_accept_invalid_certs(true)
                    .danger_accept_invalid_hostnames(true)
                    .build()?,
            )),
        };
        let store = Self {
            config,
            tls,
            client: Mutex::new(None),
        };
        {
            let mut c = store.client().await?;
            let tx = c.transaction().await?;
            // Two mints starting at once would race on the catalog otherwise.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&SCHEMA_LOCK],
            )
            .await?;
            tx.batch_execute(SCHEMA).await?;
            tx.commit().await?;
        }
        Ok(store)
    }

    async fn connect(&self) -> Result<Client, StoreError> {
        fn watch<S>(connection: S)
        where
            S: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
        {
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "epoch ledger connection to PostgreSQL closed");
                }
            });
        }
        Ok(match &self.tls {
            Tls::Off => {
                let (client, connection) = self.config.connect(NoTls).await?;
                watch(connection);
                client
            }
            Tls::On(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                watch(connection);
                client
            }
        })
    }

    /// The shared connection, reconnecting when the last one closed (a server restart).
    async fn client(&self) -> Result<MappedMutexGuard<'_, Client>, StoreError> {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = Some(self.connect().await?);
        }
        MutexGuard::try_map(slot, Option::as_mut).map_err(|_| StoreError::Disconnected)
    }
}

#[async_trait::async_trait]
impl EpochStore for PgEpochStore {
    fn shared(&self) -> bool {
        true
    }

    async fn epochs(&self) -> Result<Vec<EpochRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT epoch, keyset_id, start_height, opened_at, closed_at, issued,
                        final_credit_msat, finalized_at FROM ehash_epoch ORDER BY epoch",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(EpochRow {
                    epoch: u32_of(r.try_get(0)?),
                    keyset_id: r.try_get(1)?,
                    start_height: u32_of(r.try_get(2)?),
                    opened_at: r.try_get(3)?,
                    closed_at: r.try_get(4)?,
                    issued: u64_of(r.try_get(5)?),
                    final_credit_msat: r.try_get::<_, Option<i64>>(6)?.map(u64_of),
                    finalized_at: r.try_get(7)?,
                })
            })
            .collect()
    }

    async fn open_epoch(
        &self,
        epoch: u32,
        start_height: u32,
        previous: Option<u32>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO ehash_epoch (epoch, keyset_id, start_height, opened_at)
             VALUES ($1, NULL, $2, $3) ON CONFLICT (epoch) DO NOTHING",
            &[&i64::from(epoch), &i64::from(start_height), &now],
        )
        .await?;
        if let Some(p) = previous {
            tx.execute(
                "UPDATE ehash_epoch SET closed_at = $2 WHERE epoch = $1 AND closed_at IS NULL",
                &[&i64::from(p), &now],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_keyset(&self, epoch: u32, keyset_id: &str) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE ehash_epoch SET keyset_id = $2 WHERE epoch = $1",
            &[&i64::from(epoch), &keyset_id],
        )
        .await?;
        Ok(())
    }

    async fn finalize(&self, epoch: u32, credit_msat: u64, now: i64) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE ehash_epoch SET final_credit_msat = $2, finalized_at = $3
             WHERE epoch = $1 AND finalized_at IS NULL",
            &[&i64::from(epoch), &i64_of(credit_msat), &now],
        )
        .await?;
        Ok(())
    }

    #[cfg(test)]
    async fn begin_issue(&self, entries: &[IssueEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        // Rows are written in one order by every mint (CDK sorts its signature rows the same
        // way), so two mints claiming overlapping batches wait for each other, never deadlock.
        let mut sorted: Vec<&IssueEntry> = entries.iter().collect();
        sorted.sort_unstable_by_key(|(b, _, _)| *b);
        let blinded: Vec<&[u8]> = sorted.iter().map(|(b, _, _)| &b[..]).collect();
        let keysets: Vec<&str> = sorted.iter().map(|(_, k, _)| k.as_str()).collect();
        let amounts: Vec<i64> = sorted.iter().map(|(_, _, a)| i64_of(*a)).collect();
        let c = self.client().await?;
        c.execute(
            "INSERT INTO ehash_pending_issue (owner, blinded, keyset_id, amount)
             SELECT $1, b, k, a FROM UNNEST($2::bytea[], $3::text[], $4::bigint[]) AS t(b, k, a)
             ON CONFLICT (blinded) DO UPDATE SET keyset_id = EXCLUDED.keyset_id,
                 amount = EXCLUDED.amount, claims = ehash_pending_issue.claims + 1",
            &[&"legacy", &blinded, &keysets, &amounts],
        )
        .await?;
        Ok(())
    }

    async fn settle_issue(
        &self,
        signed: &[IssueEntry],
        all: &[[u8; 33]],
    ) -> Result<Vec<IssueEntry>, StoreError> {
        let signed_points: Vec<&[u8]> = signed.iter().map(|(b, _, _)| &b[..]).collect();
        let signed_set: HashSet<&[u8]> = signed_points.iter().copied().collect();
        let released: Vec<&[u8]> = all
            .iter()
            .map(|b| &b[..])
            .filter(|b| !signed_set.contains(b))
            .collect();
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // A committed signature counts once, whichever batches claimed it.
        let removed: HashSet<Vec<u8>> = tx
            .query(
                "DELETE FROM ehash_pending_issue WHERE blinded = ANY($1) RETURNING blinded",
                &[&signed_points],
            )
            .await?
            .iter()
            .map(|r| r.try_get::<_, Vec<u8>>(0))
            .collect::<Result<_, _>>()?;
        if !released.is_empty() {
            tx.execute(
                "UPDATE ehash_pending_issue SET claims = claims - 1
                 WHERE blinded = ANY($1)",
                &[&released],
            )
            .await?;
            tx.execute(
                "DELETE FROM ehash_pending_issue
                 WHERE blinded = ANY($1) AND claims <= 0",
                &[&released],
            )
            .await?;
        }
        let counted: Vec<IssueEntry> = signed
            .iter()
            .filter(|(b, _, _)| removed.contains(&b[..]))
            .cloned()
            .collect();
        let mut by_keyset: BTreeMap<&str, u64> = BTreeMap::new();
        for (_, k, a) in &counted {
            *by_keyset.entry(k.as_str()).or_default() += a;
        }
        for (keyset, amount) in by_keyset {
            tx.execute(
                "UPDATE ehash_epoch SET issued = issued + $2 WHERE keyset_id = $1",
                &[&keyset, &i64_of(amount)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(counted)
    }

    async fn pending_issue(&self) -> Result<Vec<IssueEntry>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT blinded, keyset_id, amount FROM ehash_pending_issue",
                &[],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let b: Vec<u8> = r.try_get(0)?;
            if let Ok(b) = <[u8; 33]>::try_from(b) {
                out.push((b, r.try_get(1)?, u64_of(r.try_get(2)?)));
            }
        }
        Ok(out)
    }

    async fn blocks(&self) -> Result<Vec<BlockRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT hash, height, reward, epoch, status, confirmations FROM ehash_block
                 ORDER BY height, hash",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let hash: Vec<u8> = r.try_get(0)?;
                Ok(BlockRow {
                    hash: hash.try_into().unwrap_or([0; 32]),
                    height: u32_of(r.try_get(1)?),
                    reward: u64_of(r.try_get(2)?),
                    epoch: u32_of(r.try_get(3)?),
                    status: u8::try_from(r.try_get::<_, i16>(4)?).unwrap_or(0),
                    confirmations: u32_of(r.try_get(5)?),
                })
            })
            .collect()
    }

    async fn upsert_block(&self, b: &BlockRow, now: i64) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO ehash_block (hash, height, reward, epoch, status, confirmations, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (hash) DO UPDATE SET status = $5, confirmations = $6, updated_at = $7",
            &[
                &&b.hash[..],
                &i64::from(b.height),
                &i64_of(b.reward),
                &i64::from(b.epoch),
                &i16::from(b.status),
                &i64::from(b.confirmations),
                &now,
            ],
        )
        .await?;
        Ok(())
    }

    async fn settle_receipts(
        &self,
        receipts: &[IssueReceipt],
        forget: &[String],
    ) -> Result<Vec<ReceiptEntry>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let mut counted = Vec::new();
        for r in receipts {
            for (keyset, total) in &r.entries {
                // The mark's row is locked until commit: of two mints settling one receipt,
                // the second sees the first's mark.
                tx.execute(
                    "INSERT INTO ehash_receipt_mark (key, keyset_id, counted) VALUES ($1, $2, 0)
                     ON CONFLICT DO NOTHING",
                    &[&r.key, keyset],
                )
                .await?;
                let before: i64 = tx
                    .query_one(
                        "SELECT counted FROM ehash_receipt_mark
                         WHERE key = $1 AND keyset_id = $2 FOR UPDATE",
                        &[&r.key, keyset],
                    )
                    .await?
                    .try_get(0)?;
                let fresh = total.saturating_sub(u64_of(before));
                if fresh > 0 {
                    tx.execute(
                        "UPDATE ehash_receipt_mark SET counted = $3 WHERE key = $1 AND keyset_id = $2",
                        &[&r.key, keyset, &i64_of(*total)],
                    )
                    .await?;
                    tx.execute(
                        "UPDATE ehash_epoch SET issued = issued + $2 WHERE keyset_id = $1",
                        &[keyset, &i64_of(fresh)],
                    )
                    .await?;
                    counted.push((keyset.clone(), fresh));
                }
            }
        }
        if !forget.is_empty() {
            tx.execute(
                "DELETE FROM ehash_receipt_mark WHERE key = ANY($1)",
                &[&forget],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(counted)
    }

    async fn sync(&self) -> Result<(), StoreError> {
        // Every commit here was durable when it returned.
        Ok(())
    }

    async fn sweep_lock(&self) -> Result<Option<RotationLock>, StoreError> {
        let c = self.connect().await?;
        let row = c
            .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&SWEEP_LOCK])
            .await?;
        Ok(row.try_get::<_, bool>(0)?.then(|| RotationLock::holding(c)))
    }

    async fn rotation_lock(&self) -> Result<RotationLock, StoreError> {
        // A connection of its own: the lock lives as long as the session, so a mint that dies
        // mid-rotation releases it with its connection.
        let c = self.connect().await?;
        c.execute("SELECT pg_advisory_lock(hashtext($1))", &[&ROTATION_LOCK])
            .await?;
        Ok(RotationLock::holding(c))
    }
}
