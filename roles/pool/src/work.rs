//! The work the template provider hands out, shared with every downstream connection.

use std::sync::Mutex;
use stratum_core::template_distribution_sv2::{NewTemplateOwned, SetNewPrevHashOwned};
use tokio::sync::broadcast;

/// A broadcast change of work: sequence number, when the pool received it, the change.
pub type WorkUpdate = (u64, std::time::Instant, WorkEvent);

/// A change of work, broadcast to connections.
#[derive(Debug, Clone)]
pub enum WorkEvent {
    /// A new (future or active) template.
    Template(NewTemplateOwned),
    /// A new chain tip activating a future template.
    PrevHash(SetNewPrevHashOwned),
}

/// What a newly opened channel needs to start mining.
#[derive(Debug, Clone, Default)]
pub struct WorkSnapshot {
    /// Sequence number of the last event this snapshot includes; a channel replayed from it
    /// must skip broadcast events up to here, or it would apply them twice.
    pub seq: u64,
    /// Last future template (activated by `prev_hash`).
    pub future: Option<NewTemplateOwned>,
    /// Last prev hash.
    pub prev_hash: Option<SetNewPrevHashOwned>,
    /// Last non-future template on the current tip.
    pub active: Option<NewTemplateOwned>,
}

/// What the pool keeps of a recent template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateFacts {
    /// Coinbase value (subsidy + fees).
    pub value: u64,
    /// Height of the block it builds (BIP34), if the prefix carries one.
    pub height: Option<u32>,
}

pub use hashpool_jd_server::coinbase::bip34_height;

/// The embedded jd-server finds the transactions of recent templates here.
impl hashpool_jd_server::TransactionSource for WorkState {
    fn transaction(
        &self,
        wtxid: &[u8; 32],
    ) -> Option<std::sync::Arc<stratum_core::bitcoin::Transaction>> {
        self.known.get(wtxid)
    }
}

/// Current work plus a broadcast of changes.
pub struct WorkState {
    snapshot: Mutex<WorkSnapshot>,
    values: Mutex<std::collections::BTreeMap<u64, TemplateFacts>>,
    solved_parents: Mutex<std::collections::VecDeque<[u8; 32]>>,
    events: broadcast::Sender<WorkUpdate>,
    known: crate::known_txs::KnownTransactions,
}

impl Default for WorkState {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkState {
    /// Empty state.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(256);
        Self {
            snapshot: Mutex::new(WorkSnapshot::default()),
            values: Mutex::new(std::collections::BTreeMap::new()),
            solved_parents: Mutex::new(std::collections::VecDeque::new()),
            events,
            known: Default::default(),
        }
    }

    /// The transactions of recent templates.
    pub fn known_transactions(&self) -> &crate::known_txs::KnownTransactions {
        &self.known
    }

    /// Subscribes and returns the snapshot taken atomically with the subscription.
    pub fn subscribe(&self) -> (WorkSnapshot, broadcast::Receiver<WorkUpdate>) {
        let guard = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        (guard.clone(), self.events.subscribe())
    }

