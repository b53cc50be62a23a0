//! Templates with transactions: the devnet template provider spends its own pre-mined coins,
//! every block the pool finds carries them (the kernel accepts it, so merkle path, witness
//! commitment and fees are right), the reward the pool records is subsidy plus fees, and the
//! pool learns each template's transactions.

use hashpool::DevnetStack;
use hashpool_devnet::mempool::TX_FEE;
use hashpool_devnet::PREMINE_BLOCKS;
use hashpool_tests::{fast_devnet, init_logs, wait_for_blocks};
use std::time::Duration;

const TXS: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn found_blocks_carry_the_template_transactions_and_their_fees() {
    init_logs();
    let mut opts = fast_devnet("mempool");
    opts.mempool_txs = TXS;
    let mut stack = DevnetStack::start(&opts).await.expect("stack starts");
    wait_for_blocks(&stack, 4).await;
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
    // The pool asked for every template's transactions (RequestTransactionData) and knows
    // them by wtxid, as a job declaration will name them.
    let known = stack.pool.work.known_transactions().len() as u64;
    assert!(
        known >= r.block_txs,
        "pool knows {known} of {}",
        r.block_txs
    );
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

/// The template provider answers `RequestTransactionData` (over Noise, TDP) with the
/// transactions a template carries: they rebuild its merkle path and make up its fees. A
/// template it never issued gets `template-id-not-found`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_provider_serves_its_templates_transactions() {
    use stratum_core::bitcoin::consensus::deserialize;
    use stratum_core::bitcoin::Transaction;
    use stratum_core::parsers_sv2::TemplateDistribution;
    use stratum_core::template_distribution_sv2::{
        RequestTransactionData, MESSAGE_TYPE_REQUEST_TRANSACTION_DATA,
    };
    init_logs();
    let dir = fast_devnet("tp-txdata").data_dir;
    let tp = hashpool_devnet::start(hashpool_devnet::TemplateProviderConfig {
        data_dir: dir.clone(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        rpc_listen: None,
        block_interval_secs: 60.0,
        initial_block_hashes: 1e9,
        metrics_listen: None,
        mempool_txs: 2,
    })
    .await
    .expect("template provider");
    let hashpool_tests::jd::Link { mut reader, sender } =
        hashpool_tests::jd::template_link(&tp.addr.to_string(), &tp.authority).await;
    let (template_id, value, path) = loop {
        let mut f = reader.next().await.expect("frame");
        let (_, t) = sv2_io::frame::kind(&f);
        if let Ok(TemplateDistribution::NewTemplate(nt)) =
            TemplateDistribution::try_from((t, f.payload()))
        {
            let path: Vec<[u8; 32]> = nt
                .merkle_path
                .as_slice()
                .iter()
                .map(|h| *h.as_array())
                .collect();
            break (nt.template_id, nt.coinbase_tx_value_remaining, path);
        }
    };
    let ask = |id: u64| {
        sv2_io::encode(
            RequestTransactionData { template_id: id },
            MESSAGE_TYPE_REQUEST_TRANSACTION_DATA,
            0,
            false,
        )
        .expect("encode")
    };
    sender.send(ask(template_id)).await.expect("send");
    sender.send(ask(999_999)).await.expect("send");
    let (mut txs, mut refused) = (None, None);
    while txs.is_none() || refused.is_none() {
        let mut f = reader.next().await.expect("frame");
        let (_, t) = sv2_io::frame::kind(&f);
        match TemplateDistribution::try_from((t, f.payload())) {
            Ok(TemplateDistribution::RequestTransactionDataSuccess(s)) => {
                assert_eq!(s.template_id, template_id);
                let list: Vec<Transaction> = s
                    .transaction_list
                    .as_slice()
                    .iter()
                    .map(|raw| deserialize(raw.as_bytes()).expect("a transaction"))
                    .collect();
                txs = Some(list);
            }
            Ok(TemplateDistribution::RequestTransactionDataError(e)) => {
                assert_eq!(e.template_id, 999_999);
                refused = Some(e.error_code.as_utf8_or_hex());
            }
            _ => {}
        }
    }
    let txs = txs.expect("transactions");
    assert_eq!(txs.len(), 2);
    assert_eq!(hashpool_devnet::mempool::coinbase_merkle_path(&txs), path);
    assert_eq!(value, 5_000_000_000 + 2 * TX_FEE);
    assert_eq!(refused.as_deref(), Some("template-id-not-found"));
    tp.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// After a reorg the coins its orphaned blocks created are gone; the template provider forgets
/// them, so every block found afterwards still carries transactions the kernel accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_after_a_reorg_spend_only_coins_that_exist() {
    use std::sync::atomic::Ordering;
    init_logs();
    let mut opts = fast_devnet("mempool-reorg");
    opts.mempool_txs = TXS;
    let stack = DevnetStack::start(&opts).await.expect("stack starts");
    let found = |s: &DevnetStack| s.pool.stats.snapshot().blocks_found;
    wait_for_blocks(&stack, 3).await;
    let state = stack.tp.state.clone();
    let reorg = tokio::task::spawn_blocking(move || state.force_reorg(2))
        .await
        .expect("task")
        .expect("reorg");
    // The miner keeps mining: height and counters are read together only when two reads a
    // moment apart agree (a block being connected moves the height before the counters).
    let settled = || {
        let stack = &stack;
        async move {
            let read = || {
                (
                    stack.tp.state.chain.tip().expect("tip").height,
                    found(stack),
                    stack.tp.state.blocks_accepted.load(Ordering::Relaxed),
                    stack.tp.state.block_txs.load(Ordering::Relaxed),
                )
            };
            loop {
                let first = read();
                tokio::time::sleep(Duration::from_millis(200)).await;
                if read() == first {
                    return first;
                }
            }
        }
    };
    let (after_reorg, found_before, accepted_before, txs_before) = settled().await;
    assert!(after_reorg >= reorg.fork_height + 3);
    wait_for_blocks(&stack, found_before + 3).await;
    let (height, found_after, accepted_after, txs_after) = settled().await;
    let accepted = accepted_after - accepted_before;
    let txs = txs_after - txs_before;
    // Every block the pool found since was connected, each with its transactions.
    assert_eq!(u64::from(height - after_reorg), found_after - found_before);
    assert_eq!(u64::from(height - after_reorg), accepted);
    assert_eq!(txs, u64::from(TXS) * accepted);
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}
