//! Epochs: one ehash keyset per `epoch_blocks` network blocks, the ehash each issued for shares,
//! the blocks the pools found and what they pay each epoch, and the rate fixed when an epoch is
//! final. See `credits` for the split and the finality rule, `store` for durability.
//!
//! On a shared ledger (PostgreSQL, several mint processes) the database is the truth: each
//! process re-reads it every second and before every decision that depends on other processes
//! (rotations, found blocks, finality), and rotations run under the store's rotation lock.

pub mod credits;
pub mod receipts;
pub mod report;
pub mod store;

use crate::exchange::ExchangeError;
use crate::MintError;
use cdk::mint::Mint;
use cdk::nuts::{CurrencyUnit, Id};
use credits::BlockFacts;
use ehash_protocol::messages as m;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use store::{BlockRow, EpochRow, EpochStore, IssueEntry};
use tokio::sync::{watch, OwnedRwLockReadGuard, RwLock};

/// File name of the epoch ledger in the mint's data dir.
pub const EPOCHS_FILE: &str = "epochs.sqlite";

/// Economic parameters of the epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochConfig {
    /// Network blocks per epoch.
    pub epoch_blocks: u32,
    /// Epochs a found block pays (W).
    pub accrual_epochs: u32,
    /// Pool fee taken from every block reward, parts per million.
    pub pool_fee_ppm: u32,
}

/// A final epoch's fixed terms: `credit_msat / issued` millisats per HASH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedeemTerms {
    /// Epoch.
    pub epoch: u32,
    /// Fixed credit.
    pub credit_msat: u64,
    /// Ehash issued for shares.
    pub issued: u64,
}

/// What pools are told after every rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochAnnouncement {
    /// Current epoch.
    pub epoch: u32,
    /// Its keyset: every share is signed with it.
    pub keyset: Id,
    /// The previous epoch's keyset: requests blinded for it are still signed (with `keyset`).
    pub previous: Option<Id>,
}

/// The network tip as the last pool reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TipFacts {
    /// Height being mined.
    pub height: u32,
    /// Block target, little-endian.
    pub target_le: [u8; 32],
    /// Coinbase value of the template, sats.
    pub coinbase_value: u64,
    /// log2 of expected hashes per HASH.
    pub share_unit_log2: u8,
}

#[derive(Default)]
struct BookState {
    epochs: BTreeMap<u32, EpochRow>,
    by_keyset: HashMap<Id, u32>,
    blocks: BTreeMap<[u8; 32], BlockRow>,
    tip: Option<TipFacts>,
}

impl BookState {
    fn current(&self) -> u32 {
        self.epochs.keys().next_back().copied().unwrap_or(0)
    }

    fn is_final(&self, e: u32) -> bool {
        self.epochs
            .get(&e)
            .is_some_and(|r| r.finalized_at.is_some())
    }

    fn issued(&self) -> BTreeMap<u32, u64> {
        self.epochs.iter().map(|(e, r)| (*e, r.issued)).collect()
    }

    fn block_facts(&self) -> Vec<BlockFacts> {
        self.blocks
            .values()
            .map(|b| BlockFacts {
                epoch: b.epoch,
                reward: b.reward,
                status: b.status,
            })
            .collect()
    }

    /// The epoch a block at `height` was found in: the last one opened at or below it.
    fn epoch_for_height(&self, height: u32) -> u32 {
        self.epochs
            .values()
            .rev()
            .find(|r| r.start_height <= height)
            .or_else(|| self.epochs.values().next())
            .map(|r| r.epoch)
            .unwrap_or(0)
    }
}

