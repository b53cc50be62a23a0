//! Which downstream connections the pool serves: each live connection can be disconnected by
//! the operator, and banned addresses are refused (their live connections closed).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Live connections and bans.
#[derive(Debug, Default)]
pub struct Admission {
    live: Mutex<HashMap<u64, (SocketAddr, CancellationToken)>>,
    bans: Mutex<HashMap<IpAddr, Option<Instant>>>,
}

/// A ban as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ban {
    /// Banned address.
    pub ip: IpAddr,
    /// Seconds left (none: until lifted).
    pub secs_left: Option<u64>,
}

impl Admission {
    /// Admits connection `number` from `peer`; the token is cancelled to disconnect it.
    pub fn admit(&self, number: u64, peer: SocketAddr) -> Result<CancellationToken, String> {
        if self.is_banned(peer.ip()) {
            return Err(format!("{} is banned", peer.ip()));
        }
        let token = CancellationToken::new();
        if let Ok(mut l) = self.live.lock() {
            l.insert(number, (peer, token.clone()));
        }
        Ok(token)
    }

    /// Forgets a closed connection.
    pub fn leave(&self, number: u64) {
        if let Ok(mut l) = self.live.lock() {
            l.remove(&number);
        }
    }

    /// Disconnects connection `number`; false if there is none.
    pub fn disconnect(&self, number: u64) -> bool {
        let token = self
            .live
            .lock()
            .ok()
            .and_then(|l| l.get(&number).map(|(_, t)| t.clone()));
        token.map(|t| t.cancel()).is_some()
    }

    fn is_banned(&self, ip: IpAddr) -> bool {
        let Ok(mut bans) = self.bans.lock() else {
            return false;
        };
        match bans.get(&ip) {
            Some(Some(until)) if *until <= Instant::now() => {
                bans.remove(&ip);
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Bans `ip` (for `duration`, or until lifted) and disconnects its connections; returns
    /// how many were disconnected.
    pub fn ban(&self, ip: IpAddr, duration: Option<Duration>) -> usize {
        if let Ok(mut bans) = self.bans.lock() {
            bans.insert(ip, duration.map(|d| Instant::now() + d));
        }
        let Ok(live) = self.live.lock() else {
            return 0;
        };
        live.values()
            .filter(|(peer, _)| peer.ip() == ip)
            .map(|(_, t)| t.cancel())
            .count()
    }

    /// Lifts a ban; false if `ip` was not banned.
    pub fn unban(&self, ip: IpAddr) -> bool {
        self.bans
            .lock()
            .map(|mut b| b.remove(&ip).is_some())
            .unwrap_or(false)
    }

    /// Bans in force.
    pub fn bans(&self) -> Vec<Ban> {
        let now = Instant::now();
        let Ok(bans) = self.bans.lock() else {
            return Vec::new();
        };
        bans.iter()
            .filter(|(_, until)| until.is_none_or(|u| u > now))
            .map(|(ip, until)| Ban {
                ip: *ip,
                secs_left: until.map(|u| u.saturating_duration_since(now).as_secs()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnect_and_ban() {
        let a = Admission::default();
        let p1: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let p2: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let t1 = a.admit(1, p1).unwrap();
        let t2 = a.admit(2, p2).unwrap();
        assert!(a.disconnect(2) && t2.is_cancelled() && !t1.is_cancelled());
        assert!(!a.disconnect(9));
        assert_eq!(a.ban(p1.ip(), None), 1);
        assert!(t1.is_cancelled());
        assert!(a.admit(3, p1).is_err());
        assert_eq!(a.bans().len(), 1);
        assert!(a.unban(p1.ip()));
        assert!(a.admit(4, p1).is_ok());
        a.ban(p2.ip(), Some(Duration::ZERO));
        assert!(a.admit(5, p2).is_ok(), "an expired ban admits again");
    }
}
