//! The admin API on the separate-process devnet: the pool lists its connections, disconnects
//! one and bans an address (the translator then cannot come back until the ban is lifted); the
//! mint pauses signing (the pool sees it as down) and resumes. Without the token every call is
//! refused.

mod common;

use hashpool::admin_cli::AdminTarget;
use hashpool::process_stack::RoleProcesses;
use std::path::Path;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hashpool");

async fn health(port: u16) -> u16 {
    let url = format!("http://127.0.0.1:{port}/health");
    match bitreq::get(url.as_str()).with_timeout(5).send_async().await {
        Ok(r) => r.status_code as u16,
        Err(_) => 0,
    }
}

async fn wait_health(port: u16, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while health(port).await != want {
        assert!(
            Instant::now() < deadline,
            "port {port} never answered {want}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn wait_for<F: Fn(&serde_json::Value) -> bool>(
    t: &AdminTarget,
    path: &str,
    ok: F,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = t.call(path, None).await.expect("admin call");
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{path}: never as expected: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_disconnect_ban_and_pause_through_the_admin_api() {
    let (dir, base) = common::scratch("admin");
    let (pool_metrics, mint_metrics, translator_metrics) = (base + 5, base + 7, base + 8);
    let (pool_admin, mint_admin) = (base + 10, base + 11);
    let mut stack = RoleProcesses::start_fast_devnet(Path::new(BIN), &dir, base, "info")
        .await
        .expect("stack starts");
    wait_health(translator_metrics, 200).await;

    let pool = AdminTarget::new(
        Some(([127, 0, 0, 1], pool_admin).into()),
        None,
        &dir.join("pool"),
    )
    .expect("pool admin token");
    let mint = AdminTarget::new(
        Some(([127, 0, 0, 1], mint_admin).into()),
        None,
        &dir.join("mint"),
    )
    .expect("mint admin token");
    let wrong = AdminTarget::new(
        Some(([127, 0, 0, 1], pool_admin).into()),
        Some("a-wrong-token-of-length"),
        &dir,
    )
    .expect("target");
    let refused = wrong.call("/admin/v1/connections", None).await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");

    // The translator's connection, then disconnected: it reconnects as a new one.
    let conns = wait_for(&pool, "/admin/v1/connections", |v| {
        v.as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    let first = conns[0]["connection"].as_u64().expect("connection number");
    assert_eq!(conns[0]["channels"][0]["user"], "devnet");
    pool.call(
        "/admin/v1/disconnect",
        Some(serde_json::json!({ "connection": first })),
    )
    .await
    .expect("disconnect");
    wait_for(&pool, "/admin/v1/connections", |v| {
        v.as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["connection"].as_u64() != Some(first))
    })
    .await;

    // Banned: the translator cannot come back (its health says so) until the ban is lifted.
    let ban = pool
        .call(
            "/admin/v1/ban",
            Some(serde_json::json!({ "ip": "127.0.0.1" })),
        )
        .await
        .expect("ban");
    assert_eq!(ban["disconnected"], 1);
    wait_health(translator_metrics, 503).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let conns = pool
        .call("/admin/v1/connections", None)
        .await
        .expect("list");
    assert_eq!(conns.as_array().map(Vec::len), Some(0), "{conns}");
    pool.call(
        "/admin/v1/unban",
        Some(serde_json::json!({ "ip": "127.0.0.1" })),
    )
    .await
    .expect("unban");
    wait_health(translator_metrics, 200).await;

    // Paused signing: the mint serves no pool, so the pool reports it down; then resumed.
    mint.call(
        "/admin/v1/signing",
        Some(serde_json::json!({ "paused": true })),
    )
    .await
    .expect("pause");
    wait_health(mint_metrics, 503).await;
    wait_health(pool_metrics, 503).await;
    mint.call(
        "/admin/v1/signing",
        Some(serde_json::json!({ "paused": false })),
    )
    .await
    .expect("resume");
    wait_health(mint_metrics, 200).await;
    wait_health(pool_metrics, 200).await;
    let l = mint
        .call("/admin/v1/liabilities", None)
        .await
        .expect("liabilities");
    assert_eq!(l["solvent"], true, "{l}");

    // Rotated now: the next epoch opens with a fresh keyset, and shares earn ehash of it.
    let before = l["current_epoch"].as_u64().expect("current epoch");
    let r = mint
        .call("/admin/v1/rotate", Some(serde_json::json!({})))
        .await
        .expect("rotate");
    assert_eq!(r["epoch"].as_u64(), Some(before + 1), "{r}");
    let new_keyset = r["keyset"].as_str().expect("keyset").to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let l = mint
            .call("/admin/v1/liabilities", None)
            .await
            .expect("liabilities");
        let issued_in_new = l["epochs"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["keyset_id"] == new_keyset.as_str()))
            .and_then(|e| e["issued"].as_u64())
            .unwrap_or(0);
        if issued_in_new > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no ehash of the new epoch: {l}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mint_log = std::fs::read_to_string(dir.join("mint.log")).unwrap_or_default();
    assert!(
        mint_log.contains("epoch rotated by the operator"),
        "{mint_log}"
    );

    // Every action is in the role's log with who did it.
    let log = std::fs::read_to_string(dir.join("pool.log")).unwrap_or_default();
    assert!(
        log.contains("admin action") && log.contains("/admin/v1/ban"),
        "{log}"
    );

    stack.stop_all().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
