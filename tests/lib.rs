//! Helpers shared by the integration tests.

use hashpool::DevnetOptions;
use std::path::PathBuf;

/// A fresh data directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "hashpool-test-{name}-{}-{}",
        std::process::id(),
        nanos()
    ));
    std::fs::create_dir_all(&d).ok();
    d
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Devnet options for fast tests: ephemeral ports, quick blocks, many small shares.
pub fn fast_devnet(name: &str) -> DevnetOptions {
    DevnetOptions {
        data_dir: temp_dir(name),
        miners: 1,
        threads: 1,
        block_interval_secs: 2.0,
        initial_block_hashes: 1_000_000.0,
        share_unit_log2: 10,
        shares_per_minute: 600.0,
        vardiff_interval_secs: 2.0,
        ephemeral_ports: true,
        ..DevnetOptions::default()
    }
}

/// Logs to the test output when RUST_LOG is set.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The translator config the devnet `opts` would use, pointed at the running stack's pool:
/// for tests that start a second or replacement translator.
pub fn translator_config(
    opts: &DevnetOptions,
    stack: &hashpool::DevnetStack,
) -> hashpool_translator::TranslatorConfig {
    let configs = hashpool::StackConfigs::generate(opts, hashpool::DevnetPorts::EPHEMERAL)
        .expect("devnet configs");
    let mut cfg = configs.translator;
    cfg.pool_address = stack.pool.addr.to_string();
    cfg
}
