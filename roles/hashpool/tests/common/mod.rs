//! Helpers of the tests that run several pools on the separate-process devnet.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use tokio::process::Command;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_hashpool");

/// GET `path` on a local port: (status, body).
pub async fn get(port: u16, path: &str) -> Option<(u16, String)> {
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

/// An unlabelled sample of Prometheus text (0 if absent).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Runs `hashpool args…` and parses the last line of its output as JSON.
pub async fn cli_json(args: &[&str]) -> serde_json::Value {
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

/// A fresh data dir and port base for one test.
pub fn scratch(name: &str) -> (PathBuf, u16) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(17);
    let dir = std::env::temp_dir().join(format!("hashpool-{name}-{}-{nanos}", std::process::id()));
    let base = hashpool::process_stack::prepare_stack_dir(&dir).expect("free ports");
    (dir, base)
}

/// `hashpool devnet init` with fast blocks and shares.
pub async fn init_devnet(dir: &Path, base: u16) {
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
}

fn load(dir: &Path, name: &str) -> toml::Table {
    toml::from_str(&std::fs::read_to_string(dir.join(name)).expect("config")).expect("toml")
}

fn save(dir: &Path, name: &str, t: &toml::Table) {
    std::fs::write(dir.join(name), toml::to_string(t).expect("toml")).expect("write config");
}

/// A second pool: `pool2.toml` on the same template provider and mint (which now trusts its
/// key), listening on `base+13`, metrics on `base+14`. Returns its address and key.
pub fn add_second_pool(dir: &Path, base: u16) -> (String, String) {
    let mut pool2 = load(dir, "pool.toml");
    let address = format!("127.0.0.1:{}", base + 13);
    pool2.insert(
        "data_dir".into(),
        dir.join("pool2").to_string_lossy().to_string().into(),
    );
    pool2.insert("listen".into(), address.clone().into());
    pool2.insert(
        "metrics_listen".into(),
        format!("127.0.0.1:{}", base + 14).into(),
    );
    pool2.remove("admin_listen");
    save(dir, "pool2.toml", &pool2);
    let key = sv2_io::AuthorityKeypair::load_or_generate(&dir.join("pool2").join("authority.key"))
        .expect("pool2 key")
        .public()
        .to_string();
    let mut mint = load(dir, "mint.toml");
    if let Some(toml::Value::Array(keys)) = mint.get_mut("pool_keys") {
        keys.push(key.clone().into());
    }
    save(dir, "mint.toml", &mint);
    (address, key)
}

/// Edits `translator.toml` with `edit`, saving it as `name`.
pub fn translator_config(dir: &Path, name: &str, edit: impl FnOnce(&mut toml::Table)) {
    let mut t = load(dir, "translator.toml");
    edit(&mut t);
    save(dir, name, &t);
}

/// A second template provider: `template-provider2.toml` with its own chain, listening on
/// `base+17` (RPC and metrics off). Returns its address and key.
pub fn add_second_template_provider(dir: &Path, base: u16) -> (String, String) {
    let mut tp = load(dir, "template-provider.toml");
    let address = format!("127.0.0.1:{}", base + 17);
    tp.insert(
        "data_dir".into(),
        dir.join("template-provider2")
            .to_string_lossy()
            .to_string()
            .into(),
    );
    tp.insert("listen".into(), address.clone().into());
    tp.remove("rpc_listen");
    tp.remove("metrics_listen");
    save(dir, "template-provider2.toml", &tp);
    let key = sv2_io::AuthorityKeypair::load_or_generate(
        &dir.join("template-provider2").join("authority.key"),
    )
    .expect("template provider 2 key")
    .public()
    .to_string();
    (address, key)
}

/// Edits `pool.toml` with `edit`.
pub fn pool_config(dir: &Path, edit: impl FnOnce(&mut toml::Table)) {
    let mut t = load(dir, "pool.toml");
    edit(&mut t);
    save(dir, "pool.toml", &t);
}

/// A second farm for the second pool: `translator2.toml` (own wallet; SV1 on `base+15`,
/// metrics on `base+16`, user `second-farm`) and `miner2.toml` pointed at it.
pub fn add_second_farm(dir: &Path, base: u16, pool2_addr: &str, pool2_key: &str) {
    let (sv1, metrics) = (base + 15, base + 16);
    translator_config(dir, "translator2.toml", |t| {
        t.insert(
            "data_dir".into(),
            dir.join("translator2").to_string_lossy().to_string().into(),
        );
        t.insert("sv1_listen".into(), format!("127.0.0.1:{sv1}").into());
        t.insert(
            "metrics_listen".into(),
            format!("127.0.0.1:{metrics}").into(),
        );
        t.insert("pool_address".into(), pool2_addr.into());
        t.insert("pool_authority".into(), pool2_key.into());
        t.insert("user_identity".into(), "second-farm".into());
    });
    let miner = std::fs::read_to_string(dir.join("miner.toml")).expect("miner.toml");
    let miner2: String = miner
        .replace(
            &format!("127.0.0.1:{}", base + 4),
            &format!("127.0.0.1:{sv1}"),
        )
        .lines()
        .filter(|l| !l.starts_with("metrics_listen"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(miner, miner2, "miner url rewritten");
    std::fs::write(dir.join("miner2.toml"), miner2).expect("write miner2.toml");
}

/// Waits until each pool (`(config file, metrics port)`) has no share waiting for the mint;
/// returns the HASH they acknowledged and the blocks they found, summed.
pub async fn drained_totals(dir: &Path, pools: &[(&str, u16)]) -> (u64, u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (mut acknowledged, mut blocks) = (0u64, 0u64);
    for (name, port) in pools {
        let path = dir.join(name).to_string_lossy().to_string();
        let totals = loop {
            let t = cli_json(&["pool", "-c", &path, "stats", "--json"]).await;
            if t["open"] == 0 {
                break t;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: journal never drained: {t}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        };
        acknowledged += totals["accepted_amount"].as_u64().unwrap_or(0);
        let m = get(*port, "/metrics")
            .await
            .map(|(_, m)| m)
            .unwrap_or_default();
        blocks += metric(&m, "hashpool_pool_blocks_found_total") as u64;
    }
    (acknowledged, blocks)
}

/// Waits until the mint whose HTTP API is on `port` knows `blocks` found blocks.
pub async fn mint_knows_blocks(port: u16, blocks: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, body) = get(port, "/hashpool/v1/epochs").await.expect("epochs");
        let l: serde_json::Value = serde_json::from_str(&body).expect("json");
        if l["blocks_found"].as_u64() == Some(blocks) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "mint knows {} of {blocks} blocks",
            l["blocks_found"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Both farms stop mining; once both pools' journals drained, the mint (`mint_toml`, HTTP on
/// `mint_http`) has issued exactly what the pools acknowledged, counts it in its epochs and
/// knows every block they found. Returns the mint's stats.
pub async fn two_farms_add_up(
    stack: &mut hashpool::process_stack::RoleProcesses,
    dir: &Path,
    mint_toml: &str,
    mint_http: u16,
    pool_metrics: [u16; 2],
) -> serde_json::Value {
    for role in ["miner", "miner2"] {
        stack.stop(role).await.expect("miner stops");
    }
    let (acknowledged, blocks) = drained_totals(
        dir,
        &[
            ("pool.toml", pool_metrics[0]),
            ("pool2.toml", pool_metrics[1]),
        ],
    )
    .await;
    let path = dir.join(mint_toml).to_string_lossy().to_string();
    // A mint killed between its commit and its settlement leaves signatures the living mints
    // count within a sweep (5 s): wait that long for the epoch ledger, not for CDK's total.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let stats = loop {
        let stats = cli_json(&["mint", "-c", &path, "stats", "--json"]).await;
        assert_eq!(stats["issued"].as_u64(), Some(acknowledged), "{stats}");
        if stats["epochs_issued"].as_u64() == Some(acknowledged) {
            break stats;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "epoch ledger short of the signatures: {stats}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    mint_knows_blocks(mint_http, blocks).await;
    println!("acknowledged {acknowledged} HASH, {blocks} blocks: {stats}");
    stats
}