/// The epoch ledger.
pub struct EpochBook {
    store: Box<dyn EpochStore>,
    config: EpochConfig,
    mint: Arc<Mint>,
    unit: CurrencyUnit,
    amounts: Vec<u64>,
    state: Mutex<BookState>,
    /// Signing batches hold it shared, a rotation exclusively: a batch never straddles one.
    rotation: Arc<RwLock<()>>,
    /// Serialises re-reads of a shared ledger, so an older snapshot never replaces a newer one.
    refresh: tokio::sync::Mutex<()>,
    announce: watch::Sender<Option<EpochAnnouncement>>,
    receipts: receipts::ReceiptLanes,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl EpochBook {
    /// Opens the ledger on `store`, finishing a rotation or a signing batch a crash cut short.
    pub async fn open(
        store: Box<dyn EpochStore>,
        config: EpochConfig,
        mint: Arc<Mint>,
        unit: CurrencyUnit,
        amounts: Vec<u64>,
        settle_pending: bool,
    ) -> Result<Self, MintError> {
        if config.epoch_blocks == 0 {
            return Err(MintError::Config {
                key: "epoch_blocks",
                reason: "must be at least 1".into(),
            });
        }
        if config.accrual_epochs == 0 {
            return Err(MintError::Config {
                key: "accrual_epochs",
                reason: "must be at least 1".into(),
            });
        }
        if u64::from(config.pool_fee_ppm) > ehash_protocol::economics::PPM {
            return Err(MintError::Config {
                key: "pool_fee_ppm",
                reason: "must be at most 1000000".into(),
            });
        }
        let (announce, _) = watch::channel(None);
        let book = Self {
            store,
            config,
            mint,
            unit,
            amounts,
            state: Mutex::new(BookState::default()),
            rotation: Arc::new(RwLock::new(())),
            refresh: tokio::sync::Mutex::new(()),
            announce,
            receipts: receipts::ReceiptLanes::default(),
        };
        book.recover(settle_pending).await?;
        Ok(book)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BookState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn active_keyset(&self) -> Result<Id, MintError> {
        crate::ledger::active_keyset(&self.mint, &self.unit)
    }

    async fn recover(&self, settle_pending: bool) -> Result<(), MintError> {
        let _rotations = self.store.rotation_lock().await?;
        let mut epochs = self.store.epochs().await?;
        let active = self.active_keyset()?.to_string();
        if epochs.is_empty() {
            // First start: the keyset CDK created is epoch 0 until a tip says otherwise.
            self.store.open_epoch(0, 0, None, now_secs()).await?;
            self.store.set_keyset(0, &active).await?;
            epochs = self.store.epochs().await?;
        }
        if let Some(last) = epochs.last().filter(|r| r.keyset_id.is_none()) {
            // A rotation was cut short: CDK may or may not have rotated.
            let known = epochs
                .iter()
                .any(|r| r.keyset_id.as_deref() == Some(&active));
            let keyset = if known {
                self.rotate_cdk().await?.to_string()
            } else {
                active.clone()
            };
            self.store.set_keyset(last.epoch, &keyset).await?;
            epochs = self.store.epochs().await?;
        }
        let current_keyset = epochs.last().and_then(|r| r.keyset_id.clone());
        let active = self.active_keyset()?.to_string();
        if current_keyset.as_deref() != Some(active.as_str()) {
            return Err(MintError::Config {
                key: "max_amount_log2",
                reason: format!(
                    "the active ehash keyset {active} is not the current epoch's ({current_keyset:?}); \
                     changing the keyset's amounts rotates it outside an epoch boundary"
                ),
            });
        }
        if settle_pending {
            self.settle_pending().await?;
            self.sweep_receipts().await?;
        }
        self.refresh().await
    }

    /// Re-reads epochs and blocks from the store (other mint processes may have changed them)
    /// and announces the current epoch if it moved.
    pub async fn refresh(&self) -> Result<(), MintError> {
        let _one_at_a_time = self.refresh.lock().await;
        let epochs = self.store.epochs().await?;
        let blocks = self.store.blocks().await?;
        let moved = {
            let mut s = self.lock();
            let before = s.epochs.values().next_back().map(|r| r.keyset_id.clone());
            s.by_keyset = epochs
                .iter()
                .filter_map(|r| {
                    let id = r.keyset_id.as_deref()?.parse::<Id>().ok()?;
                    Some((id, r.epoch))
                })
                .collect();
            s.epochs = epochs.into_iter().map(|r| (r.epoch, r)).collect();
            s.blocks = blocks.into_iter().map(|b| (b.hash, b)).collect();
            s.epochs.values().next_back().map(|r| r.keyset_id.clone()) != before
        };
        if moved {
            self.publish()?;
        }
        Ok(())
    }

    /// Whether other mint processes share this ledger.
    pub fn shared(&self) -> bool {
        self.store.shared()
    }

    /// The current epoch's keyset, once its rotation is done.
    pub fn current_keyset(&self) -> Option<Id> {
        self.lock()
            .epochs
            .values()
            .next_back()
            .and_then(|r| r.keyset_id.as_deref())
            .and_then(|k| k.parse().ok())
    }

    /// Counts the signatures of a batch a crash interrupted, if CDK committed them, from the
    /// rows versions before receipts wrote ahead of each batch. On a
    /// shared ledger the pending rows may also be other mints' batches in flight: only rows
    /// whose signature CDK holds are settled (counted once, whoever gets there first), none is
    /// dropped. Also run every few seconds there, for mints that died.
    pub async fn settle_pending(&self) -> Result<(), MintError> {
        let pending = self.store.pending_issue().await?;
        if pending.is_empty() {
            return Ok(());
        }
        let points: Vec<cdk::nuts::PublicKey> = pending
            .iter()
            .filter_map(|(b, _, _)| cdk::nuts::PublicKey::from_slice(b).ok())
            .collect();
        let found = self.mint.localstore().get_blind_signatures(&points).await?;
        let signed: Vec<IssueEntry> = pending
            .iter()
            .zip(found)
            .filter(|(_, sig)| sig.is_some())
            .map(|(e, _)| e.clone())
            .collect();
        let all: Vec<[u8; 33]> = if self.store.shared() {
            Vec::new()
        } else {
            pending.iter().map(|(b, _, _)| *b).collect()
        };
        if signed.is_empty() && all.is_empty() {
            return Ok(());
        }
        let counted = self.store.settle_issue(&signed, &all).await?;
        tracing::info!(
            pending = pending.len(),
            signed = signed.len(),
            counted = counted.len(),
            "settled signatures of an interrupted signing batch"
        );
        if self.store.shared() && !counted.is_empty() {
            self.refresh().await?;
        }
        Ok(())
    }

    async fn rotate_cdk(&self) -> Result<Id, MintError> {
        let info = self
            .mint
            .rotate_keyset(self.unit.clone(), self.amounts.clone(), 0, true, None)
            .await?;
        Ok(info.id)
    }

    fn publish(&self) -> Result<(), MintError> {
        let s = self.lock();
        let mut rows = s.epochs.values().rev();
        let current = rows.next();
        let keyset = |r: Option<&EpochRow>| {
            r.and_then(|r| r.keyset_id.as_deref())
                .and_then(|k| k.parse::<Id>().ok())
        };
        if let Some(keyset_id) = keyset(current) {
            let previous = keyset(rows.next());
            self.announce.send_replace(Some(EpochAnnouncement {
                epoch: current.map(|r| r.epoch).unwrap_or(0),
                keyset: keyset_id,
                previous,
            }));
        }
        Ok(())
    }

    /// Watches the current epoch's keysets.
    pub fn announcements(&self) -> watch::Receiver<Option<EpochAnnouncement>> {
        self.announce.subscribe()
    }

    /// Held by a signing batch so no rotation happens in the middle of it.
    /// Owned, so a batch keeps it from signing through its commit on another thread.
    pub async fn signing_guard(&self) -> OwnedRwLockReadGuard<()> {
        self.rotation.clone().read_owned().await
    }

    /// Whether a request blinded for `keyset` may be signed (with the active keyset): the
    /// keyset must belong to an epoch that is not final.
    pub fn check_request_keyset(&self, keyset: &Id) -> Result<(), &'static str> {
        let s = self.lock();
        match s.by_keyset.get(keyset) {
            Some(e) if s.is_final(*e) => Err(m::ERR_RETIRED_KEYSET),
            Some(_) => Ok(()),
            None => Err(m::ERR_UNKNOWN_KEYSET),
        }
    }

    /// Adds amounts the store just counted to the epochs held here.
    async fn count_settled<'a>(
        &self,
        counted: impl Iterator<Item = (&'a str, u64)>,
    ) -> Result<(), MintError> {
        if self.store.shared() {
            // Other processes count into the same rows: take the database's totals.
            if counted.count() > 0 {
                self.refresh().await?;
            }
            return Ok(());
        }
        let mut s = self.lock();
        for (keyset, amount) in counted {
            let epoch = keyset
                .parse::<Id>()
                .ok()
                .and_then(|k| s.by_keyset.get(&k).copied());
            if let Some(e) = epoch {
                if let Some(row) = s.epochs.get_mut(&e) {
                    row.issued = row.issued.saturating_add(amount);
                }
            }
        }
        Ok(())
    }

    /// A pool reports the block being mined: rotates when it starts a new epoch.
    pub async fn on_tip(&self, tip: TipFacts) -> Result<(), MintError> {
        let target = tip.height / self.config.epoch_blocks;
        {
            let mut s = self.lock();
            s.tip = Some(tip);
            if target <= s.current() {
                return Ok(());
            }
        }
        self.rotate_to(Some(target), tip.height).await.map(|_| ())
    }

    /// The operator ends the current epoch now: the next epoch opens at the tip's height with
    /// a fresh keyset (and lasts until its own boundary). Returns the new epoch.
    pub async fn rotate_now(&self) -> Result<u32, MintError> {
        let height = self.tip().map(|t| t.height).ok_or(MintError::Config {
            key: "rotate",
            reason: "no pool has reported the chain tip yet".into(),
        })?;
        self.rotate_to(None, height).await
    }

    /// Opens epoch `target` (the next one when `None`) at `height`, unless this or another
    /// mint process already opened it. Returns the current epoch afterwards.
    async fn rotate_to(&self, target: Option<u32>, height: u32) -> Result<u32, MintError> {
        let _exclusive = self.rotation.write().await;
        let _rotations = self.store.rotation_lock().await?;
        if self.store.shared() {
            // Another mint process may have rotated since we last looked.
            self.refresh().await?;
        }
        let previous = self.lock().current();
        let target = target.unwrap_or(previous + 1);
        if target <= previous {
            return Ok(previous);
        }
        let now = now_secs();
        self.store
            .open_epoch(target, height, Some(previous), now)
            .await?;
        let keyset = self.rotate_cdk().await?;
        self.store.set_keyset(target, &keyset.to_string()).await?;
        {
            let mut s = self.lock();
            if let Some(p) = s.epochs.get_mut(&previous) {
                p.closed_at.get_or_insert(now);
            }
            s.epochs.insert(
                target,
                EpochRow {
                    epoch: target,
                    keyset_id: Some(keyset.to_string()),
                    start_height: height,
                    opened_at: now,
                    closed_at: None,
                    issued: 0,
                    final_credit_msat: None,
                    finalized_at: None,
                },
            );
            s.by_keyset.insert(keyset, target);
            let issued = s.epochs.get(&previous).map(|r| r.issued).unwrap_or(0);
            tracing::info!(epoch = target, previous, previous_issued = issued, height, %keyset, "epoch rotated");
        }
        self.publish()?;
        self.finalize_ready().await?;
        Ok(target)
    }

    /// A pool reports a found block's state. Returns the status recorded (for the ack).
    pub async fn on_block(&self, report: &m::BlockReport) -> Result<u8, MintError> {
        if self.store.shared() {
            // Another mint may have recorded it (and credited an epoch) already.
            self.refresh().await?;
        }
        let hash = report.hash.to_array();
        let row = {
            let s = self.lock();
            let existing = s.blocks.get(&hash).cloned();
            let epoch = match &existing {
                Some(b) => b.epoch,
                None => {
                    let e = s.epoch_for_height(report.height);
                    if credits::window(e, self.config.accrual_epochs).any(|w| s.is_final(w))
                        || s.is_final(e)
                    {
                        // Only a deep reorg gets here: final rates never change, so the block
                        // pays the epoch it is being mined in now.
                        tracing::warn!(
                            height = report.height,
                            epoch = e,
                            "block for a final epoch; credited to the current one"
                        );
                        s.current()
                    } else {
                        e
                    }
                }
            };
            if let Some(b) = &existing {
                let frozen =
                    credits::window(b.epoch, self.config.accrual_epochs).any(|w| s.is_final(w));
                if frozen && b.status != report.status {
                    tracing::error!(
                        height = b.height,
                        old = b.status,
                        new = report.status,
                        "state change of a block whose epochs are final; ignored"
                    );
                    return Ok(report.status);
                }
            }
            BlockRow {
                hash,
                height: report.height,
                reward: existing.as_ref().map(|b| b.reward).unwrap_or(report.reward),
                epoch,
                status: report.status,
                confirmations: report.confirmations,
            }
        };
        self.store.upsert_block(&row, now_secs()).await?;
        let before = self.lock().blocks.insert(hash, row.clone());
        if before.map(|b| b.status) != Some(row.status) {
            tracing::info!(
                height = row.height,
                epoch = row.epoch,
                reward = row.reward,
                status = row.status,
                confirmations = row.confirmations,
                "found block recorded"
            );
        }
        self.finalize_ready().await?;
        Ok(report.status)
    }

    /// Fixes the credit of every epoch that became final.
    async fn finalize_ready(&self) -> Result<(), MintError> {
        let shared = self.store.shared();
        if shared {
            // Every process must fix the same credit: compute it from the database's totals.
            self.refresh().await?;
        }
        let credits: Vec<(u32, u64)> = {
            let s = self.lock();
            let current = s.current();
            let facts = s.block_facts();
            let issued = s.issued();
            s.epochs
                .values()
                .filter(|r| r.finalized_at.is_none())
                .map(|r| r.epoch)
                .filter(|e| credits::finalizable(*e, current, &facts, self.config.accrual_epochs))
                .map(|e| {
                    let credit = credits::epoch_credit(
                        e,
                        &facts,
                        &issued,
                        self.config.accrual_epochs,
                        self.config.pool_fee_ppm,
                        |st| st == m::BLOCK_MATURED,
                    );
                    (e, credit)
                })
                .collect()
        };
        if credits.is_empty() {
            return Ok(());
        }
        let now = now_secs();
        for (e, credit) in &credits {
            self.store.finalize(*e, *credit, now).await?;
        }
        if shared {
            // The first process to fix a credit wins; take the stored one.
            self.refresh().await?;
        } else {
            let mut s = self.lock();
            for (e, credit) in credits {
                if let Some(r) = s.epochs.get_mut(&e) {
                    r.final_credit_msat = Some(credit);
                    r.finalized_at = Some(now);
                }
            }
        }
        let s = self.lock();
        for r in s.epochs.values().filter(|r| r.finalized_at == Some(now)) {
            tracing::info!(
                epoch = r.epoch,
                issued = r.issued,
                credit_msat = r.final_credit_msat.unwrap_or(0),
                "epoch final"
            );
        }
        Ok(())
    }

    /// The network tip the pools reported last.
    pub fn tip(&self) -> Option<TipFacts> {
        self.lock().tip
    }

    fn epoch_of(&self, s: &BookState, keyset: &Id) -> Result<u32, ExchangeError> {
        s.by_keyset
            .get(keyset)
            .copied()
            .ok_or_else(|| ExchangeError::UnknownKeyset(keyset.to_string()))
    }

    /// The fixed terms of a final epoch's keyset.
    pub fn redeem_terms(&self, keyset: &Id) -> Result<RedeemTerms, ExchangeError> {
        let s = self.lock();
        let epoch = self.epoch_of(&s, keyset)?;
        let row = s
            .epochs
            .get(&epoch)
            .ok_or_else(|| ExchangeError::UnknownKeyset(keyset.to_string()))?;
        match row.final_credit_msat {
            Some(credit_msat) => Ok(RedeemTerms {
                epoch,
                credit_msat,
                issued: row.issued,
            }),
            None => Err(ExchangeError::NotFinal {
                epoch,
                status: if epoch == s.current() {
                    "open"
                } else {
                    "closed"
                },
            }),
        }
    }

    /// The epoch of a keyset the mint buys back (any epoch that is not final).
    pub fn buyback_epoch(&self, keyset: &Id) -> Result<u32, ExchangeError> {
        let s = self.lock();
        let epoch = self.epoch_of(&s, keyset)?;
        if s.is_final(epoch) {
            return Err(ExchangeError::Final(epoch));
        }
        Ok(epoch)
    }

    /// The configuration.
    pub fn config(&self) -> EpochConfig {
        self.config
    }

    /// Ehash issued for shares, per epoch.
    pub fn issued_by_epoch(&self) -> Vec<(u32, u64)> {
        self.lock()
            .epochs
            .values()
            .map(|r| (r.epoch, r.issued))
            .collect()
    }

    /// Found blocks by status name.
    pub fn blocks_by_status(&self) -> Vec<(&'static str, u64)> {
        let s = self.lock();
        let count = |st: u8| s.blocks.values().filter(|b| b.status == st).count() as u64;
        vec![
            ("pending", count(m::BLOCK_PENDING)),
            ("matured", count(m::BLOCK_MATURED)),
            ("orphaned", count(m::BLOCK_ORPHANED)),
        ]
    }

    /// Ehash issued for shares over all epochs.
    pub fn issued_total(&self) -> u64 {
        self.lock().epochs.values().map(|r| r.issued).sum()
    }

    /// The current epoch number.
    pub fn current_epoch(&self) -> u32 {
        self.lock().current()
    }
}
