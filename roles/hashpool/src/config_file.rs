//! Reading role configs: errors name the file and the offending key.

use serde::de::DeserializeOwned;
use std::path::Path;

/// A config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// Unreadable.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Invalid TOML or wrong keys/values (the message names the key).
    #[error("invalid config {path}: {message}")]
    Parse {
        /// File.
        path: String,
        /// Parser's message, with the key and position.
        message: String,
    },
}

/// Loads a TOML config of type `T` from `path`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigFileError::Parse {
        path: path.display().to_string(),
        message: e.to_string().trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_key_names_key_and_file() {
        let dir = std::env::temp_dir().join(format!("hp-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pool.toml");
        std::fs::write(&path, "data_dir = \"x\"\nlisten = \"nope\"\n").unwrap();
        let err = load::<hashpool_pool::PoolConfig>(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pool.toml"), "{err}");
        assert!(err.contains("listen"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
