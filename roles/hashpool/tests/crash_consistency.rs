//! Crash consistency of the separate-process stack: while a CPU miner keeps submitting, the
//! translator, the pool and the mint are each SIGKILLed several times at random moments and
//! restarted. Afterwards, with nothing repaired by hand:
//! - the wallet's balance after restore == the mint's issued total == its epochs' count, and
//!   the mint signed each blinded message once (signatures == wallet proofs);
//! - every share the pool acknowledged (its durable totals) is paid: acknowledged ≤ issued.
//!   Issued exceeds it only by shares the mint signed while the pool was being killed, before
//!   the pool could acknowledge them (the pool asks the mint first and acknowledges once the
//!   signature is stored); their tokens are not lost — the restore finds them — and there are
//!   at most a few per kill;
//! - no journal entry is left open.

use hashpool::process_stack::{free_port_base, RoleProcesses};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_hashpool");
/// Kills per role.
const KILLS_PER_ROLE: usize = 3;

/// Tiny deterministic PRNG (xorshift) so a failing run can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

async fn cli_json(args: &[&str], dir: &Path) -> Value {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "error")
        .current_dir(dir)
        .output()
        .await
        .expect("run cli");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{args:?} printed {text:?}: {e}"))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_roles_never_lose_or_double_a_token() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    println!("crash harness seed {seed}");
    let mut rng = Rng(seed);
    let dir = std::env::temp_dir().join(format!("hashpool-crash-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let base = free_port_base(rng.next()).expect("free ports");
    let d = dir.to_string_lossy().to_string();
    let filter = "warn,hashpool_translator=info,hashpool_pool=info";
    let mut stack = RoleProcesses::start_fast_devnet(Path::new(BIN), &dir, base, filter)
        .await
        .expect("stack starts");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Each victim KILLS_PER_ROLE times, in a shuffled order, at random moments.
    let mut victims: Vec<&'static str> = ["translator", "pool", "mint"]
        .iter()
        .flat_map(|r| std::iter::repeat_n(*r, KILLS_PER_ROLE))
        .collect();
    for i in (1..victims.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        victims.swap(i, j);
    }
    let mut kills: HashMap<&str, usize> = HashMap::new();
    for victim in &victims {
        tokio::time::sleep(rng.millis(500, 3000)).await;
        stack.kill(victim).await;
        *kills.entry(victim).or_default() += 1;
        tokio::time::sleep(rng.millis(100, 1500)).await;
        stack.spawn(victim).expect("respawn");
    }
    println!("kills: {kills:?}");

    // Let the stack mine a while after the last crash, then stop the miner and let every
    // journaled share reach the mint.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stack.stop("miner").await.expect("miner stops");
    let pool_cfg = format!("{d}/pool.toml");
    let deadline = Instant::now() + Duration::from_secs(60);
    let pool = loop {
        let p = cli_json(&["pool", "-c", &pool_cfg, "stats", "--json"], &dir).await;
        if u(&p, "open") == 0 {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "journal entries never closed: {p}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The translator is stopped; its wallet restores from the mint (NUT-09) like an operator
    // would after a crash: no manual repair of any database.
    stack.stop("translator").await.expect("translator stops");
    let tr_cfg = format!("{d}/translator.toml");
    let wallet = cli_json(&["wallet", "-c", &tr_cfg, "restore", "--json"], &dir).await;
    stack.stop_all().await.expect("roles stop on SIGTERM");
    let mint_cfg = format!("{d}/mint.toml");
    let mint = cli_json(&["mint", "-c", &mint_cfg, "stats", "--json"], &dir).await;
    println!("pool {pool}\nmint {mint}\nwallet {wallet}");

    let (accepted, acked_shares) = (u(&pool, "accepted_amount"), u(&pool, "accepted_shares"));
    assert!(acked_shares >= 20, "too little mining to judge: {pool}");
    let issued = u(&mint, "issued");
    assert_eq!(u(&wallet, "balance"), issued, "wallet == mint issued");
    assert!(
        accepted <= issued,
        "every acknowledged share is paid: {accepted} > {issued}"
    );
    assert!(
        u(&mint, "signatures") >= acked_shares,
        "an acknowledged share without a signature"
    );
    let unacked = u(&mint, "signatures") - acked_shares;
    assert!(
        unacked <= 10 * KILLS_PER_ROLE as u64,
        "{unacked} signed shares never acknowledged: more than the pool kills explain"
    );
    // The epoch ledger's own count (issue receipts, settled after each SIGKILL) agrees with CDK's.
    assert_eq!(
        u(&mint, "epochs_issued"),
        issued,
        "issued per epoch == CDK's issued total"
    );
    assert_eq!(
        u(&mint, "signatures"),
        u(&wallet, "proofs"),
        "every signature is a wallet proof"
    );
    for role in ["translator", "pool", "mint"] {
        assert_eq!(kills.get(role), Some(&KILLS_PER_ROLE));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
