//! Advisory lock tables, as the masters keep them in their replicated state
//! and as a mount keeps the ones delegated to it: the same rules in both
//! places. A lock belongs to an owner string ("<session>:<kernel owner>");
//! POSIX semantics: a new lock replaces the owner's own locks on its range
//! (splitting them), an unlock splits too.

use serde::{Deserialize, Serialize};

/// A granted advisory lock (fcntl byte range or flock: the whole file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub owner: String,
    pub pid: u32,
    pub start: u64,
    /// Inclusive.
    pub end: u64,
    pub write: bool,
}

/// What a lock request asks for on its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Read,
    Write,
    Unlock,
}

impl Want {
    /// fcntl's lock type (F_RDLCK, F_WRLCK, F_UNLCK) as a request.
    pub fn of_fcntl(typ: i32) -> Want {
        match typ {
            libc::F_WRLCK => Want::Write,
            libc::F_UNLCK => Want::Unlock,
            _ => Want::Read,
        }
    }
}

/// The session (mount id) of a lock owner "<session>:<owner>".
pub fn session_of(owner: &str) -> &str {
    owner.split_once(':').map_or(owner, |(s, _)| s)
}

fn overlaps(a: &Held, start: u64, end: u64) -> bool {
    a.start <= end && start <= a.end
}

/// The first lock of another owner that conflicts with the request.
pub fn conflict<'h>(held: &'h [Held], owner: &str, start: u64, end: u64, write: bool) -> Option<&'h Held> {
    held.iter().find(|h| h.owner != owner && overlaps(h, start, end) && (write || h.write))
}

/// `held` with the owner's range [start, end] replaced by the request (or
/// carved out, for an unlock); Err with the conflicting lock instead.
pub fn set(held: &[Held], owner: &str, pid: u32, start: u64, end: u64, want: Want) -> Result<Vec<Held>, Held> {
    if want != Want::Unlock {
        if let Some(c) = conflict(held, owner, start, end, want == Want::Write) {
            return Err(c.clone());
        }
    }
    let mut kept = Vec::with_capacity(held.len() + 1);
    for h in held {
        if h.owner != owner || !overlaps(h, start, end) {
            kept.push(h.clone());
            continue;
        }
        if h.start < start {
            kept.push(Held { end: start - 1, ..h.clone() });
        }
        if h.end > end {
            kept.push(Held { start: end + 1, ..h.clone() });
        }
    }
    if want != Want::Unlock {
        kept.push(Held { owner: owner.to_string(), pid, start, end, write: want == Want::Write });
    }
    Ok(kept)
}

impl From<&Held> for crate::pb::HeldLock {
    fn from(h: &Held) -> Self {
        crate::pb::HeldLock { owner: h.owner.clone(), pid: h.pid, start: h.start, end: h.end, write: h.write }
    }
}

impl From<&crate::pb::HeldLock> for Held {
    fn from(h: &crate::pb::HeldLock) -> Self {
        Held { owner: h.owner.clone(), pid: h.pid, start: h.start, end: h.end, write: h.write }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(list: &mut Vec<Held>, owner: &str, start: u64, end: u64, want: Want) -> Result<(), Held> {
        *list = set(list, owner, 1, start, end, want)?;
        Ok(())
    }

    #[test]
    fn readers_share_writers_exclude() {
        let mut l = Vec::new();
        assert!(take(&mut l, "a:1", 0, 99, Want::Read).is_ok());
        assert!(take(&mut l, "b:1", 50, 60, Want::Read).is_ok());
        assert_eq!(take(&mut l, "c:1", 0, 10, Want::Write).unwrap_err().owner, "a:1");
        assert!(take(&mut l, "c:1", 100, 200, Want::Write).is_ok(), "disjoint ranges do not conflict");
        l.retain(|h| h.owner != "a:1" && h.owner != "b:1");
        assert!(take(&mut l, "c:1", 0, 10, Want::Write).is_ok());
    }

    #[test]
    fn unlock_splits_a_range() {
        let mut l = Vec::new();
        take(&mut l, "a:1", 0, 99, Want::Write).unwrap();
        take(&mut l, "a:1", 40, 59, Want::Unlock).unwrap();
        assert!(conflict(&l, "b:1", 45, 50, true).is_none());
        assert!(conflict(&l, "b:1", 30, 30, true).is_some());
        assert!(conflict(&l, "b:1", 60, 60, false).is_some());
        // Downgrading its own lock never conflicts with itself.
        assert!(take(&mut l, "a:1", 0, 99, Want::Read).is_ok());
        assert!(conflict(&l, "b:1", 10, 10, false).is_none());
    }

    #[test]
    fn session_is_the_owner_prefix() {
        assert_eq!(session_of("m1:7f"), "m1");
        assert_eq!(session_of("bare"), "bare");
    }
}
