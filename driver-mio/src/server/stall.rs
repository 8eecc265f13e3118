//! [`Stalls`]: how long the loop's rounds and the storage thread's writes take, for `INFO`.
//! A commit waits for both, so a long one is a latency spike every client saw; these figures
//! say which side it came from without a profiler.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A duration counted as a stall.
pub(crate) const SLOW: Duration = Duration::from_millis(50);

/// Durations of one kind of work: the longest seen and how many reached [`SLOW`]. Updated by
/// one thread and read by another (relaxed: the figures are statistics, not a protocol).
#[derive(Debug, Default)]
pub(crate) struct Stalls {
    max_us: AtomicU64,
    slow: AtomicU64,
}

impl Stalls {
    /// Records one piece of work that took `d`; returns whether it was slow.
    pub(crate) fn record(&self, d: Duration) -> bool {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.max_us.fetch_max(us, Ordering::Relaxed);
        let slow = d >= SLOW;
        if slow {
            self.slow.fetch_add(1, Ordering::Relaxed);
        }
        slow
    }

    /// `INFO` lines `{name}_max_us` and `{name}_slow` (at least [`SLOW`]).
    pub(crate) fn info(&self, name: &str) -> String {
        format!(
            "{name}_max_us:{}\r\n{name}_slow:{}\r\n",
            self.max_us.load(Ordering::Relaxed),
            self.slow.load(Ordering::Relaxed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_longest_and_counts_the_slow() {
        let s = Stalls::default();
        assert!(!s.record(Duration::from_micros(700)));
        assert!(s.record(Duration::from_millis(80)));
        assert!(!s.record(Duration::from_millis(2)));
        assert_eq!(s.info("x"), "x_max_us:80000\r\nx_slow:1\r\n");
    }
}
