//! Applying one command to the namespace. Everything here is deterministic:
//! the same command on the same state gives the same result on every master.

use super::model::*;
use super::perm::{self, check, check_sticky, is_owner_or_root, S_ISGID, S_ISUID, W, X};
use super::Txn;
use crate::types::*;
use std::io;

type R2<T> = Result<T, FsErr>;

/// Errors of the store itself abort the apply (and the master), file-system
/// errors are the command's answer.
/// `index` is the entry's Raft log index (the GC epoch of this change).
pub fn apply(txn: &mut Txn, cmd: &Command, index: u64) -> io::Result<CommandResult> {
    let mut a = Applier {
        txn,
        cred: &cmd.cred,
        now: cmd.now,
        index,
    };
    match a.op(&cmd.op) {
        Ok(r) => Ok(Ok(r)),
        Err(Fail::Fs(e)) => Ok(Err(e)),
        Err(Fail::Io(e)) => Err(e),
    }
}

pub(super) enum Fail {
    Fs(FsErr),
    Io(io::Error),
}
impl From<FsErr> for Fail {
    fn from(e: FsErr) -> Self {
        Fail::Fs(e)
    }
}
impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail::Io(e)
    }
}

fn err(errno: i32, msg: impl Into<String>) -> Fail {
    Fail::Fs(FsErr::new(errno, msg))
}

pub fn validate_name(name: &[u8]) -> R2<()> {
    if name.is_empty() || name == b"." || name == b".." {
        return Err(FsErr::new(libc::EINVAL, "invalid name"));
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(FsErr::new(libc::EINVAL, "name contains '/' or NUL"));
    }
    if name.len() > tessera_proto::NAME_MAX {
        return Err(FsErr::new(
            libc::ENAMETOOLONG,
            format!("name of {} bytes is too long", name.len()),
        ));
    }
    Ok(())
}

struct Applier<'t, 'a> {
    txn: &'t mut Txn<'a>,
    cred: &'t Cred,
    now: Time,
    index: u64,
}

impl Applier<'_, '_> {
    fn inode(&self, ino: u64) -> Result<Inode, Fail> {
        self.txn
            .inode(ino)?
            .ok_or_else(|| err(libc::ENOENT, format!("inode {ino} not found")))
    }

    fn dir(&self, ino: u64) -> Result<Inode, Fail> {
        let d = self.inode(ino)?;
        if !d.is_dir() {
            return Err(err(libc::ENOTDIR, "not a directory"));
        }
        Ok(d)
    }

    fn dentry(&self, parent: u64, name: &[u8]) -> Result<Option<Dentry>, Fail> {
        Ok(self.txn.get(&key::ino_name(key::DENTRY, parent, name))?)
    }

    fn touch_dir(&mut self, d: &mut Inode) {
        d.mtime = self.now;
        d.ctime = self.now;
        self.txn.put_inode(d);
    }

