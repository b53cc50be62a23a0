//! An ordered list of peers of one kind (pools for a translator; template providers or mints
//! for a pool) with the position of the one in use. A peer that cannot be reached hands over
//! to the next; a link that was up and dropped is tried again on the same peer first (a
//! restart), and handed over if that attempt cannot reach it.

use crate::keys::{AuthorityPublicKey, KeyError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One peer as the config names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// `host:port`.
    pub address: String,
    /// Its authority public key (the Noise handshake pins it).
    pub authority: String,
}

/// One peer, its key parsed.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port`.
    pub address: String,
    /// Authority key to pin.
    pub authority: AuthorityPublicKey,
}

impl EndpointConfig {
    /// Parses the key.
    pub fn parse(&self) -> Result<Endpoint, KeyError> {
        Ok(Endpoint {
            address: self.address.clone(),
            authority: self.authority.parse()?,
        })
    }
}

/// What dashboards, `/metrics` and `/health` show of a failover list.
#[derive(Debug, Default)]
pub struct FailoverState {
    active: Mutex<String>,
    failovers: AtomicU64,
}

impl FailoverState {
    /// Address of the peer in use.
    pub fn active(&self) -> String {
        self.active.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Hand-overs since start.
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }
}

/// The list and the peer in use.
#[derive(Debug)]
pub struct Failover {
    kind: &'static str,
    endpoints: Vec<Endpoint>,
    current: usize,
    state: Arc<FailoverState>,
}

impl Failover {
    /// A list of `kind` peers (`"pool"`, `"template provider"`, `"mint"`), first preferred;
    /// `state` is shared with whoever reports on it. An empty list is a bug of the caller's
    /// config validation and keeps nothing to connect to.
    pub fn new(kind: &'static str, endpoints: Vec<Endpoint>, state: Arc<FailoverState>) -> Self {
        let f = Self {
            kind,
            endpoints,
            current: 0,
            state,
        };
        f.publish();
        f
    }

    fn publish(&self) {
        if let (Ok(mut a), Some(e)) = (self.state.active.lock(), self.current()) {
            *a = e.address.clone();
        }
    }

    /// The peer to connect to now.
    pub fn current(&self) -> Option<&Endpoint> {
        self.endpoints.get(self.current)
    }

    /// Moves on after a session ended; `came_up` says whether its link got established. A link
    /// that was up is tried again on the same peer (it may have restarted); a peer that could
    /// not be reached hands over to the next.
    pub fn session_ended(&mut self, came_up: bool) {
        if came_up || self.endpoints.len() < 2 {
            return;
        }
        let from = self.current;
        self.current = (self.current + 1) % self.endpoints.len();
        self.state.failovers.fetch_add(1, Ordering::Relaxed);
        self.publish();
        tracing::warn!(
            kind = self.kind,
            from = %self.endpoints[from].address,
            to = %self.endpoints[self.current].address,
            "failing over"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: usize) -> Failover {
        let key = crate::AuthorityKeypair::generate().public();
        let endpoints = (0..n)
            .map(|i| Endpoint {
                address: format!("pool{i}:3333"),
                authority: key,
            })
            .collect();
        Failover::new("pool", endpoints, Arc::default())
    }

    #[test]
    fn unreachable_peers_hand_over_and_a_dropped_one_is_retried_once() {
        let mut f = list(3);
        assert_eq!(f.state.active(), "pool0:3333");
        f.session_ended(false);
        assert_eq!(f.current().unwrap().address, "pool1:3333");
        f.session_ended(true);
        assert_eq!(
            f.current().unwrap().address,
            "pool1:3333",
            "a dropped link is retried"
        );
        f.session_ended(false);
        assert_eq!(f.current().unwrap().address, "pool2:3333");
        f.session_ended(false);
        assert_eq!(f.current().unwrap().address, "pool0:3333", "wraps around");
        assert_eq!(f.state.failovers(), 3);
        assert_eq!(f.state.active(), "pool0:3333");
        let mut single = list(1);
        single.session_ended(false);
        assert_eq!(single.state.failovers(), 0);
    }
}
