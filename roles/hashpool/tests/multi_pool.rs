//! Two pools, one mint: each pool has its own translator and miner, channels and templates,
//! and signs through the same mint. The mint's one ledger adds them up: the HASH it issued is
//! what both pools acknowledged, its epochs count it, and it knows the blocks both found.

mod common;

use common::{
    add_second_farm, add_second_pool, get, init_devnet, metric, scratch, two_farms_add_up, BIN,
};
use hashpool::process_stack::RoleProcesses;
use std::path::Path;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_sign_through_one_mint_and_add_up_in_one_ledger() {
    let (dir, base) = scratch("multi-pool");
    init_devnet(&dir, base).await;
    let (pool2_addr, pool2_key) = add_second_pool(&dir, base);
    // A second translator (own wallet, ports) on the second pool, and a miner for it.
    add_second_farm(&dir, base, &pool2_addr, &pool2_key);

    let mut stack = RoleProcesses::new(Path::new(BIN), &dir, "info");
    stack
        .spawn_named_in_order(&[
            ("template-provider", "template-provider"),
            ("mint", "mint"),
            ("pool", "pool"),
            ("pool2", "pool"),
            ("translator", "translator"),
            ("translator2", "translator"),
            ("miner", "miner"),
            ("miner2", "miner"),
        ])
        .await
        .expect("roles start");
    // Both pools earn ehash, and blocks are found.
    let (pool_metrics, pool2_metrics) = (base + 5, base + 14);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut ok = true;
        for port in [pool_metrics, pool2_metrics] {
            let m = get(port, "/metrics")
                .await
                .map(|(_, m)| m)
                .unwrap_or_default();
            ok &= metric(&m, "hashpool_pool_ehash_signed_total") > 0.0;
        }
        let blocks = get(pool_metrics, "/metrics")
            .await
            .map(|(_, m)| m)
            .unwrap_or_default();
        let blocks2 = get(pool2_metrics, "/metrics")
            .await
            .map(|(_, m)| m)
            .unwrap_or_default();
        ok &= metric(&blocks, "hashpool_pool_blocks_found_total")
            + metric(&blocks2, "hashpool_pool_blocks_found_total")
            >= 2.0;
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both pools never earned ehash and found blocks"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every journaled share signed; the mint's one ledger holds both pools' HASH and blocks.
    two_farms_add_up(
        &mut stack,
        &dir,
        "mint.toml",
        base + 2,
        [pool_metrics, pool2_metrics],
    )
    .await;
    stack.stop_all().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
