//! `/metrics` and `/health` on the separate-process stack: the metrics parse as Prometheus text
//! and move while the miner works; the pool's health flips to 503 (naming the mint) when the
//! mint stops and back to 200 when it returns; the mint and the translator serve their own, and
//! the translator's health follows its pool.

use hashpool::process_stack::{free_port_base, RoleProcesses};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_hashpool");

/// A plain HTTP/1.0 GET: (status, body).
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

async fn wait_health(port: u16, want: u16, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some((status, body)) = get(port, "/health").await {
            if status == want {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "/health never answered {want}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Parses Prometheus text; returns the value of `metric` (unlabelled).
fn metric(text: &str, metric: &str) -> f64 {
    let mut found = None;
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (name, value) = line.rsplit_once(' ').expect("sample line");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad sample {line:?}"));
        if name == metric {
            found = Some(v);
        }
    }
    found.unwrap_or_else(|| panic!("{metric} missing in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_and_health_follows_the_mint() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(3);
    let dir = std::env::temp_dir().join(format!("hashpool-ops-{}-{seed}", std::process::id()));
    let base = free_port_base(seed).expect("free ports");
    let metrics_port = base + 5;
    let mut stack = RoleProcesses::start_fast_devnet(Path::new(BIN), &dir, base, "warn")
        .await
        .expect("stack starts");
    wait_health(metrics_port, 200, Duration::from_secs(30)).await;

    let (status, first) = get(metrics_port, "/metrics").await.expect("metrics");
    assert_eq!(status, 200);
    let a = metric(&first, "hashpool_pool_shares_accepted_total");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, second) = get(metrics_port, "/metrics").await.expect("metrics");
    let b = metric(&second, "hashpool_pool_shares_accepted_total");
    assert!(b > a, "shares_accepted did not move: {a} -> {b}");
    assert_eq!(metric(&second, "hashpool_pool_mint_up"), 1.0);
    assert!(metric(&second, "hashpool_pool_channels") >= 1.0);

    // The mint's and the translator's own endpoints.
    let (mint_port, translator_port) = (base + 7, base + 8);
    wait_health(mint_port, 200, Duration::from_secs(30)).await;
    wait_health(translator_port, 200, Duration::from_secs(30)).await;
    let (_, mint_text) = get(mint_port, "/metrics").await.expect("mint metrics");
    assert!(metric(&mint_text, "hashpool_mint_signatures_total") > 0.0);
    assert!(metric(&mint_text, "hashpool_mint_sign_batches_total") > 0.0);
    assert!(
        mint_text.contains("hashpool_mint_ehash_issued_total{epoch="),
        "{mint_text}"
    );
    let (_, tr_text) = get(translator_port, "/metrics")
        .await
        .expect("translator metrics");
    assert_eq!(metric(&tr_text, "hashpool_translator_pool_up"), 1.0);
    assert!(metric(&tr_text, "hashpool_translator_miners") >= 1.0);
    assert!(metric(&tr_text, "hashpool_translator_shares_accepted_total") > 0.0);

    // The template provider's and the CPU miner's own endpoints.
    let (tp_port, miner_port) = (base + 9, base + 12);
    wait_health(tp_port, 200, Duration::from_secs(30)).await;
    wait_health(miner_port, 200, Duration::from_secs(30)).await;
    let (_, tp_text) = get(tp_port, "/metrics").await.expect("tp metrics");
    assert!(metric(&tp_text, "hashpool_tp_templates_total") > 0.0);
    assert_eq!(metric(&tp_text, "hashpool_tp_pools"), 1.0);
    let (_, miner_text) = get(miner_port, "/metrics").await.expect("miner metrics");
    assert!(metric(&miner_text, "hashpool_miner_hashes_total") > 0.0);
    assert_eq!(metric(&miner_text, "hashpool_miner_connected"), 1.0);

    stack.stop("mint").await.expect("mint stops");
    let body = wait_health(metrics_port, 503, Duration::from_secs(15)).await;
    assert!(body.contains("mint unreachable"), "{body}");
    stack.spawn("mint").expect("mint restarts");
    wait_health(metrics_port, 200, Duration::from_secs(30)).await;

    // The translator's health follows its pool.
    stack.stop("pool").await.expect("pool stops");
    let body = wait_health(translator_port, 503, Duration::from_secs(15)).await;
    assert!(body.contains("pool unreachable"), "{body}");
    stack.spawn("pool").expect("pool restarts");
    wait_health(translator_port, 200, Duration::from_secs(30)).await;

    stack.stop_all().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
