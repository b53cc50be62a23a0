//! The dashboards in a real browser: headless Chromium loads every page of a running devnet
//! (separate role processes), checks that live numbers appear and change, that nothing is
//! fetched from another origin, sends a token from the wallet page and receives it back, takes
//! ehash from the devnet faucet, and saves a screenshot of each page under
//! `target/tmp/screenshots/` (out of git).

mod browser;
mod common;

use browser::Browser;
use hashpool::process_stack::RoleProcesses;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_hashpool");
const LONG: Duration = Duration::from_secs(60);

/// JavaScript: the number shown in element `id` (thousands separators removed).
fn shown(id: &str) -> String {
    format!("Number((document.getElementById('{id}').textContent || 'NaN').replace(/,/g, ''))")
}

/// JavaScript: every resource the page loaded came from its own origin.
const SAME_ORIGIN_ONLY: &str =
    "performance.getEntriesByType('resource').every(e => e.name.startsWith(location.origin))";

async fn number(b: &mut Browser, id: &str) -> f64 {
    b.eval(&shown(id)).await.as_f64().unwrap_or(f64::NAN)
}

/// Waits until the number in `id` is positive, then until it grows: the page updates live.
async fn live_number(b: &mut Browser, id: &str) {
    b.wait_for(&format!("{} > 0", shown(id)), LONG).await;
    let first = number(b, id).await;
    b.wait_for(&format!("{} > {first}", shown(id)), LONG).await;
}

async fn pool_dashboard(b: &mut Browser, port: u16, shots: &Path) {
    b.open(&format!("http://127.0.0.1:{port}/")).await;
    live_number(b, "accepted").await;
    b.wait_for(
        "document.querySelectorAll('#channel-rows td.mono').length > 0",
        LONG,
    )
    .await;
    b.wait_for(
        "document.getElementById('services').textContent.split('up').length - 1 >= 3",
        LONG,
    )
    .await;
    // Two hashrate samples (5 s apart) draw the chart.
    b.wait_for(
        "document.querySelector('#hashrate-chart polyline') !== null",
        LONG,
    )
    .await;
    b.wait_for(
        "!document.getElementById('hashrate').textContent.startsWith('0 ')",
        LONG,
    )
    .await;
    b.wait_for(
        "document.querySelectorAll('#block-rows td.mono').length > 0",
        LONG,
    )
    .await;
    b.wait_for(
        "document.querySelectorAll('#epoch-rows td.mono').length > 0",
        LONG,
    )
    .await;
    assert_eq!(b.eval(SAME_ORIGIN_ONLY).await, true);
    b.screenshot(&shots.join("pool-dashboard.png")).await;
}

async fn miners_page(b: &mut Browser, port: u16, shots: &Path) {
    b.open(&format!("http://127.0.0.1:{port}/miners")).await;
    b.wait_for(
        "document.querySelectorAll('#miner-rows td.mono').length > 0",
        LONG,
    )
    .await;
    live_number(b, "accepted").await;
    b.wait_for(
        "document.querySelector('#hashrate-chart polyline') !== null",
        LONG,
    )
    .await;
    let rows = b
        .eval("document.getElementById('miner-rows').textContent")
        .await;
    assert!(
        rows.as_str().unwrap_or_default().contains("devnet.worker0"),
        "{rows}"
    );
    assert_eq!(b.eval(SAME_ORIGIN_ONLY).await, true);
    b.screenshot(&shots.join("proxy-miners.png")).await;
}

async fn proxy_pool_page(b: &mut Browser, port: u16, shots: &Path) {
    b.open(&format!("http://127.0.0.1:{port}/pool")).await;
    b.wait_for("document.getElementById('link').textContent === 'up'", LONG)
        .await;
    live_number(b, "accepted").await;
    b.wait_for(
        "document.getElementById('latency').textContent.endsWith(' ms')",
        LONG,
    )
    .await;
    // The job: its id is a number, the previous block a 64-hex hash.
    b.wait_for(
        "/[0-9a-f]{64}/.test(document.getElementById('job-facts').textContent)",
        LONG,
    )
    .await;
    b.wait_for(
        "document.querySelectorAll('#block-rows td.mono').length > 0",
        LONG,
    )
    .await;
    assert_eq!(b.eval(SAME_ORIGIN_ONLY).await, true);
    b.screenshot(&shots.join("proxy-pool.png")).await;
}

async fn wallet_page(b: &mut Browser, port: u16, shots: &Path) {
    b.open(&format!("http://127.0.0.1:{port}/wallet")).await;
    b.wait_for(&format!("{} > 0", shown("balance")), LONG).await;
    b.wait_for(
        "document.getElementById('send-epoch').options.length > 0",
        LONG,
    )
    .await;

    // Send 1 HASH: a cashuB token and its QR code appear.
    b.eval("document.getElementById('send-amount').value = '1'; document.getElementById('send-button').click()")
        .await;
    b.wait_for(
        "document.getElementById('send-token').value.startsWith('cashuB')",
        LONG,
    )
    .await;
    b.wait_for("document.querySelector('#send-qr svg') !== null", LONG)
        .await;
    let result = b.text("send-result").await;
    assert!(result.starts_with("Token for 1 HASH"), "{result}");
    b.screenshot(&shots.join("wallet-send.png")).await;

    // Receive the same token back.
    b.eval("document.getElementById('receive-token').value = document.getElementById('send-token').value; document.getElementById('receive-button').click()")
        .await;
    b.wait_for(
        "document.getElementById('receive-result').textContent.startsWith('Received')",
        LONG,
    )
    .await;
    assert_eq!(b.text("receive-result").await, "Received 1 HASH.");

    // The devnet faucet.
    b.wait_for("!document.getElementById('faucet-section').hidden", LONG)
        .await;
    let before = number(b, "balance").await;
    b.eval("document.getElementById('faucet-button').click()")
        .await;
    b.wait_for(
        "document.getElementById('faucet-result').textContent.startsWith('Received')",
        LONG,
    )
    .await;
    let result = b.text("faucet-result").await;
    assert!(result.starts_with("Received 64 HASH of epoch"), "{result}");
    b.wait_for(&format!("{} >= {}", shown("balance"), before + 64.0), LONG)
        .await;
    assert_eq!(b.eval(SAME_ORIGIN_ONLY).await, true);
    b.screenshot(&shots.join("wallet-after.png")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_work_in_a_browser() {
    let (dir, base) = common::scratch("web");
    let (pool_port, translator_port) = (base + 5, base + 8);
    let mut stack = RoleProcesses::start_fast_devnet(Path::new(BIN), &dir, base, "warn")
        .await
        .expect("stack starts");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");

    let mut b = Browser::start(&dir.join("chromium-profile")).await;
    pool_dashboard(&mut b, pool_port, &shots).await;
    miners_page(&mut b, translator_port, &shots).await;
    proxy_pool_page(&mut b, translator_port, &shots).await;
    wallet_page(&mut b, translator_port, &shots).await;
    b.close().await;
    eprintln!("screenshots in {}", shots.display());

    stack.stop_all().await.expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
