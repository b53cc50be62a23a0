//! Errors of the mint role.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors starting or running the mint.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// Filesystem error in the data directory.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Key file problem.
    #[error(transparent)]
    Key(#[from] sv2_io::KeyError),
    /// A configured value is invalid.
    #[error("invalid mint config `{key}`: {reason}")]
    Config {
        /// The config key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// CDK failed.
    #[error("cdk: {0}")]
    Cdk(#[from] cdk::Error),
    /// The CDK database failed.
    #[error("mint database: {0}")]
    Database(#[from] cdk::cdk_database::Error),
    /// The epoch ledger failed.
    #[error(transparent)]
    Epochs(#[from] crate::epochs::store::StoreError),
    /// The HTTP router could not be built.
    #[error("mint http: {0}")]
    Http(String),
}

impl From<hashpool_ops_http::config_check::ConfigProblem> for MintError {
    fn from(p: hashpool_ops_http::config_check::ConfigProblem) -> Self {
        MintError::Config {
            key: p.key,
            reason: p.reason,
        }
    }
}