    fn op(&mut self, op: &Op) -> Result<Reply, Fail> {
        match op {
            Op::Mkdir { parent, name, mode } => self
                .make(*parent, name, KIND_DIR, *mode, 0, Vec::new())
                .map(Reply::Attr),
            Op::Create {
                parent,
                name,
                mode,
                kind,
                rdev,
                exclusive,
                truncate,
            } => self.create(*parent, name, *mode, *kind, *rdev, *exclusive, *truncate),
            Op::Symlink {
                parent,
                name,
                target,
            } => {
                if target.is_empty() || target.len() >= 4096 || target.contains(&0) {
                    return Err(err(libc::ENAMETOOLONG, "invalid symlink target"));
                }
                self.make(*parent, name, KIND_SYMLINK, 0o777, 0, target.clone())
                    .map(Reply::Attr)
            }
            Op::Link {
                ino,
                new_parent,
                new_name,
            } => self.link(*ino, *new_parent, new_name),
            Op::Unlink { parent, name } => self.remove(*parent, name, false).map(|_| Reply::None),
            Op::Rmdir { parent, name } => self.remove(*parent, name, true).map(|_| Reply::None),
            Op::Rename {
                parent,
                name,
                new_parent,
                new_name,
                flags,
            } => self
                .rename(*parent, name, *new_parent, new_name, *flags)
                .map(|_| Reply::None),
            Op::SetAttr {
                ino,
                mode,
                uid,
                gid,
                size,
                atime,
                mtime,
            } => self.setattr(
                *ino,
                *mode,
                *uid,
                *gid,
                *size,
                atime.as_ref(),
                mtime.as_ref(),
            ),
            Op::Commit {
                ino,
                extents,
                size,
                gc_epoch,
            } => {
                super::gc::check_not_collected(self.txn, extents, *gc_epoch)?;
                self.commit(*ino, extents, *size)
            }
            Op::TouchAtime { ino } => {
                let mut i = self.inode(*ino)?;
                i.atime = self.now;
                self.txn.put_inode(&i);
                Ok(Reply::Attr(i))
            }
            Op::SetServerState { id, state } => {
                let k = key::bytes(key::SERVER, id.as_bytes());
                let mut rec: ChunkServerRec = self
                    .txn
                    .get(&k)?
                    .ok_or_else(|| err(libc::ENOENT, format!("no chunkserver {id}")))?;
                rec.state = *state;
                self.txn.put(k, &rec);
                Ok(Reply::None)
            }
            Op::CollectGarbage {
                ids,
                older_than,
                orphans,
            } => Ok(Reply::Ids(super::gc::collect(
                self.txn,
                ids,
                *older_than,
                *orphans,
                self.index,
            )?)),
            Op::GarbageDeleted { ids } => {
                super::gc::deleted(self.txn, ids, self.index)?;
                Ok(Reply::None)
            }
            Op::SetXattr {
                ino,
                name,
                value,
                flags,
            } => self.setxattr(*ino, name, value, *flags),
            Op::RemoveXattr { ino, name } => {
                let i = self.inode(*ino)?;
                self.xattr_perm(&i, name)?;
                let k = key::ino_name(key::XATTR, *ino, name);
                if self.txn.get_raw(&k)?.is_none() {
                    return Err(err(libc::ENODATA, "no such attribute"));
                }
                self.txn.delete(k);
                let mut i = i;
                i.ctime = self.now;
                self.txn.put_inode(&i);
                Ok(Reply::None)
            }
            Op::RegisterChunkserver {
                id,
                addr,
                capacity,
                zone,
            } => {
                let k = key::bytes(key::SERVER, id.as_bytes());
                // Re-registration keeps the ring state (a draining server stays draining).
                let state = self
                    .txn
                    .get::<ChunkServerRec>(&k)?
                    .map(|r| r.state)
                    .unwrap_or_default();
                let rec = ChunkServerRec {
                    id: id.clone(),
                    addr: addr.clone(),
                    capacity: *capacity,
                    zone: zone.clone(),
                    state,
                };
                self.txn.put(key::bytes(key::SERVER, id.as_bytes()), &rec);
                Ok(Reply::None)
            }
        }
    }

