//! Sign requests waiting for the mint: by request id (oldest first), the B_ they claim (no
//! B_ is asked twice at once), and which of them the share journal holds.

use crate::journal::JournalEntry;
use crate::mint_client::PendingSign;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

struct Waiting {
    request: PendingSign,
    since: Instant,
}

/// The requests in flight.
#[derive(Default)]
pub(crate) struct InFlight {
    by_id: BTreeMap<u64, Waiting>,
    claimed: HashSet<[u8; 33]>,
    /// Requests with a lower id were looked at by [`InFlight::overdue`] already.
    swept_to: u64,
}

impl InFlight {
    /// Adds a request, claiming its B_; false (and nothing added) if a request for the same
    /// B_ is in flight.
    pub fn insert(&mut self, id: u64, request: PendingSign, now: Instant) -> bool {
        if !self.claimed.insert(request.blinded) {
            return false;
        }
        self.by_id.insert(
            id,
            Waiting {
                request,
                since: now,
            },
        );
        true
    }

    /// Removes the request the mint answered, releasing its B_.
    pub fn take(&mut self, id: u64) -> Option<PendingSign> {
        let w = self.by_id.remove(&id)?;
        self.claimed.remove(&w.request.blinded);
        Some(w.request)
    }

    /// Requests in flight.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Every request, marked as a replay, to send again after a reconnect.
    pub fn replays(&mut self) -> Vec<(u64, PendingSign)> {
        self.by_id
            .iter_mut()
            .map(|(id, w)| {
                w.request.replay = true;
                (*id, w.request.clone())
            })
            .collect()
    }

    /// Requests waiting longer than `after` and not journaled: marks them journaled and
    /// returns them, to be recorded in the journal.
    pub fn overdue(&mut self, after: Duration, now: Instant) -> Vec<PendingSign> {
        let mut due = Vec::new();
        for (id, w) in self.by_id.range_mut(self.swept_to..) {
            if now.saturating_duration_since(w.since) < after {
                break;
            }
            self.swept_to = id + 1;
            if !w.request.journaled {
                w.request.journaled = true;
                due.push(w.request.clone());
            }
        }
        due
    }
}

impl PendingSign {
    /// Its journal entry.
    pub fn journal_entry(&self) -> JournalEntry {
        JournalEntry {
            blinded: self.blinded,
            keyset_id: self.keyset_id.clone(),
            amount: self.amount,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(b: u8) -> PendingSign {
        PendingSign {
            reply: None,
            channel_id: 1,
            sequence_number: u32::from(b),
            amount: 1,
            keyset_id: vec![0; 8],
            blinded: [b; 33],
            replay: false,
            journaled: false,
        }
    }

    #[test]
    fn claims_stop_a_second_request_for_the_same_b_until_answered() {
        let mut f = InFlight::default();
        assert!(f.insert(1, request(2), Instant::now()));
        assert!(!f.insert(2, request(2), Instant::now()));
        assert_eq!(f.take(1).map(|p| p.blinded), Some([2; 33]));
        assert!(f.insert(3, request(2), Instant::now()));
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn overdue_requests_are_journaled_once_and_young_ones_wait() {
        let mut f = InFlight::default();
        let t0 = Instant::now();
        f.insert(1, request(2), t0);
        f.insert(2, request(3), t0 + Duration::from_millis(8));
        let after = Duration::from_millis(10);
        assert!(f.overdue(after, t0 + Duration::from_millis(5)).is_empty());
        let due = f.overdue(after, t0 + Duration::from_millis(12));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].blinded, [2; 33]);
        assert!(due[0].journaled);
        let due = f.overdue(after, t0 + Duration::from_millis(30));
        assert_eq!(due.iter().map(|p| p.blinded[0]).collect::<Vec<_>>(), [3]);
        assert!(f.overdue(after, t0 + Duration::from_secs(1)).is_empty());
        // A replay after a reconnect keeps the journaled mark.
        let replays = f.replays();
        assert!(replays.iter().all(|(_, p)| p.replay && p.journaled));
    }
}
