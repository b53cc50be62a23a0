//! When an ehash share is acknowledged. The acknowledgement promises the miner its ehash, so
//! it goes out only once the share's claim is durable somewhere: usually the mint's stored
//! signature, which comes back within a few milliseconds; or, for a request the mint has not
//! answered in time (or cannot sign now), the pool's share journal. The signature or refusal
//! of a share never goes out before its acknowledgement.

use crate::journal::RecordOutcome;
use ehash_protocol::messages as m;
use std::collections::HashMap;

/// The share a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShareRef {
    /// Channel.
    pub channel_id: u32,
    /// Sequence number.
    pub sequence_number: u32,
    /// Amount of ehash.
    pub amount: u64,
}

/// The mint's answer to a sign request.
#[derive(Debug, Clone)]
pub(crate) enum MintAnswer {
    /// Signed (and stored by the mint).
    Signed(m::EhashSignature),
    /// Refused with `code`.
    Refused {
        /// Channel.
        channel_id: u32,
        /// Sequence number.
        sequence_number: u32,
        /// Error code.
        code: String,
    },
}

impl MintAnswer {
    /// A refusal that is no verdict on the request (the mint could not sign now): the share
    /// is owed its ehash all the same, so its claim must be journaled.
    fn owes_signature(&self) -> bool {
        matches!(self, Self::Refused { code, .. }
            if code == m::ERR_MINT_INTERNAL || code == m::ERR_MINT_UNAVAILABLE)
    }
}

/// What to send now, in this order: acknowledgement or rejection, then the mint's answer.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// `SubmitSharesSuccess` for this share.
    pub ack: Option<ShareRef>,
    /// `SubmitSharesError` (`ehash-pool-journal-failed`) for this share.
    pub reject: Option<ShareRef>,
    /// The signature or the refusal.
    pub answer: Option<MintAnswer>,
}

impl Verdict {
    fn ack(share: ShareRef, answer: Option<MintAnswer>) -> Self {
        Self {
            ack: Some(share),
            reject: None,
            answer,
        }
    }

    fn reject(share: ShareRef) -> Self {
        Self {
            reject: Some(share),
            ..Self::default()
        }
    }
}

struct Pending {
    share: ShareRef,
    /// The journal could not record the claim: only a signature can save the share now.
    journal_failed: bool,
    /// A refusal that waits for the journal (see [`MintAnswer::owes_signature`]).
    held: Option<MintAnswer>,
}

/// Ehash shares of one connection not acknowledged yet, by B_.
#[derive(Default)]
pub(crate) struct UnackedShares {
    open: HashMap<[u8; 33], Pending>,
}

impl UnackedShares {
    /// A share's sign request was just sent.
    pub fn start(&mut self, blinded: [u8; 33], share: ShareRef) {
        self.open.insert(
            blinded,
            Pending {
                share,
                journal_failed: false,
                held: None,
            },
        );
    }

    /// Shares waiting.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// The mint's answer for a B_.
    pub fn on_mint(&mut self, blinded: &[u8; 33], answer: MintAnswer) -> Verdict {
        let Some(p) = self.open.get_mut(blinded) else {
            // Acknowledged already (journaled): pass it on.
            return Verdict {
                answer: Some(answer),
                ..Verdict::default()
            };
        };
        if !answer.owes_signature() {
            // A signature is the durable claim; any other refusal owes nothing.
            let share = p.share;
            self.open.remove(blinded);
            return Verdict::ack(share, Some(answer));
        }
        if p.journal_failed {
            let share = p.share;
            self.open.remove(blinded);
            return Verdict::reject(share);
        }
        p.held = Some(answer);
        Verdict::default()
    }

