//! The hashpool binary's library: loading role configs and running the devnet stack.

pub mod admin_cli;
pub mod bench_cli;
pub mod config_file;
pub mod devnet;
pub mod fanout;
pub mod pipeline;
pub mod process_stack;
pub mod soak;
pub mod stack_configs;
pub mod wallet_cli;

pub use devnet::{DevnetOptions, DevnetReport, DevnetStack};
pub use stack_configs::{DevnetPorts, StackConfigs};

/// Prints `value` as one JSON line with `json`, else `text`.
pub fn print_report<T: serde::Serialize>(value: &T, json: bool, text: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(value)?);
    } else {
        println!("{text}");
    }
    Ok(())
}
