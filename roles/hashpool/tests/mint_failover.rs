//! A pool whose first mint endpoint cannot be reached hands over to the next one in its list:
//! the link comes up there, shares earn ehash, and the hand-over is counted and named.

mod common;

use common::{get, init_devnet, metric, pool_config, scratch, BIN};
use hashpool::process_stack::RoleProcesses;
use std::path::Path;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_hands_over_to_a_reachable_mint_endpoint() {
    let (dir, base) = scratch("mint-failover");
    init_devnet(&dir, base).await;
    // The configured mint endpoint first points at a port nothing listens on (base+13 is a
    // spare); the real mint link is the fallback.
    let dead = format!("127.0.0.1:{}", base + 13);
    let mut real = String::new();
    pool_config(&dir, |p| {
        real = p["mint_address"].as_str().unwrap_or_default().to_string();
        let mut fallback = toml::Table::new();
        fallback.insert("address".into(), real.clone().into());
        fallback.insert("authority".into(), p["mint_authority"].clone());
        p.insert("mint_address".into(), dead.clone().into());
        p.insert(
            "fallback_mints".into(),
            toml::Value::Array(vec![fallback.into()]),
        );
    });
    let mut stack = RoleProcesses::start_fast_devnet_from_configs(Path::new(BIN), &dir, "info")
        .await
        .expect("stack starts");
    let pool_metrics = base + 5;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = get(pool_metrics, "/health").await;
        let signed = get(pool_metrics, "/metrics")
            .await
            .map(|(_, m)| metric(&m, "hashpool_pool_ehash_signed_total"))
            .unwrap_or(0.0);
        if matches!(&health, Some((200, h)) if h.contains(&real)) && signed > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no mint failover: {health:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, m) = get(pool_metrics, "/metrics").await.expect("metrics");
    assert!(
        metric(&m, "hashpool_pool_mint_failovers_total") >= 1.0,
        "{m}"
    );
    let log = std::fs::read_to_string(dir.join("pool.log")).unwrap_or_default();
    assert!(log.contains("failing over") && log.contains(&dead), "{log}");
    stack.stop_all().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
