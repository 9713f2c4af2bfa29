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
//! Delegation: the locks of a file only one mount uses may be handed to
//! that mount (`DelegateLocks`), which then takes and drops them itself
//! with no round trip (SQLite takes about nine per transaction). The masters'
//! tables keep what that mount held when they were delegated; while it
//! keeps them no other session holds a lock there, and any other session's
//! lock command on the file is answered `LockDelegated` without a change:
//! the leader recalls them (the mount lands its queued changes, then
//! `ReturnLocks` writes its locks back) and applies the command after. The
//! delegation is replicated, so it outlives a leader change, and it ends
//! with its session's lease like the session's locks.
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
pub use tessera_proto::locks::{conflict, session_of, set, Want};

/// A mount's lease: when it ends, and the files it holds locks on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRec {
    pub expires: Time,
    pub inos: Vec<u64>,
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

/// The lock session `ino`'s locks are delegated to, if any.
pub fn delegated_to(txn: &Txn, ino: u64) -> io::Result<Option<String>> {
    txn.get(&key::ino(key::LOCK_DELEGATION, ino))
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
        let holder = delegated_to(self.txn, ino)?;
        gone.retain(|s| {
            !list.iter().chain(&other).any(|h| session_of(&h.owner) == *s) && holder.as_deref() != Some(*s)
        });
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
        if let Some(holder) = delegated_to(self.txn, ino)? {
            if holder != session_of(owner) {
                return Ok(Reply::LockDelegated(holder));
            }
        }
        let list = held(self.txn, table, ino)?;
        match set(&list, owner, pid, range.0, range.1, Want::of_fcntl(typ)) {
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

    /// Hands `ino`'s locks to `session` if no other session holds one
    /// there or has them: its own locks on `ino` in the reply.
    pub(super) fn delegate_locks(&mut self, ino: u64, session: &str, lease_ms: u64) -> Result<Reply, Fail> {
        if delegated_to(self.txn, ino)?.is_some_and(|h| h != session) {
            return Ok(Reply::Delegated(None));
        }
        let (posix, flock) = (held(self.txn, key::LOCK, ino)?, held(self.txn, key::FLOCK, ino)?);
        if posix.iter().chain(&flock).any(|h| session_of(&h.owner) != session) {
            return Ok(Reply::Delegated(None));
        }
        self.txn.put(key::ino(key::LOCK_DELEGATION, ino), &session.to_string());
        self.renew(session, Some(ino), lease_ms)?;
        Ok(Reply::Delegated(Some((posix, flock))))
    }

    /// `session` gives `ino`'s locks back; `locks` (fcntl, flock: all of
    /// them the session's) replace its own there. ESTALE when it no longer
    /// had them (its lease ran out and they were released).
    pub(super) fn return_locks(
        &mut self,
        ino: u64,
        session: &str,
        locks: Option<&(Vec<Held>, Vec<Held>)>,
        lease_ms: u64,
    ) -> Result<Reply, Fail> {
        if delegated_to(self.txn, ino)?.is_none_or(|h| h != session) {
            return match locks {
                Some(_) => Err(err(libc::ESTALE, "these locks were no longer delegated to this mount")),
                None => Ok(Reply::None),
            };
        }
        self.txn.delete(key::ino(key::LOCK_DELEGATION, ino));
        if let Some((posix, flock)) = locks {
            if posix.iter().chain(flock).any(|h| session_of(&h.owner) != session || h.start > h.end) {
                return Err(err(libc::EINVAL, "a returned lock is not the session's"));
            }
            for (table, mine) in [(key::LOCK, posix), (key::FLOCK, flock)] {
                let list = held(self.txn, table, ino)?;
                let mut next: Vec<Held> = list.iter().filter(|h| session_of(&h.owner) != session).cloned().collect();
                next.extend(mine.iter().cloned());
                self.put_held(table, ino, &list, &next)?;
            }
        }
        let (posix, flock) = (held(self.txn, key::LOCK, ino)?, held(self.txn, key::FLOCK, ino)?);
        let holds = posix.iter().chain(&flock).any(|h| session_of(&h.owner) == session);
        if holds {
            self.renew(session, Some(ino), lease_ms)?;
        } else {
            // Nothing left there: the session stops listing the file.
            let sk = key::bytes(key::SESSION, session.as_bytes());
            if let Some(mut rec) = self.txn.get::<SessionRec>(&sk)? {
                rec.inos.retain(|&i| i != ino);
                self.txn.put(sk, &rec);
            }
        }
        Ok(Reply::None)
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
                if delegated_to(self.txn, ino)?.is_some_and(|h| h == *s) {
                    self.txn.delete(key::ino(key::LOCK_DELEGATION, ino));
                }
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

    #[test]
    fn lease_end_adds_milliseconds() {
        assert_eq!(add_ms((10, 999_000_000), 1_500), (12, 499_000_000));
    }
}
