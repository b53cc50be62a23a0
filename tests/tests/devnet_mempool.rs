//! Templates with transactions: the devnet template provider spends its own pre-mined coins,
//! every block the pool finds carries them (the kernel accepts it, so merkle path, witness
//! commitment and fees are right), and the reward the pool records is subsidy plus fees.

use hashpool::DevnetStack;
use hashpool_devnet::mempool::TX_FEE;
use hashpool_devnet::PREMINE_BLOCKS;
use hashpool_tests::{fast_devnet, init_logs};
use std::time::{Duration, Instant};

const TXS: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn found_blocks_carry_the_template_transactions_and_their_fees() {
    init_logs();
    let mut opts = fast_devnet("mempool");
    opts.mempool_txs = TXS;
    let mut stack = DevnetStack::start(&opts).await.expect("stack starts");
    let deadline = Instant::now() + Duration::from_secs(180);
    while stack.pool.stats.snapshot().blocks_found < 4 {
        assert!(Instant::now() < deadline, "no blocks found");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stack.quiesce(Duration::from_secs(30)).await;
    let r = stack.report().await.expect("report");
    println!("{r:?}");
    assert_eq!(
        r.chain_height as u64,
        u64::from(PREMINE_BLOCKS) + r.blocks_found
    );
    assert_eq!(
        r.block_txs,
        u64::from(TXS) * r.blocks_found,
        "every block carried them"
    );
    assert_eq!(r.block_fees_sats, r.block_txs * TX_FEE);
    assert_eq!(r.wallet_balance, r.ehash_issued);
    // The pool recorded each block's reward as subsidy plus fees, and the mint credits it.
    let liabilities = stack
        .mint
        .ledger
        .epochs()
        .liabilities()
        .await
        .expect("liabilities");
    let rewards: Vec<u64> = liabilities
        .epochs
        .iter()
        .flat_map(|e| e.blocks.iter())
        .map(|b| b.reward_sat)
        .collect();
    assert!(!rewards.is_empty());
    let with_fees = 5_000_000_000 + u64::from(TXS) * TX_FEE;
    assert!(rewards.iter().all(|r| *r == with_fees), "{rewards:?}");
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}
