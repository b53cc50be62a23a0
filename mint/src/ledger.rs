//! The CDK mint behind the ehash keysets, on SQLite in the data directory or on PostgreSQL
//! (`database_url`), where several mint processes may share one database.

use crate::epoch_keys::EpochKeys;
use crate::epochs::store::{EpochStore, PgEpochStore, SqliteEpochStore};
use crate::epochs::{EpochBook, EPOCHS_FILE};
use crate::{MintConfig, MintError};
use cdk::mint::{Mint, MintBuilder, UnitConfig};
use cdk::nuts::{CurrencyUnit, Id};
use cdk_common::database::{DynMintDatabase, MintKeysDatabase};
use cdk_sqlite::MintSqliteDatabase;
use ehash_protocol::difficulty::MAX_AMOUNT_LOG2;
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The ehash unit name (CDK normalises custom units to lower case).
pub const EHASH_UNIT: &str = "HASH";

/// Largest sat denomination, 2^51 sat (more than all bitcoin).
pub const SAT_MAX_AMOUNT_LOG2: u8 = 51;

/// Counters of the signing path since start.
#[derive(Debug, Default)]
pub struct SignCounters {
    /// Signatures issued.
    pub signed: AtomicU64,
    /// Requests refused.
    pub refused: AtomicU64,
    /// Resends answered with the signature stored earlier.
    pub replayed: AtomicU64,
    /// Database transactions committed by the signer.
    pub commits: AtomicU64,
    /// Microseconds spent in signing batches.
    pub batch_micros: AtomicU64,
    /// Signatures per second over the last 30 s (f64 bits), sampled every 5 s.
    pub sign_rate_bits: AtomicU64,
    /// Batch and database commit times.
    pub latency: SignLatency,
}

/// Histograms of the signing path.
#[derive(Debug, Clone)]
pub struct SignLatency {
    /// A whole batch: sign, DLEQ, store.
    pub batch: prometheus::Histogram,
    /// The database commit of a batch (fsync included): the mint's database latency.
    pub db_commit: prometheus::Histogram,
}

impl Default for SignLatency {
    fn default() -> Self {
        Self {
            batch: hashpool_ops_http::latency_histogram(
                "hashpool_mint_sign_batch_seconds",
                "Time to sign a batch with DLEQ proofs and store it",
            ),
            db_commit: hashpool_ops_http::latency_histogram(
                "hashpool_mint_db_commit_seconds",
                "Time of the database commit of a signing batch (fsync included)",
            ),
        }
    }
}

