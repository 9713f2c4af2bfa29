//! Write-behind creates. A mount that acknowledged a create before sending
//! it (see fuse/src/create_behind.rs) already told the kernel the inode
//! number, from a lease of numbers this state machine handed it, and sends
//! the create later, usually in the same Raft entry as the file's first
//! commit: a new small file then costs one Raft round, not two.

use super::apply::{validate_name, Applier};
use super::fail::{err, Fail};
use super::model::*;
use super::perm::check_sticky;
use crate::types::*;

/// Most inode numbers one lease hands out.
pub const MAX_LEASE: u32 = 1 << 16;

impl Applier<'_, '_> {
    /// Reserves `count` inode numbers: no other create will use them.
    pub(super) fn lease_inos(&mut self, count: u32) -> Result<Reply, Fail> {
        if count == 0 || count > MAX_LEASE {
            return Err(err(libc::EINVAL, format!("a lease is of 1 to {MAX_LEASE} inode numbers")));
        }
        let mut c = self.txn.counters()?;
        let first = c.next_ino;
        c.next_ino += u64::from(count);
        self.txn.put_counters(&c);
        Ok(Reply::Inos(first))
    }

    /// The create a commit carries, applied before the commit.
    pub(super) fn create_first(&mut self, ino: u64, c: Option<&BehindCreate>) -> Result<(), Fail> {
        let Some(c) = c else {
            return Ok(());
        };
        if c.ino != ino {
            return Err(err(libc::EINVAL, "the create is of another inode than the commit"));
        }
        self.create_behind(c).map(|_| ())
    }

    /// Makes the regular file `c.ino` named `c.name` in `c.parent`, at the
    /// time the mount acknowledged it (or now, if that is later than now).
    ///
    /// A retry finds it already there and succeeds. Another client may have
    /// created the name since this mount looked it up (its listing is at
    /// most an attribute lifetime old): the name is then taken over, as a
    /// rename over it would, since that is what the later writer of a name
    /// gets either way; a directory there is not replaced.
    pub(super) fn create_behind(&mut self, c: &BehindCreate) -> Result<Inode, Fail> {
        // As its creator, whoever sends it.
        let mut as_creator = self.as_caller(&c.cred);
        let made = as_creator.create_as_creator(c);
        let orphaned = std::mem::take(&mut as_creator.orphaned);
        self.orphaned.extend(orphaned);
        made
    }

    fn create_as_creator(&mut self, c: &BehindCreate) -> Result<Inode, Fail> {
        validate_name(&c.name)?;
        if let Some(d) = self.dentry(c.parent, &c.name)? {
            if d.ino == c.ino {
                return self.inode(c.ino);
            }
            if c.exclusive {
                return Err(err(libc::EEXIST, "file exists"));
            }
            let old = self.inode(d.ino)?;
            if old.is_dir() {
                return Err(err(libc::EISDIR, "a directory took the name"));
            }
            let p = self.dir(c.parent)?;
            check_sticky(&p, &old, self.cred)?;
            self.txn.delete(key::ino_name(key::DENTRY, c.parent, &c.name));
            self.drop_link(old)?;
        }
        let counters = self.txn.counters()?;
        if c.ino < 2 || c.ino >= counters.next_ino {
            return Err(err(libc::EINVAL, format!("inode number {} was never leased", c.ino)));
        }
        if self.txn.inode(c.ino)?.is_some() {
            return Err(err(libc::EEXIST, format!("inode number {} is in use", c.ino)));
        }
        let now = self.now;
        self.now = c.at.min(now);
        let made = self.make(c.parent, &c.name, KIND_REGULAR, c.mode, 0, Vec::new(), Some(c.ino));
        self.now = now;
        made
    }
}
