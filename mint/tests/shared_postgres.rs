//! Two mints on one PostgreSQL database (same seed, own data dirs, own connection pools),
//! racing each other: every blinded message is signed once however both are asked, a token is
//! spent once however both are asked, one tip rotates the epoch once, and the totals agree.
//! Needs the test server of `deploy/test-postgres.sh`.

use cdk::dhke::{blind_message, construct_proofs};
use cdk::nuts::{BlindedMessage, Id, Keys, SecretKey, SwapRequest};
use cdk::secret::Secret;
use cdk::Amount;
use ehash_protocol::messages as m;
use hashpool_mint::epochs::receipts::{self, IssueReceipt};
use hashpool_mint::epochs::TipFacts;
use hashpool_mint::{MintConfig, MintHandle, ShareSigner, SignJob, SignOutcome};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;

const EPOCH_BLOCKS: u32 = 10;

fn config(dir: &Path, url: &str) -> MintConfig {
    let mut c: MintConfig = toml::from_str(&format!(
        r#"
        data_dir = "{}"
        link_listen = "127.0.0.1:0"
        http_listen = "127.0.0.1:0"
        pool_keys = []
        epoch_blocks = {EPOCH_BLOCKS}
        "#,
        dir.display()
    ))
    .expect("config");
    c.database_url = Some(url.to_string());
    c
}

/// A blinded message with what unblinds its signature.
struct Output {
    message: BlindedMessage,
    secret: Secret,
    r: SecretKey,
}

fn output(keyset: Id, amount: u64) -> Output {
    let secret = Secret::generate();
    let (b, r) = blind_message(&secret.to_bytes(), None).expect("blind");
    Output {
        message: BlindedMessage::new(Amount::from(amount), keyset, b),
        secret,
        r,
    }
}

async fn sign(signer: &ShareSigner, o: &Output, request_id: u64) -> SignOutcome {
    let (reply, mut outcome) = mpsc::unbounded_channel();
    let job = SignJob {
        request_id,
        amount: u64::from(o.message.amount),
        keyset_id: o.message.keyset_id.to_bytes(),
        blinded: o.message.blinded_secret.to_bytes().to_vec(),
        replay: false,
        reply,
    };
    assert!(signer.submit(job).await.is_ok(), "signer running");
    outcome.recv().await.expect("an outcome")
}

async fn post_swap(url: &str, request: &SwapRequest) -> u16 {
    let body = serde_json::to_vec(request).expect("json");
    let r = bitreq::post(format!("{url}{}", ehash_api::EPOCH_SWAP_PATH))
        .with_header("Content-Type", "application/json")
        .with_body(body)
        .with_timeout(20)
        .send_async()
        .await
        .expect("mint answers");
    r.status_code as u16
}

