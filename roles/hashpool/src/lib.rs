//! The hashpool binary's library: loading role configs and running the devnet stack.

pub mod config_file;
pub mod devnet;

pub use devnet::{DevnetOptions, DevnetReport, DevnetStack};
