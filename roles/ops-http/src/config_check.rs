//! Checks of config values every role uses, so that a bad value is refused at start with the
//! key and the reason (the binary adds the file), before the role touches anything.

use std::fmt::Display;
use std::time::Duration;

/// A config value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {reason}")]
pub struct ConfigProblem {
    /// The key.
    pub key: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

impl ConfigProblem {
    /// `key` is wrong because `reason`.
    pub fn new(key: &'static str, reason: impl ToString) -> Self {
        Self {
            key,
            reason: reason.to_string(),
        }
    }
}

/// A role config whose values can be checked before the role touches anything.
pub trait Validate {
    /// Every value usable, or the first key that is not.
    fn validate(&self) -> Result<(), ConfigProblem>;
}

/// A finite number above zero.
pub fn positive(key: &'static str, value: f64) -> Result<f64, ConfigProblem> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ConfigProblem::new(
            key,
            format!("must be a positive number, got {value}"),
        ))
    }
}

/// A duration in seconds, above zero and at most `max_secs`.
pub fn seconds(key: &'static str, value: f64, max_secs: f64) -> Result<Duration, ConfigProblem> {
    positive(key, value)?;
    if value > max_secs {
        return Err(ConfigProblem::new(
            key,
            format!("must be at most {max_secs} seconds, got {value}"),
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

/// A value within `min..=max`.
pub fn within<T: PartialOrd + Display + Copy>(
    key: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<T, ConfigProblem> {
    if value < min || value > max {
        Err(ConfigProblem::new(
            key,
            format!("must be between {min} and {max}, got {value}"),
        ))
    } else {
        Ok(value)
    }
}

/// An `http://` or `https://` URL with a host.
pub fn http_url(key: &'static str, value: &str) -> Result<(), ConfigProblem> {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
        .ok_or_else(|| {
            ConfigProblem::new(
                key,
                format!("must start with http:// or https://, got {value:?}"),
            )
        })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(ConfigProblem::new(key, format!("has no host: {value:?}")));
    }
    Ok(())
}

/// A `host:port` address (a name or an IP, and a port above zero).
pub fn host_port(key: &'static str, value: &str) -> Result<(), ConfigProblem> {
    let bad = || ConfigProblem::new(key, format!("must be host:port, got {value:?}"));
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(())
}

/// The admin API settings: a token of some strength, and another host only when allowed.
pub fn admin(settings: crate::admin::AdminSettings<'_>) -> Result<(), ConfigProblem> {
    let crate::admin::AdminSettings {
        listen,
        token,
        allow_remote,
    } = settings;
    if token.is_some_and(|t| t.len() < 16) {
        return Err(ConfigProblem::new(
            "admin_token",
            "must be at least 16 characters (or leave it out: one is generated into data_dir)",
        ));
    }
    match listen {
        Some(addr) if !addr.ip().is_loopback() && !allow_remote => Err(ConfigProblem::new(
            "admin_listen",
            "is not a loopback address; set admin_allow_remote = true to accept other hosts",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_with_their_key() {
        assert!(positive("a", 1.0).is_ok());
        assert_eq!(positive("a", f64::NAN).unwrap_err().key, "a");
        assert!(positive("a", 0.0).is_err());
        assert!(seconds("s", 1e30, 86_400.0).is_err());
        assert_eq!(
            seconds("s", 2.5, 10.0).unwrap(),
            Duration::from_millis(2500)
        );
        assert!(within("w", 5u32, 1, 4).is_err());
        assert!(within("w", 4u32, 1, 4).is_ok());
        assert!(http_url("u", "https://mint.example.com/x").is_ok());
        assert!(http_url("u", "ftp://x").is_err());
        assert!(http_url("u", "http://").is_err());
        assert!(host_port("h", "pool.example.com:3333").is_ok());
        assert!(host_port("h", "[::1]:3333").is_ok());
        assert!(host_port("h", "pool.example.com").is_err());
        assert!(host_port("h", "x:0").is_err());
        let settings = |listen: Option<&str>, token, allow_remote| crate::admin::AdminSettings {
            listen: listen.map(|l| l.parse().unwrap()),
            token,
            allow_remote,
        };
        assert_eq!(admin(settings(None, None, false)), Ok(()));
        let remote = Some("0.0.0.0:1");
        assert_eq!(
            admin(settings(remote, None, false)).unwrap_err().key,
            "admin_listen"
        );
        assert_eq!(admin(settings(remote, None, true)), Ok(()));
        assert_eq!(
            admin(settings(None, Some("short"), false)).unwrap_err().key,
            "admin_token"
        );
        let e = host_port("tp_address", "nope").unwrap_err().to_string();
        assert!(e.contains("tp_address"), "{e}");
    }
}
