//! Advisory locks (flock and fcntl byte ranges) in the replicated state, so
//! that they exclude across every mount and survive a leader change. The
//! conflict check and the insert are one command applied in log order:
//! two conflicting requests can never both be granted.
//!
//! A lock belongs to an owner string chosen by the mount ("<session>:<kernel
//! lock owner>"); the session is the mount's id. Every lock command renews
//! its session's lease, and a mount holding locks renews it on its own
//! (`RenewSession`); the leader's healer ends sessions whose lease ran out
//! (`ExpireSessions`), which releases their locks: a dead or partitioned
//! mount's locks go after one lease, as NFSv4's do. POSIX semantics: a new
//! lock replaces the owner's own locks on the range (splitting them), an
//! unlock splits too.
//!
//! fcntl locks (`key::LOCK`) and flock locks (`key::FLOCK`, whole file,
//! owned by the open file) are kept in two tables: as on Linux, one kind
//! never conflicts with the other. A session lists an inode while it holds
//! a lock of either kind there.

use super::apply::Applier;
use super::fail::{err, Fail};
use super::model::key;
use super::Txn;
use crate::types::{Reply, Time};
use serde::{Deserialize, Serialize};
use std::io;

pub const F_RDLCK: i32 = libc::F_RDLCK;
pub const F_WRLCK: i32 = libc::F_WRLCK;
pub const F_UNLCK: i32 = libc::F_UNLCK;

pub use super::model::Held;

