//! The whole share -> ehash path on the in-process devnet.

use hashpool::DevnetStack;
use hashpool_tests::{fast_devnet, init_logs, translator_config};
use std::time::{Duration, Instant};

async fn wait_for(stack: &DevnetStack, blocks: u64, shares: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let p = stack.pool.stats.snapshot();
        if p.blocks_found >= blocks && p.shares_accepted >= shares {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out: {:?}", stack.pool.stats.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_earn_ehash_end_to_end() {
    init_logs();
    let opts = fast_devnet("e2e");
    let mut stack = DevnetStack::start(&opts).await.expect("stack starts");
    wait_for(&stack, 2, 50, Duration::from_secs(240)).await;
    stack.quiesce(Duration::from_secs(30)).await;
    let r = stack.report().await.expect("report");
    let t = stack.translator.stats.snapshot();
    println!("{r:?}");
    assert!(r.shares_accepted >= 50);
    assert!(r.ehash_issued > 0);
    // wallet balance == mint's issued total == sum of accepted share amounts
    assert_eq!(r.wallet_balance, r.ehash_issued);
    assert_eq!(r.ehash_accepted, r.ehash_issued);
    assert_eq!(
        t.accepted_amount, r.ehash_issued,
        "translator's accepted amounts"
    );
    // every proof verifies (DLEQ) and is UNSPENT at the mint (HTTP checkstate)
    assert_eq!(r.wallet_proofs_dleq_ok, r.wallet_proofs);
    assert_eq!(r.unspent_checked, r.wallet_proofs);
    assert_eq!(r.wallet_proofs, r.shares_accepted);
    // the kernel's height equals the blocks found (fresh chain)
    assert_eq!(u64::from(r.chain_height), r.blocks_found);
    // The miner mines at its own difficulty, never above the channel's: every share the pool
    // saw was also a miner share (translator_judging.rs covers shares that stay local).
    assert!(t.miner_shares >= t.shares_submitted, "{t:?}");
    assert_eq!(t.shares_submitted, t.shares_accepted + t.shares_rejected);
    // one signature per accepted share, none twice
    let mint = stack.mint.ledger.stats().await.expect("mint stats");
    assert_eq!(mint.signatures, r.wallet_proofs);
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_translator_recovers_tokens_through_restore() {
    init_logs();
    let opts = fast_devnet("restore");
    let mut stack = DevnetStack::start(&opts).await.expect("stack starts");
    wait_for(&stack, 0, 20, Duration::from_secs(120)).await;
    // Kill the translator while shares and signatures are in flight.
    let mut translator_cfg = translator_config(&opts, &stack);
    translator_cfg.nominal_hashrate = 500_000.0;
    let old = std::mem::replace(
        &mut stack.translator,
        hashpool_translator::start(translator_cfg.clone())
            .await
            .expect("restart"),
    );
    let received_before = old.stats.snapshot().ehash_received;
    old.shutdown().await;
    stack.quiesce(Duration::from_secs(10)).await;
    // The new translator restores on open: wait for its wallet and the restore.
    let deadline = Instant::now() + Duration::from_secs(60);
    let issued = stack.mint.ledger.stats().await.expect("mint").issued;
    loop {
        let w = stack.translator.wallet.borrow().clone();
        if let Some(w) = w {
            w.restore().await.expect("restore");
            let balance = w.balance().await.expect("balance");
            if balance == issued {
                assert!(issued >= received_before);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "restore never reached the issued total {issued}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mint = stack.mint.ledger.stats().await.expect("mint");
    assert_eq!(
        mint.signatures, mint.signed_since_start,
        "nothing signed twice"
    );
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}