    /// Creates a new inode named `name` in `parent`.
    fn make(
        &mut self,
        parent: u64,
        name: &[u8],
        kind: i32,
        mode: u32,
        rdev: u32,
        target: Vec<u8>,
    ) -> Result<Inode, Fail> {
        validate_name(name)?;
        let mut p = self.dir(parent)?;
        check(&p, self.cred, W | X, "create in directory")?;
        if self.dentry(parent, name)?.is_some() {
            return Err(err(libc::EEXIST, "file exists"));
        }
        if p.nlink == 0 {
            return Err(err(libc::ENOENT, "directory was removed"));
        }
        let mut c = self.txn.counters()?;
        let ino = c.next_ino;
        c.next_ino += 1;
        c.inodes += 1;
        self.txn.put_counters(&c);
        // BSD group semantics under a setgid directory, as Linux does.
        let (gid, mut mode) = if p.mode & S_ISGID != 0 {
            (
                p.gid,
                if kind == KIND_DIR {
                    mode | S_ISGID
                } else {
                    mode
                },
            )
        } else {
            (self.cred.gid, mode)
        };
        if kind != KIND_DIR
            && mode & S_ISGID != 0
            && self.cred.uid != 0
            && !perm::in_group(self.cred, gid)
        {
            mode &= !S_ISGID;
        }
        let inode = Inode {
            ino,
            kind,
            mode: mode & 0o7777,
            uid: self.cred.uid,
            gid,
            size: if kind == KIND_SYMLINK {
                target.len() as u64
            } else {
                0
            },
            atime: self.now,
            mtime: self.now,
            ctime: self.now,
            nlink: if kind == KIND_DIR { 2 } else { 1 },
            rdev,
            parent: if kind == KIND_DIR { parent } else { 0 },
            target,
            version: 0,
        };
        self.txn.put_inode(&inode);
        self.txn.put(
            key::ino_name(key::DENTRY, parent, name),
            &Dentry { ino, kind },
        );
        if kind == KIND_DIR {
            p.nlink += 1;
        }
        self.touch_dir(&mut p);
        Ok(inode)
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        parent: u64,
        name: &[u8],
        mode: u32,
        kind: i32,
        rdev: u32,
        excl: bool,
        trunc: bool,
    ) -> Result<Reply, Fail> {
        validate_name(name)?;
        let p = self.dir(parent)?;
        check(&p, self.cred, X, "search directory")?;
        if let Some(d) = self.dentry(parent, name)? {
            if excl {
                return Err(err(libc::EEXIST, "file exists"));
            }
            let mut i = self.inode(d.ino)?;
            if i.is_dir() {
                return Err(err(libc::EISDIR, "is a directory"));
            }
            if trunc && i.kind == KIND_REGULAR && i.size > 0 {
                check(&i, self.cred, W, "truncate")?;
                self.replace_extents(i.ino, Vec::new())?;
                i.size = 0;
                i.mtime = self.now;
                i.ctime = self.now;
                i.version += 1;
                self.txn.put_inode(&i);
            }
            return Ok(Reply::Created {
                inode: i,
                created: false,
            });
        }
        let kind = if kind == 0 { KIND_REGULAR } else { kind };
        if kind == KIND_DIR || kind == KIND_SYMLINK {
            return Err(err(
                libc::EINVAL,
                "create makes files, not directories or symlinks",
            ));
        }
        let i = self.make(parent, name, kind, mode, rdev, Vec::new())?;
        Ok(Reply::Created {
            inode: i,
            created: true,
        })
    }

    fn link(&mut self, ino: u64, new_parent: u64, new_name: &[u8]) -> Result<Reply, Fail> {
        validate_name(new_name)?;
        let mut i = self.inode(ino)?;
        if i.is_dir() {
            return Err(err(
                libc::EPERM,
                "hard links to directories are not allowed",
            ));
        }
        let mut p = self.dir(new_parent)?;
        check(&p, self.cred, W | X, "create in directory")?;
        if self.dentry(new_parent, new_name)?.is_some() {
            return Err(err(libc::EEXIST, "file exists"));
        }
        if i.nlink == 0 {
            return Err(err(libc::ENOENT, "file was removed"));
        }
        if i.nlink >= 65000 {
            return Err(err(libc::EMLINK, "too many links"));
        }
        i.nlink += 1;
        i.ctime = self.now;
        self.txn.put_inode(&i);
        self.txn.put(
            key::ino_name(key::DENTRY, new_parent, new_name),
            &Dentry { ino, kind: i.kind },
        );
        self.touch_dir(&mut p);
        Ok(Reply::Attr(i))
    }

    /// Drops one link of `i`; frees the inode and its chunks at zero links.
    fn drop_link(&mut self, mut i: Inode) -> Result<(), Fail> {
        if i.is_dir() {
            i.nlink = 0;
        } else {
            i.nlink = i.nlink.saturating_sub(1);
        }
        if i.nlink > 0 {
            i.ctime = self.now;
            self.txn.put_inode(&i);
            return Ok(());
        }
        if i.kind == KIND_REGULAR {
            self.replace_extents(i.ino, Vec::new())?;
        }
        for k in self
            .txn
            .keys_with_prefix(&key::ino(key::XATTR, i.ino), usize::MAX)?
        {
            self.txn.delete(k);
        }
        self.txn.delete(key::ino(key::INODE, i.ino));
        let mut c = self.txn.counters()?;
        c.inodes = c.inodes.saturating_sub(1);
        self.txn.put_counters(&c);
        Ok(())
    }