/// Samples the signature rate every 5 s until shutdown.
pub async fn sample_sign_rate(
    ledger: std::sync::Arc<EhashLedger>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut window = hashpool_ops_http::rate::RateWindow::new(6);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let c = &ledger.counters;
        let signed = c.signed.load(std::sync::atomic::Ordering::Relaxed) as f64;
        let rate = window.push(hashpool_ops_http::status::now_ms(), signed);
        c.sign_rate_bits
            .store(rate.to_bits(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// On a shared database: re-reads the epoch ledger every second, so this mint sees the other
/// mints' rotations, issuance and blocks (and announces a rotation to its pools). What dead
/// mints left uncounted is the receipt sweep's (`epochs::receipts::sweep_until`).
pub async fn follow_peers(
    ledger: std::sync::Arc<EhashLedger>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = ledger.epochs().refresh().await {
            tracing::warn!(error = %e, "re-reading the shared epoch ledger failed");
        }
    }
}

/// Snapshot of the mint's books.
#[derive(Debug, Clone, Serialize)]
pub struct MintStats {
    /// Total ehash issued, all ehash keysets (from the database).
    pub issued: u64,
    /// Number of blind signatures stored for ehash keysets (from the database).
    pub signatures: u64,
    /// Active ehash keyset id.
    pub active_keyset: String,
    /// Current epoch.
    pub epoch: u32,
    /// Ehash issued for shares, summed over the epochs (the epoch ledger's own count).
    pub epochs_issued: u64,
    /// Signatures issued by this process.
    pub signed_since_start: u64,
    /// Requests refused by this process.
    pub refused_since_start: u64,
    /// Resends answered with an earlier signature by this process.
    pub replayed_since_start: u64,
    /// Signer commits by this process.
    pub commits_since_start: u64,
    /// Sats issued by redemptions and buybacks (from the database).
    pub sat_issued: u64,
    /// Sats spent back at the mint (from the database).
    pub sat_redeemed: u64,
}

/// The mint's ledger: CDK mint, the ehash unit and counters.
pub struct EhashLedger {
    mint: Arc<Mint>,
    unit: CurrencyUnit,
    epochs: EpochBook,
    epoch_keys: EpochKeys,
    max_amount_log2: u8,
    sign_threads: usize,
    /// Counters of the signing path.
    pub counters: SignCounters,
    /// The operator paused share signing: pool links are closed and refused until resumed.
    pub signing_paused: tokio::sync::watch::Sender<bool>,
}

impl EhashLedger {
    /// Opens (or creates) the mint database and keysets in `config.data_dir`.
    pub async fn open(config: &MintConfig, http_url: &str) -> Result<Self, MintError> {
        Self::open_with(config, http_url, true).await
    }

    /// Opens the ledger to read it while the mint may be running: a signing batch left
    /// unsettled is the running mint's to settle, not ours.
    pub async fn inspect(config: &MintConfig, http_url: &str) -> Result<Self, MintError> {
        // Inspecting must never create a mint: a mistyped data_dir would show an empty one.
        let db = match config.database_url {
            None => config.data_dir.join("mint.sqlite"),
            Some(_) => config.data_dir.join(SEED_FILE),
        };
        if !db.exists() {
            return Err(MintError::Config {
                key: "data_dir",
                reason: format!(
                    "no mint at {} ({} is missing)",
                    config.data_dir.display(),
                    db.display()
                ),
            });
        }
        Self::open_with(config, http_url, false).await
    }

    async fn open_with(
        config: &MintConfig,
        http_url: &str,
        settle_pending: bool,
    ) -> Result<Self, MintError> {
        if config.max_amount_log2 > MAX_AMOUNT_LOG2 {
            return Err(MintError::Config {
                key: "max_amount_log2",
                reason: format!("must be at most {MAX_AMOUNT_LOG2}"),
            });
        }
        let seed = load_or_create_seed(&config.data_dir.join(SEED_FILE))?;
        let (db, keys_db, store) = open_databases(config).await?;
        let unit = CurrencyUnit::custom(EHASH_UNIT);
        let epoch_keys = EpochKeys::new(&seed, keys_db.clone(), unit.clone())?;
        // A mint with another seed would serve keys that do not match the keyset ids.
        epoch_keys.check_seed().await?;
        let mut builder = MintBuilder::new(db)
            .with_name("hashpool ehash mint".to_string())
            .with_description("ehash: one token per accepted mining share".to_string())
            .with_urls(vec![http_url.to_string()])
            .with_keyset_v2(Some(true))
            // On a shared database, pick up the other mints' rotations within a second.
            .with_keyset_refresh_interval(
                store.shared().then_some(std::time::Duration::from_secs(1)),
            );
        builder.configure_unit(
            unit.clone(),
            UnitConfig {
                amounts: (0..=config.max_amount_log2).map(|i| 1u64 << i).collect(),
                input_fee_ppk: 0,
            },
        )?;
        // Redeemed and bought-back ehash becomes ordinary sat ecash (served at `/sat`).
        builder.configure_unit(
            CurrencyUnit::Sat,
            UnitConfig {
                amounts: (0..=SAT_MAX_AMOUNT_LOG2).map(|i| 1u64 << i).collect(),
                input_fee_ppk: 0,
            },
        )?;
        let mint = builder.build_with_seed(keys_db, &seed).await?;
        // Another mint process may have created the keysets while we built ours.
        epoch_keys.check_seed().await?;
        mint.start().await?;
        let mint = Arc::new(mint);
        let amounts = (0..=config.max_amount_log2).map(|i| 1u64 << i).collect();
        let epochs = EpochBook::open(
            store,
            config.epochs(),
            mint.clone(),
            unit.clone(),
            amounts,
            settle_pending,
        )
        .await?;
        let ledger = Self {
            mint,
            epochs,
            epoch_keys,
            unit,
            max_amount_log2: config.max_amount_log2,
            sign_threads: config.sign_threads.max(1) as usize,
            counters: SignCounters::default(),
            signing_paused: tokio::sync::watch::channel(false).0,
        };
        ledger.active_keyset()?;
        Ok(ledger)
    }

    /// The CDK mint.
    pub fn mint(&self) -> &Arc<Mint> {
        &self.mint
    }

    /// The epoch ledger.
    pub fn epochs(&self) -> &EpochBook {
        &self.epochs
    }

    /// Signer for any epoch's keyset (epoch-preserving swaps).
    pub fn epoch_keys(&self) -> &EpochKeys {
        &self.epoch_keys
    }

    /// The ehash unit.
    pub fn unit(&self) -> &CurrencyUnit {
        &self.unit
    }

    /// Whether `id` is a keyset of the `sat` unit.
    pub fn is_sat_keyset(&self, id: &Id) -> bool {
        self.mint
            .keysets()
            .keysets
            .iter()
            .any(|k| k.id == *id && k.unit == CurrencyUnit::Sat)
    }

    /// Whether `id` is an ehash keyset.
    pub fn is_ehash_keyset(&self, id: &Id) -> bool {
        self.mint
            .keysets()
            .keysets
            .iter()
            .any(|k| k.id == *id && k.unit == self.unit)
    }

    /// Threads that sign share requests (see `signer`).
    pub fn sign_threads(&self) -> usize {
        self.sign_threads
    }

    /// Largest amount exponent signed.
    pub fn max_amount_log2(&self) -> u8 {
        self.max_amount_log2
    }

    /// The keyset new shares are signed with: the current epoch's (on a shared database CDK's
    /// own view of the active keyset may lag another mint's rotation by a second).
    pub fn active_keyset(&self) -> Result<Id, MintError> {
        match self.epochs.current_keyset() {
            Some(id) => Ok(id),
            None => active_keyset(&self.mint, &self.unit),
        }
    }

    /// Reads issued totals and signature counts from the database.
    pub async fn stats(&self) -> Result<MintStats, MintError> {
        let active = self.active_keyset()?;
        let issued_by_keyset = self.mint.total_issued().await?;
        let store = self.mint.localstore();
        let redeemed_by_keyset = self.mint.total_redeemed().await?;
        let mut issued = 0u64;
        let mut signatures = 0u64;
        let (mut sat_issued, mut sat_redeemed) = (0u64, 0u64);
        let amount = |m: &std::collections::HashMap<Id, cdk::Amount>, id: &Id| {
            m.get(id).map(|a| u64::from(*a)).unwrap_or(0)
        };
        for info in self.mint.keysets().keysets {
            if info.unit == CurrencyUnit::Sat {
                sat_issued += amount(&issued_by_keyset, &info.id);
                sat_redeemed += amount(&redeemed_by_keyset, &info.id);
            }
            if info.unit != self.unit {
                continue;
            }
            issued += issued_by_keyset
                .get(&info.id)
                .map(|a| u64::from(*a))
                .unwrap_or(0);
            signatures += store.get_blind_signatures_for_keyset(&info.id).await?.len() as u64;
        }
        Ok(MintStats {
            issued,
            signatures,
            active_keyset: active.to_string(),
            epoch: self.epochs.current_epoch(),
            epochs_issued: self.epochs.issued_total(),
            signed_since_start: self.counters.signed.load(Ordering::Relaxed),
            refused_since_start: self.counters.refused.load(Ordering::Relaxed),
            replayed_since_start: self.counters.replayed.load(Ordering::Relaxed),
            commits_since_start: self.counters.commits.load(Ordering::Relaxed),
            sat_issued,
            sat_redeemed,
        })
    }
}

/// The active keyset of `unit` in `mint`.
pub(crate) fn active_keyset(mint: &Mint, unit: &CurrencyUnit) -> Result<Id, MintError> {
    mint.get_active_keysets()
        .get(unit)
        .copied()
        .ok_or(MintError::Config {
            key: "unit",
            reason: format!("no active {unit} keyset"),
        })
}

/// File of the mint seed in the data directory.
pub const SEED_FILE: &str = "mint.seed";

type KeysDatabase = Arc<dyn MintKeysDatabase<Err = cdk::cdk_database::Error> + Send + Sync>;

/// Opens CDK's database and the epoch ledger: SQLite files in the data directory, or both on
/// the PostgreSQL database of `database_url`.
async fn open_databases(
    config: &MintConfig,
) -> Result<(DynMintDatabase, KeysDatabase, Box<dyn EpochStore>), MintError> {
    match &config.database_url {
        None => {
            let db = Arc::new(MintSqliteDatabase::new(&config.data_dir.join("mint.sqlite")).await?);
            let store = SqliteEpochStore::open(&config.data_dir.join(EPOCHS_FILE))?;
            Ok((db.clone(), db, Box::new(store)))
        }
        Some(url) => {
            let pg = cdk_postgres::PgConfig::new(url, None, None, None);
            let db = Arc::new(cdk_postgres::MintPgDatabase::new(pg).await?);
            let store = PgEpochStore::open(url).await?;
            Ok((db.clone(), db, Box::new(store)))
        }
    }
}

/// Reads the 64-byte mint seed, creating it (0600) on first run.
fn load_or_create_seed(path: &Path) -> Result<[u8; 64], MintError> {
    let io = |source| MintError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let bytes = hex::decode(s.trim()).map_err(|e| MintError::Config {
                key: "mint.seed",
                reason: format!("{}: {e}", path.display()),
            })?;
            bytes.try_into().map_err(|_| MintError::Config {
                key: "mint.seed",
                reason: format!("{}: expected 64 bytes", path.display()),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 64];
            rand::Rng::fill(&mut rand::thread_rng(), &mut seed[..]);
            sv2_io::keys::write_private(path, &hex::encode(seed)).map_err(io)?;
            Ok(seed)
        }
        Err(e) => Err(io(e)),
    }
}
