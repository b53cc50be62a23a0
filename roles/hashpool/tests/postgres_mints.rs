//! Two mint processes on one PostgreSQL database, each serving its own pool (own translator,
//! miner, channels), each pool listing the other mint as its fallback. Both sign at once; the
//! epochs rotate once per boundary although both mints see every tip; killing one mint moves
//! its pool to the other within seconds; and the one ledger adds up: the HASH issued equals
//! what both pools acknowledged, it knows every block both found, and the wallets restore it
//! all.
//! Needs the test server of `deploy/test-postgres.sh`.

mod common;

use common::{
    add_second_farm, add_second_pool, cli_json, get, init_devnet, metric, pool_config, scratch,
    two_farms_add_up, BIN,
};
use hashpool::process_stack::RoleProcesses;
use std::path::Path;
use std::time::{Duration, Instant};

fn edit(path: &Path, f: impl FnOnce(&mut toml::Table)) {
    let mut t: toml::Table =
        toml::from_str(&std::fs::read_to_string(path).expect("config")).expect("toml");
    f(&mut t);
    std::fs::write(path, toml::to_string(&t).expect("toml")).expect("write");
}

fn endpoint(address: &str, authority: &str) -> toml::Value {
    let mut e = toml::Table::new();
    e.insert("address".into(), address.into());
    e.insert("authority".into(), authority.into());
    toml::Value::Array(vec![e.into()])
}

