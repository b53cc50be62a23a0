//! The pipeline benchmark runs end to end (CI checks it runs and counts right, not its speed).

use hashpool::pipeline::{run, PipelineOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_bench_gets_every_share_signed() {
    let dir = std::env::temp_dir().join(format!("hashpool-bench-pipeline-{}", std::process::id()));
    let opts = PipelineOptions {
        shares: 300,
        channels: 3,
        sign_threads: 2,
        rate: 0.0,
        window: 64,
        data_dir: dir.clone(),
    };
    let r = run(&opts).await.expect("bench runs");
    println!("{}", serde_json::to_string(&r).expect("json"));
    assert_eq!(
        (r.accepted, r.signed, r.rejected, r.refused),
        (300, 300, 0, 0)
    );
    assert!(r.limit_per_s > 0.0 && r.shares_per_s > 0.0 && r.ratio > 0.0);
    assert!(r.p99_us >= r.p50_us && r.p50_us > 0);
    let _ = std::fs::remove_dir_all(&dir);
}
