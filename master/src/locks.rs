//! Advisory locks, held in the leader's memory so that they exclude across
//! every mount. A lock belongs to an owner string chosen by the mount
//! ("<mount id>:<kernel lock owner>"). POSIX semantics: a new lock replaces
//! the owner's own locks on the range (splitting them), unlock splits too.
//!
//! Locks are soft state: a leader change or a mount that dies without
//! releasing loses them, as NFSv3's NLM does without a lock recovery phase.

use std::collections::HashMap;
use std::sync::Mutex;

pub const F_RDLCK: i32 = libc::F_RDLCK;
pub const F_WRLCK: i32 = libc::F_WRLCK;
pub const F_UNLCK: i32 = libc::F_UNLCK;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub owner: String,
    pub pid: u32,
    pub start: u64,
    /// Inclusive.
    pub end: u64,
    pub write: bool,
}

#[derive(Default)]
pub struct LockTable {
    inner: Mutex<HashMap<u64, Vec<Held>>>,
}

fn overlaps(a: &Held, start: u64, end: u64) -> bool {
    a.start <= end && start <= a.end
}

impl LockTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<Held>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first lock of another owner that conflicts with the request.
    pub fn conflict(&self, ino: u64, owner: &str, start: u64, end: u64, write: bool) -> Option<Held> {
        let g = self.lock();
        g.get(&ino)?.iter().find(|h| h.owner != owner && overlaps(h, start, end) && (write || h.write)).cloned()
    }

    /// Takes the lock if nothing conflicts (or unlocks for F_UNLCK).
    pub fn set(&self, ino: u64, owner: &str, pid: u32, start: u64, end: u64, typ: i32) -> Result<(), Held> {
        if typ != F_UNLCK {
            if let Some(c) = self.conflict(ino, owner, start, end, typ == F_WRLCK) {
                return Err(c);
            }
        }
        let mut g = self.lock();
        let list = g.entry(ino).or_default();
        // Carve [start, end] out of this owner's existing locks.
        let mut kept = Vec::with_capacity(list.len() + 1);
        for h in list.drain(..) {
            if h.owner != owner || !overlaps(&h, start, end) {
                kept.push(h);
                continue;
            }
            if h.start < start {
                kept.push(Held { end: start - 1, ..h.clone() });
            }
            if h.end > end {
                kept.push(Held { start: end + 1, ..h.clone() });
            }
        }
        if typ != F_UNLCK {
            kept.push(Held { owner: owner.to_string(), pid, start, end, write: typ == F_WRLCK });
        }
        if kept.is_empty() {
            g.remove(&ino);
        } else {
            *list = kept;
        }
        Ok(())
    }

    pub fn release(&self, ino: u64, owner: &str) {
        let mut g = self.lock();
        if let Some(list) = g.get_mut(&ino) {
            list.retain(|h| h.owner != owner);
            if list.is_empty() {
                g.remove(&ino);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_share_writers_exclude() {
        let t = LockTable::default();
        assert!(t.set(1, "a", 1, 0, 99, F_RDLCK).is_ok());
        assert!(t.set(1, "b", 2, 50, 60, F_RDLCK).is_ok());
        assert_eq!(t.set(1, "c", 3, 0, 10, F_WRLCK).unwrap_err().owner, "a");
        assert!(t.set(1, "c", 3, 100, 200, F_WRLCK).is_ok(), "disjoint ranges do not conflict");
        t.release(1, "a");
        t.release(1, "b");
        assert!(t.set(1, "c", 3, 0, 10, F_WRLCK).is_ok());
    }

    #[test]
    fn unlock_splits_a_range() {
        let t = LockTable::default();
        t.set(7, "a", 1, 0, 99, F_WRLCK).unwrap();
        t.set(7, "a", 1, 40, 59, F_UNLCK).unwrap();
        assert!(t.conflict(7, "b", 45, 50, true).is_none());
        assert!(t.conflict(7, "b", 30, 30, true).is_some());
        assert!(t.conflict(7, "b", 60, 60, false).is_some());
        // Downgrading its own lock never conflicts with itself.
        assert!(t.set(7, "a", 1, 0, 99, F_RDLCK).is_ok());
        assert!(t.conflict(7, "b", 10, 10, false).is_none());
    }
}