async fn metrics(port: u16) -> String {
    get(port, "/metrics")
        .await
        .map(|(_, m)| m)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mint_processes_share_one_postgres_ledger_and_back_each_other_up() {
    let url = hashpool_mint::testing::fresh_database("hp_it_mint_processes")
        .await
        .expect("PostgreSQL test server (deploy/test-postgres.sh)");
    let (dir, base) = scratch("postgres-mints");
    init_devnet(&dir, base).await;
    let (pool2_addr, pool2_key) = add_second_pool(&dir, base);
    // The second mint: same database, own data dir, key and ports.
    let (mint2_link, mint2_http, mint2_metrics) = (base + 18, base + 19, base + 20);
    let mint2_key = sv2_io::AuthorityKeypair::load_or_generate(&dir.join("mint2/authority.key"))
        .expect("mint2 key")
        .public()
        .to_string();
    edit(&dir.join("mint.toml"), |m| {
        m.insert("database_url".into(), url.clone().into());
    });
    std::fs::copy(dir.join("mint.toml"), dir.join("mint2.toml")).expect("mint2.toml");
    edit(&dir.join("mint2.toml"), |m| {
        m.insert(
            "data_dir".into(),
            dir.join("mint2").to_string_lossy().to_string().into(),
        );
        m.insert(
            "link_listen".into(),
            format!("127.0.0.1:{mint2_link}").into(),
        );
        m.insert(
            "http_listen".into(),
            format!("127.0.0.1:{mint2_http}").into(),
        );
        m.insert(
            "metrics_listen".into(),
            format!("127.0.0.1:{mint2_metrics}").into(),
        );
        m.remove("admin_listen");
    });
    // Each pool on its own mint, the other one as fallback.
    let (mut mint1_addr, mut mint1_key) = (String::new(), String::new());
    pool_config(&dir, |p| {
        mint1_addr = p["mint_address"].as_str().unwrap_or_default().to_string();
        mint1_key = p["mint_authority"].as_str().unwrap_or_default().to_string();
        p.insert(
            "fallback_mints".into(),
            endpoint(&format!("127.0.0.1:{mint2_link}"), &mint2_key),
        );
    });
    edit(&dir.join("pool2.toml"), |p| {
        p.insert(
            "mint_address".into(),
            format!("127.0.0.1:{mint2_link}").into(),
        );
        p.insert("mint_authority".into(), mint2_key.clone().into());
        p.insert("fallback_mints".into(), endpoint(&mint1_addr, &mint1_key));
    });
    // A translator and a miner for the second pool.
    add_second_farm(&dir, base, &pool2_addr, &pool2_key);

    let mut stack = RoleProcesses::new(Path::new(BIN), &dir, "info");
    stack
        .spawn_named_in_order(&[("template-provider", "template-provider"), ("mint", "mint")])
        .await
        .expect("first mint starts");
    // Every mint process on one database needs the same seed.
    std::fs::copy(dir.join("mint/mint.seed"), dir.join("mint2/mint.seed")).expect("seed");
    stack
        .spawn_named_in_order(&[
            ("mint2", "mint"),
            ("pool", "pool"),
            ("pool2", "pool"),
            ("translator", "translator"),
            ("translator2", "translator"),
            ("miner", "miner"),
            ("miner2", "miner"),
        ])
        .await
        .expect("roles start");

    // Both mints sign (each for its pool), and the chain passes an epoch boundary.
    let (pool_metrics, pool2_metrics) = (base + 5, base + 14);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (m1, m2) = (metrics(base + 7).await, metrics(mint2_metrics).await);
        let signing = metric(&m1, "hashpool_mint_signatures_total") > 0.0
            && metric(&m2, "hashpool_mint_signatures_total") > 0.0;
        let (_, body) = get(base + 2, "/hashpool/v1/epochs")
            .await
            .unwrap_or_default();
        let epochs = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|l| l["epochs"].as_array().map(Vec::len))
            .unwrap_or(0);
        if signing && epochs >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both mints signing and 3 epochs: {signing} {epochs}\n{m1}\n{m2}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Both mints saw every tip, yet each boundary made one keyset: the ehash keysets both
    // mints serve are exactly the epochs' keysets (a rotation in flight may make them differ
    // for a moment; a double rotation would make them differ for good).
    let ehash_keysets = |port: u16| async move {
        let (_, body) = get(port, "/v1/keysets").await.unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let mut ids: Vec<String> = v["keysets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|k| k["unit"] == "hash")
            .filter_map(|k| k["id"].as_str().map(String::from))
            .collect();
        ids.sort();
        ids
    };
    let epoch_keysets = |port: u16| async move {
        let (_, body) = get(port, "/hashpool/v1/epochs").await.unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let mut ids: Vec<String> = v["epochs"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e["keyset_id"].as_str().map(String::from))
            .collect();
        ids.sort();
        ids
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let views = [
            ehash_keysets(base + 2).await,
            ehash_keysets(mint2_http).await,
            epoch_keysets(base + 2).await,
            epoch_keysets(mint2_http).await,
        ];
        if views[0].len() >= 3 && views.iter().all(|v| *v == views[0]) {
            println!("{} epochs, one keyset each, at both mints", views[0].len());
            break;
        }
        assert!(Instant::now() < deadline, "keysets disagree: {views:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Kill the first mint: its pool moves to the second (link up there, named in /health)
    // and then earns ehash there.
    let mint2 = format!("127.0.0.1:{mint2_link}");
    let killed = Instant::now();
    stack.kill("mint").await;
    let deadline = killed + Duration::from_secs(30);
    loop {
        let m = metrics(pool_metrics).await;
        let health = get(pool_metrics, "/health").await.unwrap_or_default();
        if metric(&m, "hashpool_pool_mint_failovers_total") >= 1.0
            && health.0 == 200
            && health.1.contains(&mint2)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pool never moved to mint2: {health:?}\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let linked = killed.elapsed();
    let signed_on_link = metric(
        &metrics(pool_metrics).await,
        "hashpool_pool_ehash_signed_total",
    );
    loop {
        let m = metrics(pool_metrics).await;
        if metric(&m, "hashpool_pool_ehash_signed_total") > signed_on_link {
            break;
        }
        assert!(Instant::now() < deadline, "no ehash signed at mint2\n{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "pool linked to mint2 {:.2} s and signing there {:.2} s after mint1 was killed",
        linked.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );

    // Stop mining, let both journals drain, and add up.
    let stats = two_farms_add_up(
        &mut stack,
        &dir,
        "mint2.toml",
        mint2_http,
        [pool_metrics, pool2_metrics],
    )
    .await;

    // No ehash lost to the failover: both wallets, restored from their seeds alone (with the
    // first mint back), hold exactly what the mints issued.
    stack
        .spawn_named_in_order(&[("mint", "mint")])
        .await
        .expect("first mint restarts");
    for role in ["translator", "translator2"] {
        stack.stop(role).await.expect("translator stops");
    }
    let mut restored = 0u64;
    for name in ["translator.toml", "translator2.toml"] {
        let path = dir.join(name).to_string_lossy().to_string();
        let r = cli_json(&["wallet", "-c", &path, "restore", "--json"]).await;
        println!("{name}: restored {r}");
        restored += r["balance"].as_u64().unwrap_or(0);
    }
    assert_eq!(Some(restored), stats["issued"].as_u64(), "ehash lost");
    stack.stop_all().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
