//! Vardiff on the power-of-two ladder: moves a channel's amount exponent so it submits about
//! the configured shares per minute.

use std::time::{Duration, Instant};

/// Per-channel vardiff state.
#[derive(Debug)]
pub struct PowerOfTwoVardiff {
    window_start: Instant,
    shares: u32,
    interval: Duration,
    shares_per_minute: f64,
}

impl PowerOfTwoVardiff {
    /// Checks every `interval`, aiming at `shares_per_minute`.
    pub fn new(interval: Duration, shares_per_minute: f64) -> Self {
        Self {
            window_start: Instant::now(),
            shares: 0,
            interval,
            shares_per_minute,
        }
    }

    /// Counts an accepted share.
    pub fn on_share(&mut self) {
        self.shares += 1;
    }

    /// Returns a new exponent if the observed rate is off by 2x or more.
    pub fn retarget(&mut self, k: u8, max_k: u8) -> Option<u8> {
        let elapsed = self.window_start.elapsed();
        if elapsed < self.interval {
            return None;
        }
        let minutes = elapsed.as_secs_f64() / 60.0;
        let ratio = f64::from(self.shares) / minutes / self.shares_per_minute;
        let new_k = if ratio >= 2.0 {
            k.saturating_add(ratio.log2().floor() as u8).min(max_k)
        } else if self.shares == 0 {
            // nothing at all: step down only once we waited several expected share intervals
            let expected = self.shares_per_minute * minutes;
            if expected < 4.0 {
                return None;
            }
            k.saturating_sub((expected.log2().floor() as u8).max(1))
        } else if ratio <= 0.5 {
            k.saturating_sub((1.0 / ratio).log2().floor() as u8)
        } else {
            k
        };
        self.window_start = Instant::now();
        self.shares = 0;
        (new_k != k).then_some(new_k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_channel_gets_harder_slow_gets_easier() {
        let mut v = PowerOfTwoVardiff::new(Duration::from_millis(0), 60.0);
        std::thread::sleep(Duration::from_millis(100));
        for _ in 0..100 {
            v.on_share();
        }
        // 100 shares in ~0.1 s against 1/s: far too fast
        let k = v.retarget(3, 62).unwrap();
        assert!(k > 5, "{k}");
        let mut v = PowerOfTwoVardiff::new(Duration::from_millis(0), 6000.0);
        std::thread::sleep(Duration::from_millis(100));
        v.on_share();
        assert!(v.retarget(10, 62).unwrap() < 10);
    }
}