    /// The journal's verdict on a share the mint did not sign in time.
    pub fn on_journal(&mut self, blinded: &[u8; 33], outcome: &RecordOutcome) -> Verdict {
        let Some(p) = self.open.get_mut(blinded) else {
            // Signed meanwhile: acknowledged with its signature.
            return Verdict::default();
        };
        // A duplicate is an open entry for this B_ from before: a claim on disk all the same.
        if !matches!(outcome, RecordOutcome::Failed(_)) {
            let (share, held) = (p.share, p.held.take());
            self.open.remove(blinded);
            return Verdict::ack(share, held);
        }
        if p.held.is_some() {
            let share = p.share;
            self.open.remove(blinded);
            return Verdict::reject(share);
        }
        p.journal_failed = true;
        Verdict::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: [u8; 33] = [2; 33];
    const SHARE: ShareRef = ShareRef {
        channel_id: 1,
        sequence_number: 7,
        amount: 4,
    };

    fn signed() -> MintAnswer {
        MintAnswer::Signed(m::EhashSignature {
            channel_id: 1,
            sequence_number: 7,
            amount: 4,
            keyset_id: m::b0255(&[1; 8]).unwrap(),
            blinded: m::b0255(&B).unwrap(),
            signature: m::b0255(&[3; 33]).unwrap(),
            dleq_e: [0; 32].into(),
            dleq_s: [0; 32].into(),
        })
    }

    fn refused(code: &str) -> MintAnswer {
        MintAnswer::Refused {
            channel_id: 1,
            sequence_number: 7,
            code: code.into(),
        }
    }

    fn failed() -> RecordOutcome {
        RecordOutcome::Failed("disk".into())
    }

    #[test]
    fn a_signature_acknowledges_the_share_and_follows_it() {
        let mut u = UnackedShares::default();
        u.start(B, SHARE);
        let v = u.on_mint(&B, signed());
        assert_eq!(v.ack, Some(SHARE));
        assert!(matches!(v.answer, Some(MintAnswer::Signed(_))));
        assert_eq!(u.len(), 0);
        // A journal record made meanwhile (the mint was slow) changes nothing.
        let v = u.on_journal(&B, &RecordOutcome::Recorded);
        assert!(v.ack.is_none() && v.answer.is_none() && v.reject.is_none());
    }

    #[test]
    fn a_journaled_share_is_acknowledged_before_its_late_signature() {
        let mut u = UnackedShares::default();
        u.start(B, SHARE);
        let v = u.on_journal(&B, &RecordOutcome::Recorded);
        assert_eq!(v.ack, Some(SHARE));
        assert!(v.answer.is_none());
        let v = u.on_mint(&B, signed());
        assert!(v.ack.is_none());
        assert!(matches!(v.answer, Some(MintAnswer::Signed(_))));
    }

    #[test]
    fn a_verdict_refusal_acknowledges_the_work_and_owes_nothing() {
        let mut u = UnackedShares::default();
        u.start(B, SHARE);
        let v = u.on_mint(&B, refused(m::ERR_ALREADY_SIGNED));
        assert_eq!(v.ack, Some(SHARE));
        assert!(matches!(v.answer, Some(MintAnswer::Refused { .. })));
        assert_eq!(u.len(), 0);
    }

    #[test]
    fn a_mint_that_cannot_sign_waits_for_the_journal() {
        let mut u = UnackedShares::default();
        u.start(B, SHARE);
        let v = u.on_mint(&B, refused(m::ERR_MINT_INTERNAL));
        assert!(v.ack.is_none() && v.answer.is_none() && v.reject.is_none());
        let v = u.on_journal(&B, &RecordOutcome::Duplicate);
        assert_eq!(v.ack, Some(SHARE));
        assert!(matches!(v.answer, Some(MintAnswer::Refused { .. })));
        assert_eq!(u.len(), 0);
    }

    #[test]
    fn a_failed_journal_is_saved_by_a_signature() {
        let mut u = UnackedShares::default();
        u.start(B, SHARE);
        let v = u.on_journal(&B, &failed());
        assert!(v.ack.is_none() && v.reject.is_none() && v.answer.is_none());
        let v = u.on_mint(&B, signed());
        assert_eq!(v.ack, Some(SHARE));
        assert!(matches!(v.answer, Some(MintAnswer::Signed(_))));
    }

    #[test]
    fn neither_journal_nor_signature_rejects_the_share() {
        for mint_first in [false, true] {
            let mut u = UnackedShares::default();
            u.start(B, SHARE);
            let v = if mint_first {
                u.on_mint(&B, refused(m::ERR_MINT_UNAVAILABLE));
                u.on_journal(&B, &failed())
            } else {
                u.on_journal(&B, &failed());
                u.on_mint(&B, refused(m::ERR_MINT_UNAVAILABLE))
            };
            assert_eq!(v.reject, Some(SHARE));
            assert!(v.ack.is_none() && v.answer.is_none());
            assert_eq!(u.len(), 0);
        }
    }
}
