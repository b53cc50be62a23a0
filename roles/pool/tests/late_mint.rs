//! A sign request the mint does not answer in time (here: no mint at all) is written to the
//! share journal, and the share's connection hears the journal's verdict, which is what lets
//! it acknowledge the share; a graceful shutdown journals whatever is still in flight.

use hashpool_pool::found_blocks::BlockStore;
use hashpool_pool::journal::{RecordOutcome, ShareJournal};
use hashpool_pool::mint_client::{EhashReply, MintLink, PendingSign, JOURNAL_AFTER};
use hashpool_pool::stats::PoolStats;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn request(b: u8, reply: Option<mpsc::UnboundedSender<EhashReply>>) -> PendingSign {
    PendingSign {
        reply,
        channel_id: 1,
        sequence_number: u32::from(b),
        amount: 4,
        keyset_id: vec![0; 8],
        blinded: [b; 33],
        replay: false,
        journaled: false,
    }
}

#[tokio::test]
async fn unanswered_requests_are_journaled_and_their_shares_hear_of_it() {
    let dir = std::env::temp_dir().join(format!("hashpool-late-mint-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (journal, open) = ShareJournal::open(&dir.join("shares.sqlite")).unwrap();
    assert!(open.is_empty());
    let blocks = Arc::new(BlockStore::open(&dir.join("blocks.sqlite")).unwrap());
    let stats = Arc::new(PoolStats::default());
    let link = MintLink::new(stats.clone(), journal.clone(), blocks);
    let shutdown = CancellationToken::new();
    let sweep = tokio::spawn(link.clone().journal_sweep(shutdown.clone()));

    let (tx, mut rx) = mpsc::unbounded_channel();
    let sent = Instant::now();
    assert!(link.request(request(2, Some(tx.clone()))));
    // The same B_ cannot be asked for again while it waits.
    assert!(!link.request(request(2, None)));
    let reply = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a journal verdict")
        .expect("reply channel open");
    assert!(sent.elapsed() >= JOURNAL_AFTER, "journaled too early");
    match reply {
        EhashReply::Recorded { blinded, outcome } => {
            assert_eq!(blinded, [2; 33]);
            assert_eq!(outcome, RecordOutcome::Recorded);
        }
        other => panic!("expected the journal's verdict, got {other:?}"),
    }
    assert_eq!(stats.ehash_journaled.load(Ordering::Relaxed), 1);

    // Shutdown: a request just made is journaled at once, before the process goes.
    assert!(link.request(request(3, Some(tx))));
    link.journal_all().await;
    assert_eq!(stats.ehash_journaled.load(Ordering::Relaxed), 2);
    shutdown.cancel();
    sweep.await.unwrap();
    drop((link, journal));
    // Both claims are on disk, open until the mint answers, and counted as acknowledged.
    let totals = ShareJournal::totals_at(&dir.join("shares.sqlite")).unwrap();
    assert_eq!(totals.open, 2);
    assert_eq!(totals.accepted_amount, 8);
    let (_journal, open) = ShareJournal::open(&dir.join("shares.sqlite")).unwrap();
    let mut reopened: Vec<u8> = open.iter().map(|e| e.blinded[0]).collect();
    reopened.sort_unstable();
    assert_eq!(reopened, [2, 3]);
    let _ = std::fs::remove_dir_all(&dir);
}
