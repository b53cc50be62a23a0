//! The short soak CI runs: 1,000 SV1 connections on one translator process for 30 s, every
//! connection submitting real shares through the whole stack. No connection may fail, no share
//! may go unanswered. (`hashpool bench soak` runs the long version.)

use hashpool::soak::{run, SoakOptions};
use std::path::PathBuf;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_connections_for_thirty_seconds() {
    let dir = std::env::temp_dir().join(format!("hashpool-soak-short-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = SoakOptions {
        binary: PathBuf::from(env!("CARGO_BIN_EXE_hashpool")),
        connections: 1000,
        duration: Duration::from_secs(30),
        share_interval: Duration::from_secs(5),
        data_dir: dir.clone(),
    };
    let r = run(&opts).await.expect("soak runs");
    println!("{}", serde_json::to_string(&r).expect("json"));
    assert_eq!(r.connected, 1000, "{r:?}");
    assert_eq!(r.errors, 0, "{r:?}");
    assert!(r.accepted >= 3000, "{r:?}");
    assert_eq!(r.submitted, r.accepted + r.rejected, "{r:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
