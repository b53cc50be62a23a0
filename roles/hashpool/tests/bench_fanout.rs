//! The fan-out benchmark runs end to end on role processes (CI checks that every channel gets
//! every new block and that memory is measured, not how fast).

use hashpool::fanout::{run, FanoutOptions};
use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_bench_reaches_every_channel() {
    let dir = std::env::temp_dir().join(format!("hashpool-bench-fanout-{}", std::process::id()));
    let opts = FanoutOptions {
        binary: PathBuf::from(env!("CARGO_BIN_EXE_hashpool")),
        channels: 130,
        per_connection: 64,
        rounds: 2,
        data_dir: dir.clone(),
    };
    let r = run(&opts).await.expect("bench runs");
    println!("{}", serde_json::to_string(&r).expect("json"));
    assert_eq!((r.channels, r.connections), (130, 3));
    assert_eq!(r.last_channel_ms.len(), 2);
    for round in 0..2 {
        assert!(r.first_channel_ms[round] <= r.median_channel_ms[round]);
        assert!(r.median_channel_ms[round] <= r.last_channel_ms[round]);
    }
    assert!(r.rss_after_kib > r.rss_before_kib && r.rss_before_kib > 0);
    let _ = std::fs::remove_dir_all(&dir);
}