    fn is_empty_dir(&self, ino: u64) -> Result<bool, Fail> {
        Ok(self
            .txn
            .keys_with_prefix(&key::ino(key::DENTRY, ino), 1)?
            .is_empty())
    }

    fn remove(&mut self, parent: u64, name: &[u8], want_dir: bool) -> Result<(), Fail> {
        if name == b"." {
            return Err(err(libc::EINVAL, "cannot remove '.'"));
        }
        if name == b".." {
            return Err(err(libc::ENOTEMPTY, "cannot remove '..'"));
        }
        validate_name(name)?;
        let mut p = self.dir(parent)?;
        check(&p, self.cred, W | X, "remove from directory")?;
        let d = self
            .dentry(parent, name)?
            .ok_or_else(|| err(libc::ENOENT, "no such file or directory"))?;
        let i = self.inode(d.ino)?;
        check_sticky(&p, &i, self.cred)?;
        if want_dir {
            if !i.is_dir() {
                return Err(err(libc::ENOTDIR, "not a directory"));
            }
            if !self.is_empty_dir(i.ino)? {
                return Err(err(libc::ENOTEMPTY, "directory not empty"));
            }
            p.nlink = p.nlink.saturating_sub(1);
        } else if i.is_dir() {
            return Err(err(libc::EISDIR, "is a directory"));
        }
        self.txn.delete(key::ino_name(key::DENTRY, parent, name));
        self.touch_dir(&mut p);
        self.drop_link(i)
    }

    fn rename(
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
        let d1 = self
            .dentry(parent, name)?
            .ok_or_else(|| err(libc::ENOENT, "no such file or directory"))?;
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
            self.txn
                .put(key::ino_name(key::DENTRY, new_parent, new_name), &d1);
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
        self.txn
            .put(key::ino_name(key::DENTRY, new_parent, new_name), &d1);
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

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &mut self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<&TimeSet>,
        mtime: Option<&TimeSet>,
    ) -> Result<Reply, Fail> {
        let mut i = self.inode(ino)?;
        let c = self.cred;
        let mut changed = false;
        if let Some(uid) = uid {
            if uid != i.uid && c.uid != 0 {
                return Err(err(libc::EPERM, "only root may change the owner"));
            }
        }
        if let Some(gid) = gid {
            if gid != i.gid && c.uid != 0 && !(c.uid == i.uid && perm::in_group(c, gid)) {
                return Err(err(libc::EPERM, "not permitted to change the group"));
            }
        }
        if uid.is_some_and(|u| u != i.uid) || gid.is_some_and(|g| g != i.gid) {
            if !i.is_dir() {
                // chown clears setuid, and setgid when group-executable.
                i.mode &= !S_ISUID;
                if i.mode & 0o010 != 0 {
                    i.mode &= !S_ISGID;
                }
            }
            i.uid = uid.unwrap_or(i.uid);
            i.gid = gid.unwrap_or(i.gid);
            changed = true;
        } else if uid.is_some() || gid.is_some() {
            changed = true;
        }
        if let Some(mut m) = mode {
            if !is_owner_or_root(&i, c) {
                return Err(err(libc::EPERM, "only the owner may change the mode"));
            }
            if c.uid != 0 && !i.is_dir() && !perm::in_group(c, i.gid) {
                m &= !S_ISGID;
            }
            i.mode = m & 0o7777;
            changed = true;
        }
        if let Some(size) = size {
            if i.is_dir() {
                return Err(err(libc::EISDIR, "is a directory"));
            }
            if i.kind != KIND_REGULAR {
                return Err(err(libc::EINVAL, "not a regular file"));
            }
            check(&i, c, W, "truncate")?;
            if size != i.size {
                self.resize(&mut i, size)?;
            }
            i.mtime = self.now;
            changed = true;
        }
        for (ts, is_atime) in [(atime, true), (mtime, false)] {
            let Some(ts) = ts else { continue };
            let t = match ts {
                TimeSet::Now => {
                    if !is_owner_or_root(&i, c) && !perm::allowed(&i, c, W) {
                        return Err(err(libc::EACCES, "permission denied: set times"));
                    }
                    self.now
                }
                TimeSet::At(t) => {
                    if !is_owner_or_root(&i, c) {
                        return Err(err(libc::EPERM, "only the owner may set times"));
                    }
                    *t
                }
            };
            if is_atime {
                i.atime = t;
            } else {
                i.mtime = t;
            }
            changed = true;
        }
        if changed {
            i.ctime = self.now;
            self.txn.put_inode(&i);
        }
        Ok(Reply::Attr(i))
    }

