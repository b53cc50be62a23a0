//! A pool with two template providers: when the one in use dies, the pool takes work from the
//! second, says so in `/health` and `/metrics`, and its translator's shares are accepted again.

mod common;

use common::{add_second_template_provider, get, init_devnet, metric, pool_config, scratch, BIN};
use hashpool::process_stack::RoleProcesses;
use std::path::Path;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_fails_over_to_its_second_template_provider() {
    let (dir, base) = scratch("tp-failover");
    init_devnet(&dir, base).await;
    let (tp2_addr, tp2_key) = add_second_template_provider(&dir, base);
    pool_config(&dir, |p| {
        let mut fallback = toml::Table::new();
        fallback.insert("address".into(), tp2_addr.clone().into());
        fallback.insert("authority".into(), tp2_key.into());
        p.insert(
            "fallback_template_providers".into(),
            toml::Value::Array(vec![fallback.into()]),
        );
    });
    let mut stack = RoleProcesses::new(Path::new(BIN), &dir, "info");
    stack
        .spawn_named_in_order(&[
            ("template-provider", "template-provider"),
            ("template-provider2", "template-provider"),
            ("mint", "mint"),
            ("pool", "pool"),
            ("translator", "translator"),
            ("miner", "miner"),
        ])
        .await
        .expect("roles start");
    let pool_metrics = base + 5;
    let accepted = || async {
        get(pool_metrics, "/metrics")
            .await
            .map(|(_, m)| metric(&m, "hashpool_pool_shares_accepted_total"))
            .unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepted().await == 0.0 {
        assert!(Instant::now() < deadline, "no shares before the failover");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    stack.kill("template-provider").await;
    let killed = Instant::now();
    let before = accepted().await;
    loop {
        let health = get(pool_metrics, "/health").await;
        let on_tp2 = matches!(&health, Some((200, h)) if h.contains(&tp2_addr));
        if on_tp2 && accepted().await > before {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no failover within 30 s: {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "pool on its second template provider, shares accepted again: {:.2} s",
        killed.elapsed().as_secs_f64()
    );
    let (_, m) = get(pool_metrics, "/metrics").await.expect("metrics");
    assert!(
        metric(&m, "hashpool_pool_template_provider_failovers_total") >= 1.0,
        "{m}"
    );
    let log = std::fs::read_to_string(dir.join("pool.log")).unwrap_or_default();
    assert!(log.contains("failing over"), "{log}");

    stack.stop_all().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
