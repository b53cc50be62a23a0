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
}