    fn extents(&self, ino: u64) -> Result<Extents, Fail> {
        Ok(self
            .txn
            .get(&key::ino(key::EXTENTS, ino))?
            .unwrap_or_default())
    }

    /// Truncates or extends a file's extent list to `size` (holes when growing).
    fn resize(&mut self, i: &mut Inode, size: u64) -> Result<(), Fail> {
        let mut ext = self.extents(i.ino)?;
        let mut total: u64 = ext.iter().map(|e| e.len).sum();
        if size < total {
            let mut kept = Vec::new();
            let mut pos = 0;
            for mut e in ext {
                if pos >= size {
                    break;
                }
                e.len = e.len.min(size - pos);
                pos += e.len;
                kept.push(e);
            }
            ext = kept;
            total = size;
        }
        if size > total {
            ext.push(ExtentRec {
                id: Vec::new(),
                offset: 0,
                len: size - total,
            });
        }
        self.replace_extents(i.ino, ext)?;
        i.size = size;
        i.version += 1;
        Ok(())
    }

    /// Installs a new extent list and moves chunk reference counts.
    fn replace_extents(&mut self, ino: u64, new: Extents) -> Result<(), Fail> {
        let old = self.extents(ino)?;
        let mut c = self.txn.counters()?;
        for e in new.iter().filter(|e| !e.id.is_empty()) {
            let k = key::bytes(key::CHUNK, &e.id);
            let mut r: ChunkRefs = self.txn.get(&k)?.unwrap_or_default();
            if r.refs == 0 {
                c.chunks += 1;
                c.chunk_bytes += e.offset + e.len;
                self.txn.delete(key::bytes(key::GARBAGE, &e.id));
            }
            r.refs += 1;
            r.len = r.len.max(e.offset + e.len);
            self.txn.put(k, &r);
        }
        for e in old.iter().filter(|e| !e.id.is_empty()) {
            let k = key::bytes(key::CHUNK, &e.id);
            let mut r: ChunkRefs = self.txn.get(&k)?.unwrap_or_default();
            r.refs = r.refs.saturating_sub(1);
            if r.refs == 0 {
                c.chunks = c.chunks.saturating_sub(1);
                c.chunk_bytes = c.chunk_bytes.saturating_sub(r.len);
                self.txn.delete(k);
                // Remembered with the time it became garbage (for the GC grace period).
                self.txn.put(key::bytes(key::GARBAGE, &e.id), &self.now);
            } else {
                self.txn.put(k, &r);
            }
        }
        self.txn.put_counters(&c);
        if new.is_empty() {
            self.txn.delete(key::ino(key::EXTENTS, ino));
        } else {
            self.txn.put(key::ino(key::EXTENTS, ino), &new);
        }
        Ok(())
    }