/// Two mints (same seed, data dirs `a` and `b` under a scratch root) on a fresh database.
async fn two_mints(
    database: &str,
    scratch: &str,
) -> (String, std::path::PathBuf, MintHandle, MintHandle) {
    let url = hashpool_mint::testing::fresh_database(database)
        .await
        .expect("PostgreSQL test server (deploy/test-postgres.sh)");
    let root = std::env::temp_dir().join(format!("{scratch}-{}", std::process::id()));
    let (dir_a, dir_b) = (root.join("a"), root.join("b"));
    let a = hashpool_mint::start(config(&dir_a, &url))
        .await
        .expect("mint a");
    std::fs::create_dir_all(&dir_b).expect("dir b");
    std::fs::copy(dir_a.join("mint.seed"), dir_b.join("mint.seed")).expect("same seed");
    let b = hashpool_mint::start(config(&dir_b, &url))
        .await
        .expect("mint b");
    (url, root, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mints_on_one_database_never_sign_or_spend_twice() {
    let (url, root, a, b) = two_mints("hp_it_two_mints", "hashpool-shared-pg").await;
    let keyset = a.ledger.active_keyset().expect("keyset");
    assert_eq!(b.ledger.active_keyset().expect("keyset"), keyset);

    // A third mint with its own seed refuses to serve keys that would not match the ids.
    let dir_c = root.join("c");
    let refused = hashpool_mint::start(config(&dir_c, &url)).await;
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("mint.seed")),
        "foreign seed refused: {:?}",
        refused.as_ref().err()
    );

    // Each mint signs for its own pool (messages 0..OWN for a, OWN..2*OWN for b) while every
    // other message is asked of both mints at once.
    // Several batches in flight per mint, too, as the mints run on PostgreSQL.
    let signer_a = ShareSigner::spawn_workers(a.ledger.clone(), 64, 4).expect("signer a");
    let signer_b = ShareSigner::spawn_workers(b.ledger.clone(), 64, 4).expect("signer b");
    const OWN: usize = 120;
    const N: usize = 2 * OWN + 240;
    let outputs: Arc<Vec<Output>> = Arc::new(
        (0..N)
            .map(|i| output(keyset, 1 << (i % 4)))
            .collect::<Vec<_>>(),
    );
    let mut tasks = Vec::new();
    for i in 0..N {
        for (which, signer) in [(0usize, signer_a.clone()), (1, signer_b.clone())] {
            let own = i / OWN;
            if own < 2 && own != which {
                continue;
            }
            let outputs = outputs.clone();
            tasks.push(tokio::spawn(async move {
                (i, which, sign(&signer, &outputs[i], i as u64).await)
            }));
        }
    }
    let mut signed = vec![None; N];
    let (mut by_mint, mut refused_twice) = ([0usize; 2], 0usize);
    for t in tasks {
        let (i, which, outcome) = t.await.expect("task");
        match outcome {
            SignOutcome::Signed { signature, .. } => {
                assert!(signed[i].is_none(), "message {i} signed twice");
                signed[i] = Some(signature);
                by_mint[which] += 1;
            }
            SignOutcome::Refused { code, .. } => {
                assert_eq!(code, m::ERR_ALREADY_SIGNED, "message {i}");
                assert!(i >= 2 * OWN, "a pool's own message {i} refused");
                refused_twice += 1;
            }
        }
    }
    assert!(by_mint[0] >= OWN && by_mint[1] >= OWN, "{by_mint:?}");
    assert_eq!(by_mint[0] + by_mint[1], N, "each message signed once");
    assert_eq!(
        refused_twice,
        N - 2 * OWN,
        "the contested ones refused once"
    );
    let total: u64 = outputs.iter().map(|o| u64::from(o.message.amount)).sum();
    eprintln!(
        "signed by mint a: {}, by mint b: {}",
        by_mint[0], by_mint[1]
    );

    // Both mints count the same issuance, from the one database.
    for mint in [&a, &b] {
        mint.ledger.epochs().refresh().await.expect("refresh");
        let stats = mint.ledger.stats().await.expect("stats");
        assert_eq!(stats.issued, total, "CDK's issued total");
        assert_eq!(stats.epochs_issued, total, "the epoch ledger's");
        assert_eq!(stats.signatures, N as u64);
    }

    // One tip, both mints: one rotation, one new keyset, both sign with it.
    let tip = TipFacts {
        height: EPOCH_BLOCKS,
        target_le: [0xff; 32],
        coinbase_value: 5_000_000_000,
        share_unit_log2: 0,
    };
    let (ra, rb) = tokio::join!(a.ledger.epochs().on_tip(tip), b.ledger.epochs().on_tip(tip));
    ra.expect("rotation a");
    rb.expect("rotation b");
    let next = a.ledger.active_keyset().expect("keyset");
    assert_ne!(next, keyset);
    assert_eq!(b.ledger.active_keyset().expect("keyset"), next);
    let ehash_keysets = |h: &MintHandle| {
        h.ledger
            .mint()
            .keysets()
            .keysets
            .iter()
            .filter(|k| k.unit == *h.ledger.unit())
            .count()
    };
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        (ehash_keysets(&a), ehash_keysets(&b)),
        (2, 2),
        "one rotation"
    );
    assert_eq!(a.ledger.epochs().current_epoch(), 1);
    assert_eq!(b.ledger.epochs().current_epoch(), 1);

    // The same proofs swapped at both mints at once: spent once.
    let keys = Keys::from(
        a.ledger
            .epoch_keys()
            .keyset(&keyset)
            .await
            .expect("keys")
            .keys
            .clone(),
    );
    // Proofs from both mints' signatures.
    let spend: Vec<usize> = (OWN - 4..OWN + 4).collect();
    let proofs = construct_proofs(
        spend
            .iter()
            .map(|&i| signed[i].clone().expect("signed"))
            .collect(),
        spend.iter().map(|&i| outputs[i].r.clone()).collect(),
        spend.iter().map(|&i| outputs[i].secret.clone()).collect(),
        &keys,
    )
    .expect("proofs");
    let value: u64 = spend
        .iter()
        .map(|&i| u64::from(outputs[i].message.amount))
        .sum();
    let fresh = |_: u8| -> Vec<BlindedMessage> {
        // One output per power of two in the value.
        (0..64)
            .map(|bit| 1u64 << bit)
            .filter(|amount| value & amount != 0)
            .map(|amount| output(keyset, amount).message)
            .collect()
    };
    let to_a = SwapRequest::new(proofs.clone(), fresh(0));
    let to_b = SwapRequest::new(proofs, fresh(1));
    let (sa, sb) = tokio::join!(post_swap(&a.http_url, &to_a), post_swap(&b.http_url, &to_b));
    let mut statuses = [sa, sb];
    statuses.sort_unstable();
    assert_eq!(statuses[0], 200, "one swap succeeds: {statuses:?}");
    assert_ne!(statuses[1], 200, "the other is refused: {statuses:?}");

    a.shutdown().await;
    b.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}

