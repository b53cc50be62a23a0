//! Two pools, one mint: the translator lists both; when the pool in use dies (SIGKILL) it mines
//! on the second within seconds, keeping its SV1 miner and wallet. The dead pool's journal is
//! replayed when it comes back, and a restore from the seed then accounts for every HASH the
//! mint issued: nothing was lost in the failover.

mod common;

use common::{
    add_second_pool, cli_json, get, init_devnet, metric, scratch, translator_config, BIN,
};
use hashpool::process_stack::RoleProcesses;
use std::path::Path;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_translator_fails_over_to_the_next_pool_and_loses_no_ehash() {
    let (dir, base) = scratch("failover");
    init_devnet(&dir, base).await;
    // A second pool on the same template provider and mint, and the translator told about it.
    let (pool2_addr, pool2_key) = add_second_pool(&dir, base);
    let pool2_metrics = base + 14;
    translator_config(&dir, "translator.toml", |t| {
        let mut fallback = toml::Table::new();
        fallback.insert("address".into(), pool2_addr.clone().into());
        fallback.insert("authority".into(), pool2_key.into());
        t.insert(
            "fallback_pools".into(),
            toml::Value::Array(vec![fallback.into()]),
        );
    });

    let mut stack = RoleProcesses::new(Path::new(BIN), &dir, "info");
    stack
        .spawn_named_in_order(&[
            ("template-provider", "template-provider"),
            ("mint", "mint"),
            ("pool", "pool"),
            ("pool2", "pool"),
            ("translator", "translator"),
            ("miner", "miner"),
        ])
        .await
        .expect("roles start");
    let (translator_metrics, pool1_addr) = (base + 8, format!("127.0.0.1:{}", base + 3));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((_, m)) = get(translator_metrics, "/metrics").await {
            if metric(&m, "hashpool_translator_ehash_received_total") > 0.0 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no ehash before the failover");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (_, h) = get(translator_metrics, "/health").await.expect("health");
    assert!(h.contains(&pool1_addr), "{h}");

    // The pool in use dies: the translator mines on the second one.
    stack.kill("pool").await;
    let killed = Instant::now();
    loop {
        let on_pool2 = matches!(get(translator_metrics, "/health").await, Some((200, h)) if h.contains(&pool2_addr));
        let accepted = get(pool2_metrics, "/metrics")
            .await
            .map(|(_, m)| metric(&m, "hashpool_pool_shares_accepted_total"))
            .unwrap_or(0.0);
        if on_pool2 && accepted > 0.0 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no failover within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failover_secs = killed.elapsed().as_secs_f64();
    println!("failover to the second pool, first share accepted there: {failover_secs:.2} s");
    let (_, m) = get(translator_metrics, "/metrics").await.expect("metrics");
    assert!(
        metric(&m, "hashpool_translator_pool_failovers_total") >= 1.0,
        "{m}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The dead pool comes back and replays its journal; then every role but the mint stops.
    stack.stop("miner").await.expect("miner stops");
    stack.spawn_as("pool", "pool").expect("pool restarts");
    let pool_toml = dir.join("pool.toml").to_string_lossy().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let s = cli_json(&["pool", "-c", &pool_toml, "stats", "--json"]).await;
        if s["open"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pool 1 never replayed its journal: {s}"
        );
    }
    for role in ["translator", "pool2", "pool", "template-provider"] {
        stack.stop(role).await.expect("stop");
    }

    // A restore from the seed alone finds every HASH the mint issued.
    let tr_toml = dir.join("translator.toml").to_string_lossy().to_string();
    let mint_toml = dir.join("mint.toml").to_string_lossy().to_string();
    let restored = cli_json(&["wallet", "-c", &tr_toml, "restore", "--json"]).await;
    let issued = cli_json(&["mint", "-c", &mint_toml, "stats", "--json"]).await;
    println!("restored {restored}\nmint {issued}");
    assert!(issued["issued"].as_u64().unwrap_or(0) > 0);
    assert_eq!(
        restored["balance"], issued["issued"],
        "ehash lost in the failover"
    );

    stack.stop_all().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
