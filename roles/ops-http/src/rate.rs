//! Rates from cumulative counters sampled over time: hashrate from accepted work, for the
//! dashboards' figures and charts.

use std::collections::VecDeque;

/// A rate over the last `window` samples of a cumulative total.
#[derive(Debug, Clone)]
pub struct RateWindow {
    window: usize,
    samples: VecDeque<(i64, f64)>,
}

impl RateWindow {
    /// Averages over `window` sample intervals (single shares are too lumpy to show).
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            samples: VecDeque::new(),
        }
    }

    /// Adds the total at `at_ms`; returns the rate per second over the window (0 until two
    /// samples exist).
    pub fn push(&mut self, at_ms: i64, total: f64) -> f64 {
        self.samples.push_back((at_ms, total));
        while self.samples.len() > self.window + 1 {
            self.samples.pop_front();
        }
        match self.samples.front() {
            Some(&(t0, v0)) if at_ms > t0 => (total - v0).max(0.0) * 1000.0 / (at_ms - t0) as f64,
            _ => 0.0,
        }
    }
}

/// The last `capacity` `(unix ms, value)` points, for a chart.
#[derive(Debug, Clone)]
pub struct History {
    capacity: usize,
    points: VecDeque<(i64, f64)>,
}

impl History {
    /// Keeps `capacity` points.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            points: VecDeque::new(),
        }
    }

    /// Appends a point, dropping the oldest beyond capacity.
    pub fn push(&mut self, at_ms: i64, value: f64) {
        self.points.push_back((at_ms, value));
        while self.points.len() > self.capacity {
            self.points.pop_front();
        }
    }

    /// The newest point's value (0 before the first).
    pub fn last_value(&self) -> f64 {
        self.points.back().map_or(0.0, |p| p.1)
    }

    /// The points, oldest first.
    pub fn points(&self) -> Vec<(i64, f64)> {
        self.points.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_the_window() {
        let mut w = RateWindow::new(2);
        assert_eq!(w.push(0, 0.0), 0.0);
        assert_eq!(w.push(1000, 100.0), 100.0);
        assert_eq!(w.push(2000, 300.0), 150.0);
        // The first sample left the window.
        assert_eq!(w.push(3000, 300.0), 100.0);
        let mut h = History::new(2);
        for i in 0..3 {
            h.push(i, i as f64);
        }
        assert_eq!(h.points(), vec![(1, 1.0), (2, 2.0)]);
        assert_eq!(h.last_value(), 2.0);
    }
}