/// Writes `receipt` to CDK's store the way a signer does, without settling it.
async fn store_unsettled(ledger: &hashpool_mint::EhashLedger, receipt: &IssueReceipt) {
    let mut tx = ledger
        .mint()
        .localstore()
        .begin_transaction()
        .await
        .expect("tx");
    let (ns, sub) = receipts::NAMESPACE;
    tx.kv_write(ns, sub, &receipt.key, &receipt.encode())
        .await
        .expect("receipt");
    tx.commit().await.expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_mints_unsettled_issuance_is_counted_by_the_other_within_a_sweep() {
    let (_url, root, a, b) = two_mints("hp_it_dead_mint_receipts", "hashpool-pg-receipts").await;
    let keyset = a.ledger.active_keyset().expect("keyset").to_string();
    let issued = |h: &MintHandle| h.ledger.epochs().issued_total();
    let before = issued(&b);

    // Mint a committed 32 on a lane and died before settling; long ago it had left another
    // lane idle with 8 it never settled either.
    let fresh = {
        let lane = a.ledger.epochs().receipts().take();
        lane.receipt_with([(keyset.clone(), 32)])
    };
    let mut stale = IssueReceipt {
        key: format!("1-{}-9", "ab".repeat(8)),
        ..fresh.clone()
    };
    stale.entries = vec![(keyset.clone(), 8)];
    stale.written_ms = fresh.written_ms - 700_000;
    store_unsettled(&a.ledger, &fresh).await;
    store_unsettled(&a.ledger, &stale).await;
    a.shutdown().await;

    // Mint b counts both within a sweep period. A sweep finding another under way (b's own
    // periodic one holds the lock across mints) leaves the work to that one or the next, so
    // sweep until counted rather than expect the first call to be the one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(12);
    loop {
        b.ledger.epochs().sweep_receipts().await.expect("sweep");
        b.ledger.epochs().refresh().await.expect("refresh");
        if issued(&b) == before + 32 + 8 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(issued(&b), before + 32 + 8, "counted within a sweep period");
    // Counted once: later sweeps add nothing. Only the long-idle lane is cleared (the other
    // could still be a live mint's).
    for _sweep in 0..3 {
        b.ledger.epochs().sweep_receipts().await.expect("sweep");
        b.ledger.epochs().refresh().await.expect("refresh");
        assert_eq!(issued(&b), before + 32 + 8);
    }
    let (ns, sub) = receipts::NAMESPACE;
    let left = b.ledger.mint().localstore().kv_list(ns, sub).await;
    assert_eq!(left.expect("list"), vec![fresh.key.clone()]);
    b.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}
