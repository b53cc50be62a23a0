//! Status of a link to a service a role depends on, for dashboards and health.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A service a role depends on (template provider, mint, node, pool): whether the link is up
/// and when the role last heard from it.
#[derive(Debug, Default)]
pub struct ServiceLink {
    up: AtomicBool,
    ups: AtomicU64,
    since_ms: AtomicI64,
    last_seen_ms: AtomicI64,
}

/// What the dashboard shows about a service.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    /// The link is up.
    pub up: bool,
    /// Unix ms of the last up/down change (0: never up).
    pub since_ms: i64,
    /// Unix ms of the last message or answer (0: never).
    pub last_seen_ms: i64,
}

impl ServiceLink {
    /// Marks the link up or down.
    pub fn set_up(&self, up: bool) {
        if self.up.swap(up, Ordering::Relaxed) != up {
            self.since_ms.store(now_ms(), Ordering::Relaxed);
            if up {
                self.ups.fetch_add(1, Ordering::Relaxed);
            }
        }
        if up {
            self.seen();
        }
    }

    /// Records that the service answered just now.
    pub fn seen(&self) {
        self.last_seen_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Times the link came up since start (a session that raised it shows as a change).
    pub fn ups(&self) -> u64 {
        self.ups.load(Ordering::Relaxed)
    }

    /// The link is up.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Status for the dashboard.
    pub fn status(&self) -> ServiceStatus {
        ServiceStatus {
            up: self.is_up(),
            since_ms: self.since_ms.load(Ordering::Relaxed),
            last_seen_ms: self.last_seen_ms.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_down_and_seen() {
        let l = ServiceLink::default();
        assert!(!l.status().up && l.status().since_ms == 0);
        l.set_up(true);
        let s = l.status();
        assert!(s.up && s.since_ms > 0 && s.last_seen_ms >= s.since_ms);
        l.set_up(false);
        assert!(!l.is_up());
    }
}
