//! Exponential reconnect backoff shared by every client link.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Doubling delay between reconnect attempts, reset after a session that ended cleanly.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `min`, doubles up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// Delay the next `wait` will sleep.
    pub fn delay(&self) -> Duration {
        self.next
    }

    /// Back to the shortest delay.
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// Sleeps the current delay and doubles it; false if `shutdown` fired first.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}
