//! The node's hybrid logical clock: versions for last-writer-wins across regions.
//!
//! A timestamp is `physical milliseconds << 16 | logical counter`: it follows wall time, never
//! goes backwards on one node, and stays unique per node even within one millisecond.
//!
//! The wall time read is the system clock plus an offset, zero in production. The
//! fault-injection suite sets it (`testing.clock_offset_ms`, the `Testing` gRPC service) to
//! skew one node's clock; the timestamps stay monotonic when the offset moves backwards.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bits of the logical counter.
const LOGICAL_BITS: u32 = 16;

/// A hybrid logical clock.
#[derive(Debug, Default)]
pub struct Hlc {
    last: AtomicU64,
    /// Added to the system clock's milliseconds (test-only skew; 0 in production).
    offset_ms: AtomicI64,
}

impl Hlc {
    /// A clock whose wall time is the system clock shifted by `offset_ms`.
    pub fn with_offset_ms(offset_ms: i64) -> Hlc {
        Hlc {
            last: AtomicU64::new(0),
            offset_ms: AtomicI64::new(offset_ms),
        }
    }

    /// Milliseconds since the Unix epoch, from the system clock, without any offset. Use
    /// [`Hlc::wall_ms`] of the node's clock for the node's notion of time.
    pub fn system_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// This clock's wall time: the system clock plus the offset, in ms since the Unix epoch.
    pub fn wall_ms(&self) -> u64 {
        let ms = (Self::system_ms() as i64).saturating_add(self.offset_ms());
        ms.max(0) as u64
    }

    /// The current wall-clock offset, ms.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Sets the wall-clock offset and returns the previous one. Timestamps stay monotonic
    /// when it moves backwards: [`Hlc::now`] never returns less than it returned before.
    pub fn set_offset_ms(&self, offset_ms: i64) -> i64 {
        self.offset_ms.swap(offset_ms, Ordering::Relaxed)
    }

    /// A new timestamp, greater than every one this clock returned or observed before.
    pub fn now(&self) -> u64 {
        let phys = self.wall_ms() << LOGICAL_BITS;
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

    #[test]
    fn offset_moves_wall_time_and_now_never_goes_backwards() {
        let c = Hlc::with_offset_ms(0);
        let before = c.now();
        // A forward jump moves the clock forward by about the jump.
        assert_eq!(c.set_offset_ms(60_000), 0);
        assert_eq!(c.offset_ms(), 60_000);
        let ahead = c.now();
        assert!(ahead >> LOGICAL_BITS >= (before >> LOGICAL_BITS) + 60_000);
        assert!(c.wall_ms() >= Hlc::system_ms() + 59_000);
        // A backward jump moves the wall time back, but never the timestamps.
        assert_eq!(c.set_offset_ms(-60_000), 60_000);
        assert!(c.wall_ms() + 119_000 <= ahead >> LOGICAL_BITS);
        let mut prev = ahead;
        for _ in 0..1000 {
            let t = c.now();
            assert!(t > prev);
            prev = t;
        }
        // While the wall time is behind, only the logical counter advances.
        assert!(prev >> LOGICAL_BITS < (ahead >> LOGICAL_BITS) + 1000);
    }

    #[test]
    fn initial_offset_applies() {
        let c = Hlc::with_offset_ms(-3_600_000);
        assert!(c.wall_ms() + 3_500_000 < Hlc::system_ms());
        assert!(c.now() >> LOGICAL_BITS < Hlc::system_ms() - 3_500_000);
    }
}
