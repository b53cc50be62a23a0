//! Two pools, one mint: each pool has its own translator and miner, channels and templates,
//! and signs through the same mint. The mint's one ledger adds them up: the HASH it issued is
//! what both pools acknowledged, its epochs count it, and it knows the blocks both found.

mod common;

use common::{
    add_second_pool, cli_json, get, init_devnet, metric, scratch, translator_config, BIN,
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
    let (sv1_2, metrics_2) = (base + 15, base + 16);
    translator_config(&dir, "translator2.toml", |t| {
        t.insert(
            "data_dir".into(),
            dir.join("translator2").to_string_lossy().to_string().into(),
        );
        t.insert("sv1_listen".into(), format!("127.0.0.1:{sv1_2}").into());
        t.insert(
            "metrics_listen".into(),
            format!("127.0.0.1:{metrics_2}").into(),
        );
        t.insert("pool_address".into(), pool2_addr.clone().into());
        t.insert("pool_authority".into(), pool2_key.clone().into());
        t.insert("user_identity".into(), "second-farm".into());
    });
    let miner = std::fs::read_to_string(dir.join("miner.toml")).expect("miner.toml");
    let miner2: String = miner
        .replace(
            &format!("127.0.0.1:{}", base + 4),
            &format!("127.0.0.1:{sv1_2}"),
        )
        .lines()
        .filter(|l| !l.starts_with("metrics_listen"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(miner, miner2, "miner url rewritten");
    std::fs::write(dir.join("miner2.toml"), miner2).expect("write");

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
    for role in ["miner", "miner2"] {
        stack.stop(role).await.expect("miner stops");
    }
    // Every journaled share signed, then the pools stop.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut acknowledged = 0u64;
    let mut blocks_by_pools = 0u64;
    for (name, port) in [("pool.toml", pool_metrics), ("pool2.toml", pool2_metrics)] {
        let path = dir.join(name).to_string_lossy().to_string();
        let totals = loop {
            let t = cli_json(&["pool", "-c", &path, "stats", "--json"]).await;
            if t["open"] == 0 {
                break t;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: journal never drained: {t}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        acknowledged += totals["accepted_amount"].as_u64().unwrap_or(0);
        let m = get(port, "/metrics")
            .await
            .map(|(_, m)| m)
            .unwrap_or_default();
        blocks_by_pools += metric(&m, "hashpool_pool_blocks_found_total") as u64;
    }
    // The mint's ledger: issued = both pools' acknowledged HASH, and it knows both pools'
    // blocks (reports are resent until acknowledged, so give them a moment).
    let mint_toml = dir.join("mint.toml").to_string_lossy().to_string();
    let stats = cli_json(&["mint", "-c", &mint_toml, "stats", "--json"]).await;
    assert_eq!(stats["issued"].as_u64(), Some(acknowledged), "{stats}");
    assert_eq!(
        stats["epochs_issued"].as_u64(),
        Some(acknowledged),
        "{stats}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = get(base + 2, "/hashpool/v1/epochs").await.expect("epochs");
        let l: serde_json::Value = serde_json::from_str(&body).expect("json");
        if l["blocks_found"].as_u64() == Some(blocks_by_pools) {
            println!("acknowledged {acknowledged} HASH, {blocks_by_pools} blocks: {stats}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mint knows {} of {blocks_by_pools} blocks",
            l["blocks_found"]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stack.stop_all().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
