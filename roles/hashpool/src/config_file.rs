//! Reading role configs: errors name the file and the offending key.

use hashpool_ops_http::config_check::{ConfigProblem, Validate};
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
    /// Parsed, but a value cannot be used.
    #[error("invalid config {path}: {problem}")]
    Invalid {
        /// File.
        path: String,
        /// The key and what is wrong.
        problem: ConfigProblem,
    },
}

/// Loads a TOML config of type `T` from `path` and checks its values.
pub fn load<T: DeserializeOwned + Validate>(path: &Path) -> Result<T, ConfigFileError> {
    let config: T = parse(path)?;
    config
        .validate()
        .map_err(|problem| ConfigFileError::Invalid {
            path: path.display().to_string(),
            problem,
        })?;
    Ok(config)
}

/// Loads a TOML config of type `T` from `path` without checking values beyond their types.
pub fn parse<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigFileError> {
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

    #[test]
    fn bad_value_names_file_and_key() {
        let dir = std::env::temp_dir().join(format!("hp-cfg-value-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("miner.toml");
        std::fs::write(
            &path,
            "url = \"127.0.0.1:34255\"\nuser = \"w\"\nthreads = 0\n",
        )
        .unwrap();
        let err = load::<hashpool_miner::MinerOptions>(&path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("miner.toml") && err.contains("`threads`"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The commented examples under `config/` and `deploy/devnet/` use only keys the roles accept.
    #[test]
    fn example_configs_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut seen = 0;
        for dir in [
            "config/devnet",
            "config/testnet4",
            "config/mainnet",
            "deploy/devnet",
        ] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                match name.as_str() {
                    "pool.toml" => drop(parse::<hashpool_pool::PoolConfig>(&path).unwrap()),
                    "mint.toml" => drop(parse::<hashpool_mint::MintConfig>(&path).unwrap()),
                    "translator.toml" => {
                        drop(parse::<hashpool_translator::TranslatorConfig>(&path).unwrap())
                    }
                    "template-provider.toml" => {
                        drop(parse::<hashpool_devnet::TemplateProviderConfig>(&path).unwrap())
                    }
                    "jd-client.toml" => {
                        drop(parse::<hashpool_jd_client::JdClientConfig>(&path).unwrap())
                    }
                    "jd-server.toml" => {
                        drop(parse::<hashpool_jd_server::JdServerConfig>(&path).unwrap())
                    }
                    other => panic!("unexpected example {other}"),
                }
                seen += 1;
            }
        }
        assert!(seen >= 17, "{seen}");
    }
}
