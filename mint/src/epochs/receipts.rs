//! Issue receipts: how the ehash the signer issues reaches its epoch exactly once.
//!
//! Each signing batch rewrites a receipt in CDK's key-value store, in the same transaction as
//! the batch's signatures: the running total, per keyset, of everything its *lane* stored. So
//! what a receipt says is exactly what CDK holds, at no flush of its own. A lane is used by one
//! commit at a time and lives for one process (and, on a shared ledger, only while busy). Right
//! after the commit the signer settles the receipt in the epoch store, which counts the part of
//! each total it has not counted before and marks the new total. A sweep settles receipts a
//! crash, an error or an idle spell left, and clears dead lanes: it makes the epoch store
//! durable, removes the receipts from CDK, and only then forgets their marks.

use super::EpochBook;
use crate::MintError;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// CDK key-value namespaces of the receipts.
pub const NAMESPACE: (&str, &str) = ("ehash", "issue");

/// How often the sweep runs.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// A lane idle this long is retired, so that another mint never removes a lane in use.
pub const LANE_IDLE: Duration = Duration::from_secs(30);

/// On a shared ledger, another mint's receipt not written for this long is a dead lane's, and
/// may be cleared (it is counted within a sweep either way).
pub const FOREIGN_IDLE: Duration = Duration::from_secs(600);

/// (keyset id text, amount) of a receipt.
pub type ReceiptEntry = (String, u64);

/// What one lane stored so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueReceipt {
    /// The lane: `<unix ms created>-<process instance>-<lane number>`.
    pub key: String,
    /// When the lane last wrote it (unix ms).
    pub written_ms: u64,
    /// Running total per keyset.
    pub entries: Vec<ReceiptEntry>,
}

impl IssueReceipt {
    /// The stored value: `<written ms>|` then `keyset:total` pairs joined by `;`.
    pub fn encode(&self) -> Vec<u8> {
        let parts: Vec<String> = self
            .entries
            .iter()
            .map(|(k, a)| format!("{k}:{a}"))
            .collect();
        format!("{}|{}", self.written_ms, parts.join(";")).into_bytes()
    }

    /// Reads a stored value; `None` if it is not one [`IssueReceipt::encode`] wrote.
    pub fn decode(key: String, value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?;
        let (written, list) = text.split_once('|')?;
        let mut entries = Vec::new();
        for part in list.split(';').filter(|p| !p.is_empty()) {
            let (k, a) = part.split_once(':')?;
            entries.push((k.to_string(), a.parse().ok()?));
        }
        Some(Self {
            key,
            written_ms: written.parse().ok()?,
            entries,
        })
    }

    fn instance(&self) -> Option<&str> {
        self.key.split('-').nth(1)
    }
}

/// One lane's key and what it stored.
#[derive(Debug, Default)]
struct Lane {
    key: String,
    totals: BTreeMap<String, u64>,
    written_ms: u64,
}

/// This process's lanes: the free ones, and the keys of all not retired.
#[derive(Debug)]
pub struct ReceiptLanes {
    instance: String,
    next: AtomicU64,
    free: Mutex<Vec<Lane>>,
    live: Mutex<HashSet<String>>,
}

