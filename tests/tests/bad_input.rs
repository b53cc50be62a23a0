//! Hostile and wrong input is refused cleanly and leaves everything else working.

use hashpool::DevnetStack;
use hashpool_tests::{fast_devnet, init_logs};
use std::time::{Duration, Instant};
use sv2_io::AuthorityKeypair;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_and_malformed_frames_only_affect_that_connection() {
    init_logs();
    let opts = fast_devnet("bad-input");
    let stack = DevnetStack::start(&opts).await.expect("stack starts");

    // Wrong pool authority key: the handshake fails with a clear error.
    let wrong = AuthorityKeypair::generate().public();
    let err = match sv2_io::connect(&stack.pool.addr.to_string(), &wrong).await {
        Ok(_) => panic!("connected to a pool signed by another key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("authority key"), "{err}");

    // A malformed frame closes only that connection.
    let (mut reader, sender) = sv2_io::connect(&stack.pool.addr.to_string(), &stack.pool.authority)
        .await
        .expect("right key connects");
    let garbage = sv2_io::frame::from_bytes(vec![0, 0, 0x00, 3, 0, 0, 1, 2, 3]).expect("frame");
    sender.send(garbage).await.expect("send");
    let closed = tokio::time::timeout(Duration::from_secs(5), reader.next()).await;
    assert!(
        matches!(closed, Ok(Err(_))),
        "pool should close the malformed connection"
    );

    // ...while the translator keeps earning.
    let before = stack.pool.stats.snapshot().shares_accepted;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack.pool.stats.snapshot().shares_accepted < before + 3 {
        assert!(
            Instant::now() < deadline,
            "shares stopped after a bad connection"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mint_and_pool_only_talk_to_each_other() {
    init_logs();
    let opts = fast_devnet("mutual-auth");
    let stack = DevnetStack::start(&opts).await.expect("stack starts");
    let tp_key = stack.tp.authority.to_string();
    let mint_link = stack.mint.link_addr.to_string();
    let rogue = |name: &str, mint_authority: String| hashpool_pool::PoolConfig {
        data_dir: opts.data_dir.join(name),
        listen: "127.0.0.1:0".parse().expect("addr"),
        tp_address: stack.tp.addr.to_string(),
        tp_authority: tp_key.clone(),
        mint_address: mint_link.clone(),
        mint_authority,
        pool_tag: "rogue".into(),
        payout_script: None,
        share_unit_log2: 10,
        shares_per_minute: 60.0,
        vardiff_interval_secs: 5.0,
        metrics_listen: None,
        chain_rpc: None,
        maturity: 100,
        block_poll_secs: 10.0,
        fallback_template_providers: Vec::new(),
        fallback_mints: Vec::new(),
        admin_listen: None,
        admin_token: None,
        admin_allow_remote: false,
        job_declaration: None,
        trusted_jd_servers: Vec::new(),
    };
    // A pool whose key the mint does not list: the mint refuses it (MintAuthError).
    let unknown_pool =
        hashpool_pool::start(rogue("unknown-pool", stack.mint.authority.to_string()))
            .await
            .expect("pool starts");
    // A pool pinned to another mint key: it refuses the real mint in the handshake.
    let other = AuthorityKeypair::generate().public().to_string();
    let wrong_mint = hashpool_pool::start(rogue("wrong-mint", other))
        .await
        .expect("pool starts");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !unknown_pool.mint.is_up(),
        "the mint served a pool it does not know"
    );
    assert!(
        !wrong_mint.mint.is_up(),
        "a pool trusted a mint with another key"
    );
    assert!(stack.pool.mint.is_up(), "the real pool lost its mint");
    unknown_pool.shutdown().await;
    wrong_mint.shutdown().await;
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&opts.data_dir);
}