    fn commit(&mut self, ino: u64, extents: &[ExtentRec], size: u64) -> Result<Reply, Fail> {
        let mut i = self.inode(ino)?;
        if i.is_dir() {
            return Err(err(libc::EISDIR, "is a directory"));
        }
        if i.kind != KIND_REGULAR {
            return Err(err(libc::EINVAL, "not a regular file"));
        }
        for e in extents {
            if !(e.id.is_empty() || e.id.len() == 32) {
                return Err(err(libc::EINVAL, "malformed chunk id"));
            }
            if e.offset
                .checked_add(e.len)
                .is_none_or(|end| end > tessera_proto::MAX_CHUNK_SIZE)
            {
                return Err(err(libc::EINVAL, "extent beyond the chunk size limit"));
            }
        }
        let mut ext: Extents = extents.iter().filter(|e| e.len > 0).cloned().collect();
        let total: u64 = ext.iter().map(|e| e.len).sum();
        if total > size {
            return Err(err(
                libc::EINVAL,
                format!("extents cover {total} bytes, size is {size}"),
            ));
        }
        if size > total {
            ext.push(ExtentRec {
                id: Vec::new(),
                offset: 0,
                len: size - total,
            });
        }
        self.replace_extents(ino, ext)?;
        i.size = size;
        i.mtime = self.now;
        i.ctime = self.now;
        i.version += 1;
        // A write by someone other than root drops setuid/setgid.
        if self.cred.uid != 0 {
            i.mode &= !S_ISUID;
            if i.mode & 0o010 != 0 {
                i.mode &= !S_ISGID;
            }
        }
        self.txn.put_inode(&i);
        Ok(Reply::Attr(i))
    }

    fn xattr_perm(&self, i: &Inode, name: &[u8]) -> Result<(), Fail> {
        if name.is_empty() || name.len() > 255 {
            return Err(err(libc::ERANGE, "bad attribute name"));
        }
        if name.starts_with(b"user.") {
            if !i.is_dir() && i.kind != KIND_REGULAR {
                return Err(err(
                    libc::EPERM,
                    "user attributes only on files and directories",
                ));
            }
            check(i, self.cred, W, "set attribute")?;
        } else if name.starts_with(b"trusted.") || name.starts_with(b"security.") {
            if self.cred.uid != 0 && !name.starts_with(b"security.") {
                return Err(err(libc::EPERM, "trusted attributes need root"));
            }
        } else {
            // Including system.posix_acl_*: ACLs are not supported, and
            // accepting them as opaque bytes would make cp -a skip chmod.
            return Err(err(libc::EOPNOTSUPP, "unsupported attribute namespace"));
        }
        Ok(())
    }

    fn setxattr(&mut self, ino: u64, name: &[u8], value: &[u8], flags: u32) -> Result<Reply, Fail> {
        const CREATE: u32 = 1;
        const REPLACE: u32 = 2;
        let mut i = self.inode(ino)?;
        self.xattr_perm(&i, name)?;
        if value.len() > 65536 {
            return Err(err(libc::E2BIG, "attribute value too large"));
        }
        let k = key::ino_name(key::XATTR, ino, name);
        let exists = self.txn.get_raw(&k)?.is_some();
        if flags & CREATE != 0 && exists {
            return Err(err(libc::EEXIST, "attribute exists"));
        }
        if flags & REPLACE != 0 && !exists {
            return Err(err(libc::ENODATA, "no such attribute"));
        }
        self.txn.put_raw(k, value.to_vec());
        i.ctime = self.now;
        self.txn.put_inode(&i);
        Ok(Reply::None)
    }
}

/// Creates the root directory if the namespace is empty (first apply).
pub fn bootstrap(txn: &mut Txn, now: Time) -> io::Result<()> {
    if txn.inode(tessera_proto::ROOT_INO)?.is_some() {
        return Ok(());
    }
    let root = Inode {
        ino: tessera_proto::ROOT_INO,
        kind: KIND_DIR,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        atime: now,
        mtime: now,
        ctime: now,
        nlink: 2,
        rdev: 0,
        parent: tessera_proto::ROOT_INO,
        target: Vec::new(),
        version: 0,
    };
    txn.put_inode(&root);
    let mut c = txn.counters()?;
    c.inodes = c.inodes.max(1);
    txn.put_counters(&c);
    Ok(())
}
