//! Free space on the data disk, and the reserve that keeps a node from filling it.
//!
//! A node whose disk fills stops its Raft groups and exits (fail-stop, see `Node::failed`).
//! To keep ordinary growth from getting there, a node refuses client writes that add data
//! while its data disk has less free space than `min_free_disk_mb`, and accepts deletes, so
//! users can make room. Writes are proposed on the partition's leader, so it is the leader's
//! disk that decides. The replicas of a partition hold the same data and fill at about the
//! same rate; a follower whose disk is smaller, or shared with other data, can still fill,
//! and then that node stops while the other replicas go on.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::StorageError;

/// The data disk's free space as last measured, against the configured reserve.
#[derive(Debug)]
pub struct DiskReserve {
    path: PathBuf,
    /// Bytes to keep free.
    reserve: AtomicU64,
    /// Bytes available to this process at the last measurement (`u64::MAX` before any).
    free: AtomicU64,
    low: AtomicBool,
}

impl DiskReserve {
    /// A reserve of `reserve_mb` MiB on the filesystem holding `path`; 0 turns it off.
    pub fn new(path: &Path, reserve_mb: u64) -> DiskReserve {
        DiskReserve {
            path: path.to_path_buf(),
            reserve: AtomicU64::new(reserve_mb.saturating_mul(1 << 20)),
            free: AtomicU64::new(u64::MAX),
            low: AtomicBool::new(false),
        }
    }

    /// Measures the free space now (`statvfs`: a quick syscall, but blocking, so async
    /// callers run it on the blocking pool) and returns it in bytes.
    pub fn refresh(&self) -> Result<u64, StorageError> {
        let st = rustix::fs::statvfs(&self.path).map_err(|e| {
            StorageError::Task(format!(
                "measuring free space of {}: {e}",
                self.path.display()
            ))
        })?;
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        self.record(free);
        Ok(free)
    }

    /// Changes the reserve at run time (tests use it to put a node below it); it applies from
    /// the next measurement.
    pub fn set_reserve_mb(&self, reserve_mb: u64) {
        self.reserve
            .store(reserve_mb.saturating_mul(1 << 20), Ordering::Relaxed);
    }

    /// Records a measurement of `free` bytes; logs when the disk goes below or back above
    /// the reserve.
    fn record(&self, free: u64) {
        self.free.store(free, Ordering::Relaxed);
        let reserve = self.reserve.load(Ordering::Relaxed);
        let low = free < reserve;
        if self.low.swap(low, Ordering::Relaxed) != low {
            let (free_mb, reserve_mb) = (free >> 20, reserve >> 20);
            if low {
                tracing::warn!(
                    free_mb,
                    reserve_mb,
                    path = %self.path.display(),
                    "data disk below its reserve: writes that add data are refused"
                );
            } else {
                tracing::info!(free_mb, reserve_mb, "data disk above its reserve again");
            }
        }
    }

    /// Whether a write that adds data may go ahead; the error says why not, for the client.
    pub fn check_room(&self) -> Result<(), String> {
        if !self.low.load(Ordering::Relaxed) {
            return Ok(());
        }
        Err(format!(
            "the data disk has {} MiB free, below min_free_disk_mb = {}: writes that add data \
             are refused until space is freed (deletes are accepted)",
            self.free.load(Ordering::Relaxed) >> 20,
            self.reserve.load(Ordering::Relaxed) >> 20
        ))
    }

    /// Free bytes at the last measurement (`u64::MAX` before the first).
    pub fn free_bytes(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_reserve_refuses_and_above_accepts_again() {
        let d = DiskReserve::new(Path::new("."), 100);
        assert!(d.check_room().is_ok(), "before any measurement");
        d.record(99 << 20);
        let e = d.check_room().unwrap_err();
        assert!(
            e.contains("99 MiB free") && e.contains("min_free_disk_mb = 100"),
            "{e}"
        );
        d.record(100 << 20);
        assert!(d.check_room().is_ok());
        d.set_reserve_mb(101);
        assert!(d.check_room().is_ok(), "applies from the next measurement");
        d.record(100 << 20);
        assert!(d.check_room().is_err());
    }

    #[test]
    fn a_zero_reserve_never_refuses() {
        let d = DiskReserve::new(Path::new("."), 0);
        d.record(0);
        assert!(d.check_room().is_ok());
    }

    #[test]
    fn measures_a_real_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let d = DiskReserve::new(dir.path(), 0);
        let free = d.refresh().unwrap();
        assert!(free > 0 && free < u64::MAX);
        assert_eq!(d.free_bytes(), free);
        let gone = DiskReserve::new(&dir.path().join("missing"), 0);
        let e = gone.refresh().unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
    }
}