    /// The current work, for a channel that opens now.
    pub fn snapshot(&self) -> WorkSnapshot {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Block target (little-endian) of the current tip, from the TP's `SetNewPrevHash`.
    pub fn block_target(&self) -> Option<[u8; 32]> {
        let guard = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        guard.prev_hash.as_ref().map(|p| p.target.to_array())
    }

    /// The current tip: parent hash and nBits, from the TP's `SetNewPrevHash`.
    pub fn tip(&self) -> Option<([u8; 32], u32)> {
        let guard = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .prev_hash
            .as_ref()
            .map(|p| (p.prev_hash.to_array(), p.n_bits))
    }

    /// Claims the one block the pool may find on `parent`. A second solution on the same
    /// parent could only be a same-height sibling of our own block, never the tip: false.
    pub fn claim_block(&self, parent: [u8; 32]) -> bool {
        let mut solved = self
            .solved_parents
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if solved.contains(&parent) {
            return false;
        }
        solved.push_back(parent);
        if solved.len() > 16 {
            solved.pop_front();
        }
        true
    }

    /// Value and height of a recent template.
    pub fn template_facts(&self, template_id: u64) -> Option<TemplateFacts> {
        let guard = self.values.lock().unwrap_or_else(|p| p.into_inner());
        guard.get(&template_id).copied()
    }

    /// New work on a parent we already found a block on means that block did not connect (an
    /// accepted block moves the tip): the pool may find one there again.
    fn reopen_parent(&self, parent: [u8; 32]) {
        let mut solved = self
            .solved_parents
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(i) = solved.iter().position(|p| *p == parent) {
            solved.remove(i);
            tracing::warn!("new work on the parent of a block we found: it did not connect");
        }
    }

    /// Records and broadcasts an event with the next sequence number.
    pub fn publish(&self, event: WorkEvent) {
        if let WorkEvent::Template(t) = &event {
            let mut v = self.values.lock().unwrap_or_else(|p| p.into_inner());
            let facts = TemplateFacts {
                value: t.coinbase_tx_value_remaining,
                height: bip34_height(t.coinbase_prefix.as_ref()),
            };
            v.insert(t.template_id, facts);
            while v.len() > 256 {
                v.pop_first();
            }
        }
        let mut guard = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        match &event {
            WorkEvent::Template(t) if t.future_template => guard.future = Some(t.clone()),
            WorkEvent::Template(t) => guard.active = Some(t.clone()),
            WorkEvent::PrevHash(p) => {
                guard.prev_hash = Some(p.clone());
                guard.active = None;
                self.reopen_parent(p.prev_hash.to_array());
            }
        }
        guard.seq += 1;
        let _ = self
            .events
            .send((guard.seq, std::time::Instant::now(), event));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratum_core::binary_sv2::U256Owned;

    fn prev_hash(n: u8) -> WorkEvent {
        WorkEvent::PrevHash(SetNewPrevHashOwned {
            template_id: u64::from(n),
            prev_hash: U256Owned::from([n; 32]),
            header_timestamp: 0,
            n_bits: 0,
            target: U256Owned::from([0xff; 32]),
        })
    }

    #[test]
    fn snapshot_marks_which_queued_events_it_already_contains() {
        let work = WorkState::new();
        let (_, mut early) = work.subscribe(); // a connection subscribes before channels open
        work.publish(prev_hash(1));
        work.publish(prev_hash(2));
        let snap = work.snapshot(); // a channel opens and replays this
        assert_eq!(snap.seq, 2);
        work.publish(prev_hash(3));
        let seqs: Vec<u64> =
            std::iter::from_fn(|| early.try_recv().ok().map(|(s, _, _)| s)).collect();
        // The queue still holds 1 and 2; only 3 is news for the replayed channel.
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(seqs.iter().filter(|s| **s > snap.seq).count(), 1);
    }

    #[test]
    fn bip34_heights() {
        assert_eq!(bip34_height(&[0x51]), Some(1));
        assert_eq!(bip34_height(&[0x60, 0x00]), Some(16));
        assert_eq!(bip34_height(&[0x01, 0x11]), Some(17));
        assert_eq!(bip34_height(&[0x03, 0x40, 0x0d, 0x03]), Some(200_000));
        assert_eq!(bip34_height(&[0x02, 0x01]), None);
        assert_eq!(bip34_height(&[]), None);
    }

    #[test]
    fn one_block_per_parent() {
        let work = WorkState::new();
        assert!(work.claim_block([1; 32]));
        assert!(!work.claim_block([1; 32]));
        assert!(work.claim_block([2; 32]));
        // The TP announced new work on parent 1 again: our block there did not connect.
        work.publish(prev_hash(1));
        assert!(work.claim_block([1; 32]));
        assert!(!work.claim_block([2; 32]));
    }
}