impl Default for ReceiptLanes {
    fn default() -> Self {
        Self {
            instance: format!("{:016x}", rand::random::<u64>()),
            next: AtomicU64::new(0),
            free: Mutex::new(Vec::new()),
            live: Mutex::new(HashSet::new()),
        }
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ReceiptLanes {
    /// A lane for one commit; back to the pool when the guard drops.
    pub fn take(&self) -> LaneGuard<'_> {
        let now = now_ms();
        let idle = u64::try_from(LANE_IDLE.as_millis()).unwrap_or(u64::MAX);
        let reused = loop {
            let Some(lane) = locked(&self.free).pop() else {
                break None;
            };
            if now.saturating_sub(lane.written_ms) < idle {
                break Some(lane);
            }
            // Idle too long: its receipt is left for the sweep to settle and clear.
            locked(&self.live).remove(&lane.key);
        };
        let lane = reused.unwrap_or_else(|| {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let key = format!("{now}-{}-{n}", self.instance);
            locked(&self.live).insert(key.clone());
            Lane {
                key,
                totals: BTreeMap::new(),
                written_ms: now,
            }
        });
        LaneGuard {
            lanes: self,
            lane,
            retired: false,
        }
    }

    /// Whether the sweep may settle and clear `receipt` now. Without other processes on the
    /// ledger, another instance's receipt is a dead process's.
    fn sweepable(&self, receipt: &IssueReceipt, now: u64, shared: bool) -> bool {
        if receipt.instance() == Some(self.instance.as_str()) {
            return !locked(&self.live).contains(&receipt.key);
        }
        if !shared {
            return true;
        }
        let idle = now.saturating_sub(receipt.written_ms);
        idle >= u64::try_from(FOREIGN_IDLE.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A lane held by one commit.
#[derive(Debug)]
pub struct LaneGuard<'a> {
    lanes: &'a ReceiptLanes,
    lane: Lane,
    retired: bool,
}

impl LaneGuard<'_> {
    /// The lane's receipt with `entries` added: what to store with them.
    pub fn receipt_with(&self, entries: impl IntoIterator<Item = ReceiptEntry>) -> IssueReceipt {
        let mut totals = self.lane.totals.clone();
        for (k, a) in entries {
            let sum = totals.entry(k).or_default();
            *sum = sum.saturating_add(a);
        }
        IssueReceipt {
            key: self.lane.key.clone(),
            written_ms: now_ms(),
            entries: totals.into_iter().collect(),
        }
    }

    /// `receipt` was committed: the lane's totals are now its.
    pub fn committed(&mut self, receipt: &IssueReceipt) {
        self.lane.totals = receipt.entries.iter().cloned().collect();
        self.lane.written_ms = receipt.written_ms;
    }

    /// The commit failed and may or may not have reached the disk: the lane's stored total is
    /// unknown, so it is never written again and the sweep settles what it holds.
    pub fn retire(mut self) {
        self.retired = true;
    }
}

impl Drop for LaneGuard<'_> {
    fn drop(&mut self) {
        let lane = std::mem::take(&mut self.lane);
        if self.retired {
            locked(&self.lanes.live).remove(&lane.key);
        } else {
            locked(&self.lanes.free).push(lane);
        }
    }
}

fn now_ms() -> u64 {
    u64::try_from(hashpool_ops_http::status::now_ms()).unwrap_or(0)
}

impl EpochBook {
    /// This process's receipt lanes.
    pub fn receipts(&self) -> &ReceiptLanes {
        &self.receipts
    }

    /// Counts `receipts` not counted before, and forgets the marks of `forget`. Returns the
    /// amount counted now.
    pub async fn settle_receipts(
        &self,
        receipts: &[IssueReceipt],
        forget: &[String],
    ) -> Result<u64, MintError> {
        let counted = self.store.settle_receipts(receipts, forget).await?;
        let amount = counted.iter().fold(0u64, |t, (_, a)| t.saturating_add(*a));
        self.count_settled(counted.iter().map(|(k, a)| (k.as_str(), *a)))
            .await?;
        Ok(amount)
    }

