//! Two pools, one mint: the translator lists both; when the pool in use dies (SIGKILL) it mines
//! on the second within seconds, keeping its SV1 miner and wallet. The dead pool's journal is
//! replayed when it comes back, and a restore from the seed then accounts for every HASH the
//! mint issued: nothing was lost in the failover.

use hashpool::process_stack::{free_port_base, RoleProcesses};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_hashpool");

async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let r = bitreq::get(url.as_str())
        .with_timeout(5)
        .send_async()
        .await
        .ok()?;
    Some((
        r.status_code as u16,
        String::from_utf8_lossy(r.as_bytes()).to_string(),
    ))
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn cli_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .await
        .expect("hashpool runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("JSON line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_translator_fails_over_to_the_next_pool_and_loses_no_ehash() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(13);
    let dir = std::env::temp_dir().join(format!("hashpool-failover-{}-{seed}", std::process::id()));
    let base = free_port_base(seed).expect("free ports");
    let d = dir.to_string_lossy().to_string();
    let init = Command::new(BIN)
        .args([
            "devnet",
            "init",
            "--data-dir",
            &d,
            "--port-base",
            &base.to_string(),
        ])
        .args(["--block-interval", "2", "--shares-per-minute", "600"])
        .output()
        .await
        .expect("devnet init");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );

    // A second pool on the same template provider and mint (the mint trusts its key), and the
    // translator told about it.
    let load = |name: &str| std::fs::read_to_string(dir.join(name)).expect("config");
    let mut pool2: toml::Table = toml::from_str(&load("pool.toml")).expect("pool.toml");
    let (pool2_port, pool2_metrics) = (base + 12, base + 13);
    pool2.insert(
        "data_dir".into(),
        dir.join("pool2").to_string_lossy().to_string().into(),
    );
    pool2.insert("listen".into(), format!("127.0.0.1:{pool2_port}").into());
    pool2.insert(
        "metrics_listen".into(),
        format!("127.0.0.1:{pool2_metrics}").into(),
    );
    pool2.remove("admin_listen");
    std::fs::write(
        dir.join("pool2.toml"),
        toml::to_string(&pool2).expect("toml"),
    )
    .expect("write");
    let pool2_key =
        sv2_io::AuthorityKeypair::load_or_generate(&dir.join("pool2").join("authority.key"))
            .expect("pool2 key")
            .public()
            .to_string();
    let mut mint: toml::Table = toml::from_str(&load("mint.toml")).expect("mint.toml");
    if let Some(toml::Value::Array(keys)) = mint.get_mut("pool_keys") {
        keys.push(pool2_key.clone().into());
    }
    std::fs::write(dir.join("mint.toml"), toml::to_string(&mint).expect("toml")).expect("write");
    let mut tr: toml::Table = toml::from_str(&load("translator.toml")).expect("translator.toml");
    let mut fallback = toml::Table::new();
    fallback.insert("address".into(), format!("127.0.0.1:{pool2_port}").into());
    fallback.insert("authority".into(), pool2_key.into());
    tr.insert(
        "fallback_pools".into(),
        toml::Value::Array(vec![fallback.into()]),
    );
    std::fs::write(
        dir.join("translator.toml"),
        toml::to_string(&tr).expect("toml"),
    )
    .expect("write");

    let mut stack = RoleProcesses::new(Path::new(BIN), &dir, "info");
    for (name, role) in [
        ("template-provider", "template-provider"),
        ("mint", "mint"),
        ("pool", "pool"),
        ("pool2", "pool"),
        ("translator", "translator"),
        ("miner", "miner"),
    ] {
        stack.spawn_as(name, role).expect("role starts");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
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
    let pool2_addr = format!("127.0.0.1:{pool2_port}");
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
