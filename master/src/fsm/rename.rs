//! Rename with POSIX semantics: replacing a target atomically,
//! RENAME_NOREPLACE and RENAME_EXCHANGE, never into its own subtree.

use super::apply::{validate_name, Applier};
use super::fail::{err, Fail};
use super::model::*;
use super::perm::{check, check_sticky, W, X};

impl Applier<'_, '_> {
    pub(super) fn rename(
        &mut self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        flags: u32,
    ) -> Result<(), Fail> {
        const NOREPLACE: u32 = 1;
        const EXCHANGE: u32 = 2;
        validate_name(name)?;
        validate_name(new_name)?;
        if flags & !(NOREPLACE | EXCHANGE) != 0 || flags == NOREPLACE | EXCHANGE {
            return Err(err(libc::EINVAL, "invalid rename flags"));
        }
        let p1 = self.dir(parent)?;
        let p2 = self.dir(new_parent)?;
        check(&p1, self.cred, W | X, "rename from directory")?;
        check(&p2, self.cred, W | X, "rename into directory")?;
        let d1 = self.dentry(parent, name)?.ok_or_else(|| err(libc::ENOENT, "no such file or directory"))?;
        let src = self.inode(d1.ino)?;
        check_sticky(&p1, &src, self.cred)?;
        let d2 = self.dentry(new_parent, new_name)?;
        if flags & EXCHANGE != 0 {
            let d2 = d2.ok_or_else(|| err(libc::ENOENT, "exchange target does not exist"))?;
            let dst = self.inode(d2.ino)?;
            check_sticky(&p2, &dst, self.cred)?;
            if parent != new_parent {
                if src.is_dir() {
                    self.check_not_ancestor(src.ino, new_parent)?;
                }
                if dst.is_dir() {
                    self.check_not_ancestor(dst.ino, parent)?;
                }
            }
            self.txn.put(key::ino_name(key::DENTRY, parent, name), &d2);
            self.txn.put(key::ino_name(key::DENTRY, new_parent, new_name), &d1);
            self.reparent(src, parent, new_parent)?;
            self.reparent(dst, new_parent, parent)?;
            return Ok(());
        }
        if let Some(d2) = d2 {
            if d2.ino == d1.ino {
                return Ok(()); // same file: POSIX says do nothing
            }
            if flags & NOREPLACE != 0 {
                return Err(err(libc::EEXIST, "target exists"));
            }
            let dst = self.inode(d2.ino)?;
            check_sticky(&p2, &dst, self.cred)?;
            if src.is_dir() && !dst.is_dir() {
                return Err(err(libc::ENOTDIR, "target is not a directory"));
            }
            if !src.is_dir() && dst.is_dir() {
                return Err(err(libc::EISDIR, "target is a directory"));
            }
            if dst.is_dir() && !self.is_empty_dir(dst.ino)? {
                return Err(err(libc::ENOTEMPTY, "target directory not empty"));
            }
        }
        if src.is_dir() && parent != new_parent {
            self.check_not_ancestor(src.ino, new_parent)?;
            // Moving a directory rewrites its "..": it must be writable.
            check(&src, self.cred, W, "move directory")?;
        }
        if let Some(d2) = self.dentry(new_parent, new_name)? {
            let dst = self.inode(d2.ino)?;
            if dst.is_dir() {
                let mut p2 = self.dir(new_parent)?;
                p2.nlink = p2.nlink.saturating_sub(1);
                self.txn.put_inode(&p2);
            }
            self.drop_link(dst)?;
        }
        self.txn.delete(key::ino_name(key::DENTRY, parent, name));
        self.txn.put(key::ino_name(key::DENTRY, new_parent, new_name), &d1);
        self.reparent(src, parent, new_parent)
    }

    /// Fixes link counts and times after `i` moved from `from` to `to`.
    fn reparent(&mut self, mut i: Inode, from: u64, to: u64) -> Result<(), Fail> {
        i.ctime = self.now;
        if i.is_dir() && from != to {
            i.parent = to;
            let mut a = self.dir(from)?;
            a.nlink = a.nlink.saturating_sub(1);
            self.txn.put_inode(&a);
            let mut b = self.dir(to)?;
            b.nlink += 1;
            self.txn.put_inode(&b);
        }
        self.txn.put_inode(&i);
        let mut a = self.dir(from)?;
        self.touch_dir(&mut a);
        if from != to {
            let mut b = self.dir(to)?;
            self.touch_dir(&mut b);
        }
        Ok(())
    }

    /// EINVAL if `dir` is `target` or one of its ancestors.
    fn check_not_ancestor(&self, dir: u64, target: u64) -> Result<(), Fail> {
        let mut cur = target;
        for _ in 0..100_000 {
            if cur == dir {
                return Err(err(libc::EINVAL, "cannot move a directory into itself"));
            }
            if cur == tessera_proto::ROOT_INO {
                return Ok(());
            }
            cur = self.inode(cur)?.parent;
        }
        Err(err(libc::ELOOP, "directory tree too deep"))
    }
}
