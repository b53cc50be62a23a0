//! The pipeline benchmark runs end to end, with the mint on SQLite and on PostgreSQL (CI checks
//! it runs and counts right, not its speed).

use hashpool::pipeline::{run, PipelineOptions};

async fn every_share_signed(name: &str, mint_db: Option<String>) {
    let dir = std::env::temp_dir().join(format!("hashpool-{name}-{}", std::process::id()));
    let opts = PipelineOptions {
        shares: 300,
        channels: 3,
        sign_threads: 2,
        rate: 0.0,
        window: 64,
        data_dir: dir.clone(),
        // The SQLite run also pins its threads to cores.
        pin: mint_db.is_none(),
        mint_db,
    };
    let r = run(&opts).await.expect("bench runs");
    println!("{}", serde_json::to_string(&r).expect("json"));
    assert_eq!(
        (r.accepted, r.signed, r.rejected, r.refused),
        (300, 300, 0, 0)
    );
    assert!(r.limit_per_s > 0.0 && r.shares_per_s > 0.0 && r.ratio > 0.0);
    assert!(r.p99_us >= r.p50_us && r.p50_us > 0);
    if opts.pin {
        let pinning = r.pinning.as_ref().expect("pinned");
        assert!(!pinning.signing_cores.is_empty() && !pinning.other_cores.is_empty());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_bench_gets_every_share_signed() {
    every_share_signed("bench-pipeline", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_bench_runs_with_the_mint_on_postgres() {
    let url = hashpool_mint::testing::fresh_database("hp_it_bench_pipeline")
        .await
        .expect("PostgreSQL test server (deploy/test-postgres.sh)");
    every_share_signed("bench-pipeline-pg", Some(url)).await;
}
