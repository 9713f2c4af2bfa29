//! A master whose disk is nearly full refuses the changes that add to the
//! namespace (creates, links, commits, extended attributes: `Op::adds`)
//! with ENOSPC and a message naming the disk, and keeps serving reads and
//! the small changes that keep them going or free space (unlink, rename,
//! setattr, locks). A Raft log or RocksDB write that fails half way on a
//! full disk is far worse than a refused request; `cluster status` shows
//! the state.

use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long one statvfs answer is reused.
const RECHECK: Duration = Duration::from_millis(500);

pub struct DiskGuard {
    dir: PathBuf,
    /// Free bytes under which changes are refused.
    pub min_free: u64,
    free: AtomicU64,
    checked: Mutex<Option<Instant>>,
}

/// Free bytes for an unprivileged writer on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs is plain data; zeroes are a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and st a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

impl DiskGuard {
    pub fn new(dir: PathBuf, min_free: u64) -> DiskGuard {
        DiskGuard { dir, min_free, free: AtomicU64::new(u64::MAX), checked: Mutex::new(None) }
    }

    /// Free bytes on the master's disk (at most RECHECK old).
    pub fn free(&self) -> u64 {
        let mut checked = self.checked.lock();
        if checked.is_none_or(|t| t.elapsed() >= RECHECK) {
            match free_bytes(&self.dir) {
                Ok(f) => self.free.store(f, Ordering::Relaxed),
                Err(e) => tracing::warn!(dir = %self.dir.display(), error = %e, "statvfs of the master's disk failed"),
            }
            *checked = Some(Instant::now());
        }
        self.free.load(Ordering::Relaxed)
    }

    /// Whether the disk is too full for new changes.
    pub fn full(&self) -> bool {
        self.free() < self.min_free
    }

    /// The refusal's message.
    pub fn refusal(&self) -> String {
        format!(
            "master disk nearly full: {} MiB free at {}, changes need {} MiB (remove files, or free or grow that disk)",
            self.free() >> 20,
            self.dir.display(),
            self.min_free >> 20
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_under_the_minimum_is_full() {
        let tmp = tempfile::tempdir().unwrap();
        let free = free_bytes(tmp.path()).unwrap();
        assert!(free > 0);
        assert!(!DiskGuard::new(tmp.path().into(), 0).full());
        let g = DiskGuard::new(tmp.path().into(), u64::MAX);
        assert!(g.full());
        assert!(g.refusal().contains("nearly full"), "{}", g.refusal());
    }
}