/// A mount's lease: when it ends, and the files it holds locks on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRec {
    pub expires: Time,
    pub inos: Vec<u64>,
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
/// carved out, for F_UNLCK); Err with the conflicting lock instead.
pub fn set(held: &[Held], owner: &str, pid: u32, start: u64, end: u64, typ: i32) -> Result<Vec<Held>, Held> {
    if typ != F_UNLCK {
        if let Some(c) = conflict(held, owner, start, end, typ == F_WRLCK) {
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
    if typ != F_UNLCK {
        kept.push(Held { owner: owner.to_string(), pid, start, end, write: typ == F_WRLCK });
    }
    Ok(kept)
}

fn add_ms(t: Time, ms: u64) -> Time {
    let total = u64::from(t.1) + (ms % 1000) * 1_000_000;
    (t.0 + (ms / 1000) as i64 + (total / 1_000_000_000) as i64, (total % 1_000_000_000) as u32)
}

/// The two lock tables.
pub const TABLES: [u8; 2] = [key::LOCK, key::FLOCK];

/// The locks of one kind held on `ino`.
pub fn held(txn: &Txn, table: u8, ino: u64) -> io::Result<Vec<Held>> {
    Ok(txn.get(&key::ino(table, ino))?.unwrap_or_default())
}

impl Applier<'_, '_> {
    /// Stores `ino`'s locks; a session left with no lock on `ino` stops
    /// listing it (a long-lived mount's list stays as short as what it holds).
    fn put_held(&mut self, table: u8, ino: u64, before: &[Held], list: &[Held]) -> Result<(), Fail> {
        let k = key::ino(table, ino);
        if list.is_empty() {
            self.txn.delete(k);
        } else {
            self.txn.put(k, &list.to_vec());
        }
        let other = held(self.txn, if table == key::LOCK { key::FLOCK } else { key::LOCK }, ino)?;
        let mut gone: Vec<&str> = before.iter().map(|h| session_of(&h.owner)).collect();
        gone.sort_unstable();
        gone.dedup();
        gone.retain(|s| !list.iter().chain(&other).any(|h| session_of(&h.owner) == *s));
        for s in gone {
            let sk = key::bytes(key::SESSION, s.as_bytes());
            if let Some(mut rec) = self.txn.get::<SessionRec>(&sk)? {
                rec.inos.retain(|&i| i != ino);
                self.txn.put(sk, &rec);
            }
        }
        Ok(())
    }

    /// Extends `session`'s lease to now + `lease_ms`, noting `ino` among
    /// its files; false if the session is unknown and `ino` is None.
    fn renew(&mut self, session: &str, ino: Option<u64>, lease_ms: u64) -> Result<bool, Fail> {
        let k = key::bytes(key::SESSION, session.as_bytes());
        let mut rec: SessionRec = match self.txn.get(&k)? {
            Some(r) => r,
            None if ino.is_none() => return Ok(false),
            None => SessionRec::default(),
        };
        rec.expires = add_ms(self.now, lease_ms);
        if let Some(ino) = ino {
            if !rec.inos.contains(&ino) {
                rec.inos.push(ino);
            }
        }
        self.txn.put(k, &rec);
        Ok(true)
    }

    /// Takes or drops a lock in `table` (`key::LOCK` or `key::FLOCK`).
    pub(super) fn set_lock(
        &mut self,
        (table, ino): (u8, u64),
        owner: &str,
        pid: u32,
        range: (u64, u64),
        typ: i32,
        lease_ms: u64,
    ) -> Result<Reply, Fail> {
        let list = held(self.txn, table, ino)?;
        match set(&list, owner, pid, range.0, range.1, typ) {
            Ok(next) => {
                self.put_held(table, ino, &list, &next)?;
                let holds = next.iter().any(|h| session_of(&h.owner) == session_of(owner));
                self.renew(session_of(owner), holds.then_some(ino), lease_ms)?;
                Ok(Reply::Lock(None))
            }
            Err(c) => Ok(Reply::Lock(Some(c))),
        }
    }

    /// Drops every lock of either kind `owner` holds on `ino`.
    pub(super) fn release_locks(&mut self, ino: u64, owner: &str) -> Result<Reply, Fail> {
        for table in TABLES {
            let list = held(self.txn, table, ino)?;
            let next: Vec<Held> = list.iter().filter(|h| h.owner != owner).cloned().collect();
            if next.len() != list.len() {
                self.put_held(table, ino, &list, &next)?;
            }
        }
        Ok(Reply::None)
    }

    pub(super) fn renew_session(&mut self, session: &str, lease_ms: u64) -> Result<Reply, Fail> {
        if self.renew(session, None, lease_ms)? {
            Ok(Reply::None)
        } else {
            // Its lease ran out and its locks are gone: the mount must know.
            Err(err(libc::ESTALE, "lock session expired; its locks were released"))
        }
    }

    /// Ends the sessions whose lease has run out by this command's time
    /// (a renewal may have landed since the leader chose them), releasing
    /// every lock they hold.
    pub(super) fn expire_sessions(&mut self, sessions: &[String]) -> Result<Reply, Fail> {
        for s in sessions {
            let k = key::bytes(key::SESSION, s.as_bytes());
            let Some(rec) = self.txn.get::<SessionRec>(&k)? else { continue };
            if rec.expires > self.now {
                continue;
            }
            for ino in rec.inos {
                for table in TABLES {
                    let list = held(self.txn, table, ino)?;
                    let next: Vec<Held> = list.iter().filter(|h| session_of(&h.owner) != s).cloned().collect();
                    if next.len() != list.len() {
                        self.put_held(table, ino, &list, &next)?;
                    }
                }
            }
            self.txn.delete(k);
        }
        Ok(Reply::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(list: &mut Vec<Held>, owner: &str, start: u64, end: u64, typ: i32) -> Result<(), Held> {
        *list = set(list, owner, 1, start, end, typ)?;
        Ok(())
    }

    #[test]
    fn readers_share_writers_exclude() {
        let mut l = Vec::new();
        assert!(take(&mut l, "a:1", 0, 99, F_RDLCK).is_ok());
        assert!(take(&mut l, "b:1", 50, 60, F_RDLCK).is_ok());
        assert_eq!(take(&mut l, "c:1", 0, 10, F_WRLCK).unwrap_err().owner, "a:1");
        assert!(take(&mut l, "c:1", 100, 200, F_WRLCK).is_ok(), "disjoint ranges do not conflict");
        l.retain(|h| h.owner != "a:1" && h.owner != "b:1");
        assert!(take(&mut l, "c:1", 0, 10, F_WRLCK).is_ok());
    }

    #[test]
    fn unlock_splits_a_range() {
        let mut l = Vec::new();
        take(&mut l, "a:1", 0, 99, F_WRLCK).unwrap();
        take(&mut l, "a:1", 40, 59, F_UNLCK).unwrap();
        assert!(conflict(&l, "b:1", 45, 50, true).is_none());
        assert!(conflict(&l, "b:1", 30, 30, true).is_some());
        assert!(conflict(&l, "b:1", 60, 60, false).is_some());
        // Downgrading its own lock never conflicts with itself.
        assert!(take(&mut l, "a:1", 0, 99, F_RDLCK).is_ok());
        assert!(conflict(&l, "b:1", 10, 10, false).is_none());
    }

    #[test]
    fn session_is_the_owner_prefix() {
        assert_eq!(session_of("m1:7f"), "m1");
        assert_eq!(session_of("bare"), "bare");
        assert_eq!(add_ms((10, 999_000_000), 1_500), (12, 499_000_000));
    }
}
