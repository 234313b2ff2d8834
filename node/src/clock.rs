//! The node's hybrid logical clock: versions for last-writer-wins across regions.
//!
//! A timestamp is `physical milliseconds << 16 | logical counter`: it follows wall time, never
//! goes backwards on one node, and stays unique per node even within one millisecond.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bits of the logical counter.
const LOGICAL_BITS: u32 = 16;

/// A hybrid logical clock.
#[derive(Debug, Default)]
pub struct Hlc {
    last: AtomicU64,
}

impl Hlc {
    /// Milliseconds since the Unix epoch, from the system clock.
    pub fn wall_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// A new timestamp, greater than every one this clock returned or observed before.
    pub fn now(&self) -> u64 {
        let phys = Self::wall_ms() << LOGICAL_BITS;
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let next = phys.max(prev + 1);
            match self
                .last
                .compare_exchange_weak(prev, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(p) => prev = p,
            }
        }
    }

    /// Moves the clock past a timestamp seen from elsewhere.
    pub fn observe(&self, ts: u64) {
        self.last.fetch_max(ts, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increasing_and_follows_observed() {
        let c = Hlc::default();
        let a = c.now();
        let b = c.now();
        assert!(b > a);
        c.observe(b + (1000 << LOGICAL_BITS));
        assert!(c.now() > b + (1000 << LOGICAL_BITS));
        assert!(a >> LOGICAL_BITS >= 1_600_000_000_000);
    }
}
