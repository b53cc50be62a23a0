//! The hashpool binary's library: loading role configs and running the devnet stack.

pub mod admin_cli;
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