    /// Settles every receipt (settling is safe at any time: it counts only what a total adds
    /// to its mark), then clears those of dead lanes: retired here, or another process's that
    /// died. Returns how many were cleared.
    pub async fn sweep_receipts(&self) -> Result<usize, MintError> {
        // Two sweeps at once could clear a receipt between the other's read and settlement.
        let Some(_one_sweep) = self.store.sweep_lock().await? else {
            return Ok(0);
        };
        let db = self.mint.localstore();
        let (ns, sub) = NAMESPACE;
        let keys = db.kv_list(ns, sub).await?;
        let mut receipts = Vec::new();
        for key in keys {
            let Some(value) = db.kv_read(ns, sub, &key).await? else {
                continue;
            };
            match IssueReceipt::decode(key.clone(), &value) {
                Some(r) => receipts.push(r),
                None => tracing::warn!(key, "unreadable issue receipt left in place"),
            }
        }
        if receipts.is_empty() {
            return Ok(0);
        }
        let counted = self.settle_receipts(&receipts, &[]).await?;
        if counted > 0 {
            tracing::info!(
                amount = counted,
                "counted issuance its signer had not settled"
            );
        }
        let (now, shared) = (now_ms(), self.store.shared());
        let dead: Vec<String> = receipts
            .into_iter()
            .filter(|r| self.receipts.sweepable(r, now, shared))
            .map(|r| r.key)
            .collect();
        if dead.is_empty() {
            return Ok(0);
        }
        // The marks must outlive the receipts: durable before CDK lets go of them.
        self.store.sync().await?;
        let mut tx = db.begin_transaction().await?;
        for key in &dead {
            if let Err(e) = tx.kv_remove(ns, sub, key).await {
                let _ = tx.rollback().await;
                return Err(e.into());
            }
        }
        tx.commit().await?;
        self.settle_receipts(&[], &dead).await?;
        Ok(dead.len())
    }
}

/// Every [`SWEEP_INTERVAL`] until shutdown, counts what signers left behind: receipts, and on a
/// shared ledger the write-ahead rows of older versions.
pub async fn sweep_until(
    ledger: std::sync::Arc<crate::EhashLedger>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Rows of an older mint that died between its CDK commit and its settlement only a
        // living mint can count until it restarts.
        if ledger.epochs().shared() {
            if let Err(e) = ledger.epochs().settle_pending().await {
                tracing::warn!(error = %e, "settling other mints' pending signatures failed");
            }
        }
        if let Err(e) = ledger.epochs().sweep_receipts().await {
            tracing::warn!(error = %e, "sweeping issue receipts failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EhashLedger, MintConfig};

    fn config(dir: &std::path::Path) -> MintConfig {
        let mut c: MintConfig = toml::from_str(
            r#"
            data_dir = "/unused"
            link_listen = "127.0.0.1:0"
            http_listen = "127.0.0.1:0"
            pool_keys = []
            "#,
        )
        .expect("config");
        c.data_dir = dir.to_path_buf();
        c
    }

    async fn store_receipt(ledger: &EhashLedger, receipt: &IssueReceipt) {
        let mut tx = ledger
            .mint()
            .localstore()
            .begin_transaction()
            .await
            .unwrap();
        let (ns, sub) = NAMESPACE;
        tx.kv_write(ns, sub, &receipt.key, &receipt.encode())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_receipt_a_crash_left_unsettled_is_counted_once_at_the_next_start() {
        let dir = std::env::temp_dir().join(format!("receipts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = "http://127.0.0.1:1";
        let ledger = EhashLedger::open(&config(&dir), url).await.unwrap();
        let keyset = ledger.epochs().current_keyset().unwrap().to_string();
        {
            // A batch stored and settled, then one stored whose settlement a crash cut off.
            let mut lane = ledger.epochs().receipts().take();
            let first = lane.receipt_with([(keyset.clone(), 8)]);
            store_receipt(&ledger, &first).await;
            lane.committed(&first);
            let counted = ledger.epochs().settle_receipts(&[first], &[]).await;
            assert_eq!(counted.unwrap(), 8);
            let second = lane.receipt_with([(keyset.clone(), 64)]);
            assert_eq!(second.entries, vec![(keyset.clone(), 72)]);
            store_receipt(&ledger, &second).await;
        }
        assert_eq!(ledger.epochs().issued_total(), 8);
        drop(ledger);

        for _start in 0..2 {
            let ledger = EhashLedger::open(&config(&dir), url).await.unwrap();
            assert_eq!(ledger.epochs().issued_total(), 8 + 64);
            let (ns, sub) = NAMESPACE;
            let left = ledger.mint().localstore().kv_list(ns, sub).await.unwrap();
            assert!(left.is_empty(), "receipts cleared: {left:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn receipts_are_running_totals_per_lane() {
        let lanes = ReceiptLanes::default();
        let mut lane = lanes.take();
        let r = lane.receipt_with([("k1".into(), 4), ("k0".into(), 1), ("k1".into(), 8)]);
        assert_eq!(r.entries, vec![("k0".into(), 1), ("k1".into(), 12)]);
        assert_eq!(
            IssueReceipt::decode(r.key.clone(), &r.encode()),
            Some(r.clone())
        );
        assert_eq!(r.instance(), Some(lanes.instance.as_str()));
        assert_eq!(IssueReceipt::decode("x".into(), b"1|k0:notanumber"), None);
        assert_eq!(IssueReceipt::decode("x".into(), b"k0:1"), None);
        // Not committed: the next receipt starts from the same totals.
        let again = lane.receipt_with([("k0".into(), 2)]);
        assert_eq!(again.entries, vec![("k0".into(), 2)]);
        lane.committed(&r);
        let next = lane.receipt_with([("k0".into(), 2)]);
        assert_eq!(next.entries, vec![("k0".into(), 3), ("k1".into(), 12)]);
        // A lane of this process is never the sweep's while live, busy or free.
        assert!(!lanes.sweepable(&r, now_ms() + 3_600_000, true));
        drop(lane);
        assert!(!lanes.sweepable(&r, now_ms(), false));
        let same = lanes.take();
        assert_eq!(same.receipt_with([]).key, r.key, "a free lane is reused");
        same.retire();
        assert!(lanes.sweepable(&r, now_ms(), true));
        assert_ne!(lanes.take().receipt_with([]).key, r.key);
        // Another process's: on a shared ledger only once idle long; alone, a dead one's.
        let other = ReceiptLanes::default()
            .take()
            .receipt_with([("k0".into(), 1)]);
        assert!(!lanes.sweepable(&other, now_ms(), true));
        assert!(lanes.sweepable(&other, now_ms() + 601_000, true));
        assert!(lanes.sweepable(&other, now_ms(), false));
    }
}
