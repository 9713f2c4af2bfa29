//! Applying one command to the namespace. Everything here is deterministic:
//! the same command on the same state gives the same result on every master.

use super::fail::{err, Fail};
use super::model::*;
use super::perm::{self, check, check_sticky, S_ISGID, W, X};
use super::Txn;
use crate::types::*;
use std::io;

type R2<T> = Result<T, FsErr>;

/// Errors of the store itself abort the apply (and the master), file-system
/// errors are the command's answer.
/// `index` is the entry's Raft log index (the GC epoch of this change).
pub fn apply(txn: &mut Txn, cmd: &Command, index: u64) -> io::Result<CommandResult> {
    let open: &[u64] = match &cmd.op {
        Op::Unlink { open, .. }
        | Op::UnlinkMany { open, .. }
        | Op::Rename { open, .. }
        | Op::RenameSeen { open, .. } => open,
        _ => &[],
    };
    let mut a = Applier { txn, cred: &cmd.cred, now: cmd.now, index, open, orphaned: Vec::new() };
    match a.op(&cmd.op) {
        Ok(r) => Ok(Ok(r)),
        Err(Fail::Fs(e)) => Ok(Err(e)),
        Err(Fail::Io(e)) => Err(e),
    }
}

impl<'a> Applier<'_, 'a> {
    /// An applier for a part of this command made by another caller (one
    /// unlink of a batch, a write-behind create, a setattr riding on a
    /// commit), in the same transaction.
    pub(super) fn as_caller<'b>(&'b mut self, cred: &'b Cred) -> Applier<'b, 'a> {
        Applier { txn: &mut *self.txn, cred, now: self.now, index: self.index, open: self.open, orphaned: Vec::new() }
    }

    /// The setattr riding on a commit, as its own caller would apply it.
    fn then_attrs(&mut self, ino: u64, attrs: Option<&crate::types::PendingAttrs>, r: Reply) -> Result<Reply, Fail> {
        let Some(p) = attrs else { return Ok(r) };
        self.as_caller(&p.cred).setattr(ino, p.mode, p.uid, p.gid, None, p.atime.as_ref(), p.mtime.as_ref())
    }
}

pub fn validate_name(name: &[u8]) -> R2<()> {
    if name.is_empty() || name == b"." || name == b".." {
        return Err(FsErr::new(libc::EINVAL, "invalid name"));
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(FsErr::new(libc::EINVAL, "name contains '/' or NUL"));
    }
    if name.len() > tessera_proto::NAME_MAX {
        return Err(FsErr::new(libc::ENAMETOOLONG, format!("name of {} bytes is too long", name.len())));
    }
    Ok(())
}

pub(super) struct Applier<'t, 'a> {
    pub(super) txn: &'t mut Txn<'a>,
    pub(super) cred: &'t Cred,
    pub(super) now: Time,
    pub(super) index: u64,
    /// Regular files open on the caller's mount (see `drop_link`).
    pub(super) open: &'t [u64],
    /// Files of `open` this command left without a name.
    pub(super) orphaned: Vec<u64>,
}

impl Applier<'_, '_> {
    pub(super) fn inode(&self, ino: u64) -> Result<Inode, Fail> {
        self.txn.inode(ino)?.ok_or_else(|| err(libc::ENOENT, format!("inode {ino} not found")))
    }

    pub(super) fn dir(&self, ino: u64) -> Result<Inode, Fail> {
        let d = self.inode(ino)?;
        if !d.is_dir() {
            return Err(err(libc::ENOTDIR, "not a directory"));
        }
        Ok(d)
    }

    pub(super) fn dentry(&self, parent: u64, name: &[u8]) -> Result<Option<Dentry>, Fail> {
        Ok(self.txn.get(&key::ino_name(key::DENTRY, parent, name))?)
    }

    pub(super) fn touch_dir(&mut self, d: &mut Inode) {
        d.mtime = self.now;
        d.ctime = self.now;
        self.txn.put_inode(d);
    }

    fn op(&mut self, op: &Op) -> Result<Reply, Fail> {
        match op {
            Op::Mkdir { parent, name, mode } => {
                self.make(*parent, name, KIND_DIR, *mode, 0, Vec::new(), None).map(Reply::Attr)
            }
            Op::Create { parent, name, mode, kind, rdev, exclusive, truncate } => {
                self.create(*parent, name, *mode, *kind, *rdev, *exclusive, *truncate)
            }
            Op::Symlink { parent, name, target } => {
                if target.is_empty() || target.len() >= 4096 || target.contains(&0) {
                    return Err(err(libc::ENAMETOOLONG, "invalid symlink target"));
                }
                self.make(*parent, name, KIND_SYMLINK, 0o777, 0, target.clone(), None).map(Reply::Attr)
            }
            Op::Link { ino, new_parent, new_name } => self.link(*ino, *new_parent, new_name),
            Op::Unlink { parent, name, .. } => {
                self.remove(*parent, name, false)?;
                Ok(Reply::Orphaned(std::mem::take(&mut self.orphaned)))
            }
            Op::Rmdir { parent, name } => self.remove(*parent, name, true).map(|_| Reply::None),
            Op::UnlinkMany { items, .. } => {
                let mut outcomes = Vec::with_capacity(items.len());
                for it in items {
                    let mark = self.txn.mark();
                    let mut one = self.as_caller(&it.cred);
                    match one.remove_if(it.parent, &it.name, it.ino) {
                        Ok(()) => {
                            let o = one.orphaned;
                            self.orphaned.extend(o);
                            outcomes.push(None)
                        }
                        Err(Fail::Fs(e)) => {
                            self.txn.rollback(mark);
                            outcomes.push(Some(e));
                        }
                        Err(io) => return Err(io),
                    }
                }
                Ok(Reply::Outcomes(outcomes, std::mem::take(&mut self.orphaned)))
            }
            Op::ReleaseOrphans { inos } => {
                for &ino in inos {
                    let k = key::ino(key::ORPHAN, ino);
                    if self.txn.get_raw(&k)?.is_none() {
                        continue; // released before, or never an orphan
                    }
                    self.txn.delete(k);
                    if let Some(i) = self.txn.inode(ino)?.filter(|i| i.nlink == 0) {
                        self.free_inode(i)?;
                    }
                }
                Ok(Reply::None)
            }
            Op::RenewOrphans { inos } => {
                for &ino in inos {
                    let k = key::ino(key::ORPHAN, ino);
                    if self.txn.get_raw(&k)?.is_some() {
                        self.txn.put(k, &self.now);
                    }
                }
                Ok(Reply::None)
            }
            Op::Rename { parent, name, new_parent, new_name, flags, .. } => {
                self.rename(*parent, name, *new_parent, new_name, *flags)?;
                Ok(Reply::Orphaned(std::mem::take(&mut self.orphaned)))
            }
            Op::RenameSeen { parent, name, new_parent, new_name, flags, ino, replaces, .. } => {
                if self.dentry(*parent, name)?.map(|d| d.ino) != Some(*ino) {
                    return Err(err(libc::ENOENT, "the name names another file now"));
                }
                if self.dentry(*new_parent, new_name)?.map_or(0, |d| d.ino) != *replaces {
                    return Err(err(libc::EEXIST, "the new name names another file now"));
                }
                self.rename(*parent, name, *new_parent, new_name, *flags)?;
                Ok(Reply::Orphaned(std::mem::take(&mut self.orphaned)))
            }
            Op::SetAttr { ino, mode, uid, gid, size, atime, mtime, by_handle } => {
                let size = size.map(|s| (s, *by_handle));
                self.setattr(*ino, *mode, *uid, *gid, size, atime.as_ref(), mtime.as_ref())
            }
            Op::Commit { ino, extents, size, gc_epoch, mtime, splice: None, create, unsealed, attrs } => {
                super::gc::check_not_collected(self.txn, extents, *gc_epoch)?;
                self.create_first(*ino, create.as_ref())?;
                let r = self.commit(*ino, extents.clone(), *size, *mtime, None)?;
                if *unsealed {
                    self.mark_unsealed(*ino, &r);
                }
                self.then_attrs(*ino, attrs.as_deref(), r)
            }
            Op::Commit { ino, size, gc_epoch, mtime, splice: Some(sp), create, unsealed, attrs, .. } => {
                // Only the patches can add references.
                for (_, exts) in &sp.patches {
                    super::gc::check_not_collected(self.txn, exts, *gc_epoch)?;
                }
                self.create_first(*ino, create.as_ref())?;
                // Decoded once: a big file's list is thousands of extents.
                let old = self.extents(*ino)?;
                // An unsealed patch keeps what it replaces, to revert to.
                let before_size = if *unsealed && sp.keep != 0 { Some(self.inode(*ino)?.size) } else { None };
                let list = self.spliced(&old, sp, *size)?;
                let r = self.commit(*ino, list, *size, *mtime, Some(&old))?;
                match before_size {
                    Some(size) => self.mark_unsealed_patch(*ino, &r, sp, &old, size)?,
                    None if *unsealed => self.mark_unsealed(*ino, &r),
                    None => {}
                }
                self.then_attrs(*ino, attrs.as_deref(), r)
            }
            Op::SettleUnsealed { seal, revert } => self.settle_unsealed(seal, revert),
            Op::CreateBehind(c) => {
                let inode = self.create_behind(c)?;
                Ok(Reply::Created { inode, created: true })
            }
            Op::LeaseInos { count } => self.lease_inos(*count),
            Op::TouchAtimes { inos } => {
                for ino in inos {
                    // A file removed since its read has no atime to keep.
                    if let Some(mut i) = self.txn.inode(*ino)? {
                        if super::model::relatime_due(&i, self.now) {
                            i.atime = self.now;
                            self.txn.put_inode(&i);
                        }
                    }
                }
                Ok(Reply::None)
            }
            Op::SetServerState { id, state } => {
                let k = key::bytes(key::SERVER, id.as_bytes());
                let mut rec: ChunkServerRec =
                    self.txn.get(&k)?.ok_or_else(|| err(libc::ENOENT, format!("no chunkserver {id}")))?;
                rec.state = *state;
                self.txn.put(k, &rec);
                Ok(Reply::None)
            }
            Op::CollectGarbage { ids, older_than, orphans } => {
                Ok(Reply::Ids(super::gc::collect(self.txn, ids, *older_than, *orphans, self.index)?))
            }
            Op::GarbageDeleted { ids } => {
                super::gc::deleted(self.txn, ids, self.index)?;
                Ok(Reply::None)
            }
            Op::PruneCollected { floor, limit } => {
                let pruned = super::gc::prune(self.txn, *floor, *limit as usize)?;
                Ok(Reply::Count(pruned))
            }
            Op::SetLock { ino, owner, pid, start, end, typ, lease_ms } => {
                self.set_lock((key::LOCK, *ino), owner, *pid, (*start, *end), *typ, *lease_ms)
            }
            Op::SetFlock { ino, owner, pid, start, end, typ, lease_ms } => {
                self.set_lock((key::FLOCK, *ino), owner, *pid, (*start, *end), *typ, *lease_ms)
            }
            Op::ReleaseLocks { ino, owner } => self.release_locks(*ino, owner),
            Op::RenewSession { session, lease_ms } => self.renew_session(session, *lease_ms),
            Op::ExpireSessions { sessions } => self.expire_sessions(sessions),
            Op::DelegateLocks { ino, session, lease_ms } => self.delegate_locks(*ino, session, *lease_ms),
            Op::ReturnLocks { ino, session, locks, lease_ms } => {
                self.return_locks(*ino, session, locks.as_ref(), *lease_ms)
            }
            Op::SetXattr { ino, name, value, flags } => self.setxattr(*ino, name, value, *flags),
            Op::RemoveXattr { ino, name } => {
                let i = self.inode(*ino)?;
                self.xattr_perm(&i, name)?;
                let k = key::ino_name(key::XATTR, *ino, name);
                if self.txn.get_raw(&k)?.is_none() {
                    return Err(err(libc::ENODATA, "no such attribute"));
                }
                self.txn.delete(k);
                let mut i = i;
                i.xattrs = i.xattrs.saturating_sub(1);
                i.ctime = self.now;
                self.txn.put_inode(&i);
                Ok(Reply::None)
            }
            Op::RevokeCert { serial, name } => {
                let hex = serial.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                if serial.is_empty() || serial.len() > 40 || !hex {
                    return Err(err(libc::EINVAL, "a certificate serial is 1-40 lowercase hex digits"));
                }
                let rec = super::model::RevokedRec { name: name.chars().take(64).collect(), at: self.now };
                self.txn.put(key::bytes(key::REVOKED, serial.as_bytes()), &rec);
                Ok(Reply::None)
            }
            Op::SetTokenKeys { keys } => {
                if keys.is_empty() || keys.len() > 4 {
                    return Err(err(libc::EINVAL, "1 to 4 chunk token keys"));
                }
                self.txn.put(key::TOKEN_KEYS.to_vec(), &keys);
                Ok(Reply::None)
            }
            Op::RegisterChunkserver { id, addr, capacity, zone } => {
                let k = key::bytes(key::SERVER, id.as_bytes());
                // Re-registration keeps the ring state (a draining server stays draining).
                let state = self.txn.get::<ChunkServerRec>(&k)?.map(|r| r.state).unwrap_or_default();
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
    /// A new inode named `name` in `parent`: numbered from the counter, or
    /// `leased` (checked by the caller).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn make(
        &mut self,
        parent: u64,
        name: &[u8],
        kind: i32,
        mode: u32,
        rdev: u32,
        target: Vec<u8>,
        leased: Option<u64>,
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
        let ino = match leased {
            Some(ino) => ino,
            None => {
                c.next_ino += 1;
                c.next_ino - 1
            }
        };
        c.inodes += 1;
        self.txn.put_counters(&c);
        // BSD group semantics under a setgid directory, as Linux does.
        let (gid, mut mode) = if p.mode & S_ISGID != 0 {
            (p.gid, if kind == KIND_DIR { mode | S_ISGID } else { mode })
        } else {
            (self.cred.gid, mode)
        };
        if kind != KIND_DIR && mode & S_ISGID != 0 && self.cred.uid != 0 && !perm::in_group(self.cred, gid) {
            mode &= !S_ISGID;
        }
        let inode = Inode {
            ino,
            kind,
            mode: mode & 0o7777,
            uid: self.cred.uid,
            gid,
            size: if kind == KIND_SYMLINK { target.len() as u64 } else { 0 },
            atime: self.now,
            mtime: self.now,
            ctime: self.now,
            nlink: if kind == KIND_DIR { 2 } else { 1 },
            rdev,
            parent: if kind == KIND_DIR { parent } else { 0 },
            target,
            version: 0,
            xattrs: 0,
        };
        self.txn.put_inode(&inode);
        self.txn.put(key::ino_name(key::DENTRY, parent, name), &Dentry { ino, kind });
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
            return Ok(Reply::Created { inode: i, created: false });
        }
        let kind = if kind == 0 { KIND_REGULAR } else { kind };
        if kind == KIND_DIR || kind == KIND_SYMLINK {
            return Err(err(libc::EINVAL, "create makes files, not directories or symlinks"));
        }
        let i = self.make(parent, name, kind, mode, rdev, Vec::new(), None)?;
        Ok(Reply::Created { inode: i, created: true })
    }

    fn link(&mut self, ino: u64, new_parent: u64, new_name: &[u8]) -> Result<Reply, Fail> {
        validate_name(new_name)?;
        let mut i = self.inode(ino)?;
        if i.is_dir() {
            return Err(err(libc::EPERM, "hard links to directories are not allowed"));
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
        self.txn.put(key::ino_name(key::DENTRY, new_parent, new_name), &Dentry { ino, kind: i.kind });
        self.touch_dir(&mut p);
        Ok(Reply::Attr(i))
    }

    /// Drops one link of `i`; frees the inode and its chunks at zero links,
    /// unless the caller's mount has it open: then it stays, nameless, until
    /// that mount releases it (an orphan, as POSIX keeps an unlinked file
    /// until its last close).
    pub(super) fn drop_link(&mut self, mut i: Inode) -> Result<(), Fail> {
        if i.is_dir() {
            i.nlink = 0;
        } else {
            i.nlink = i.nlink.saturating_sub(1);
        }
        let keep = i.kind == KIND_REGULAR && self.open.contains(&i.ino);
        if i.nlink > 0 || keep {
            i.ctime = self.now;
            self.txn.put_inode(&i);
            if i.nlink == 0 {
                self.txn.put(key::ino(key::ORPHAN, i.ino), &self.now);
                self.orphaned.push(i.ino);
            }
            return Ok(());
        }
        self.free_inode(i)
    }

    /// Frees an inode without names: its chunk references, xattrs, record.
    fn free_inode(&mut self, i: Inode) -> Result<(), Fail> {
        if i.kind == KIND_REGULAR {
            self.replace_extents(i.ino, Vec::new())?;
        }
        for k in self.txn.keys_with_prefix(&key::ino(key::XATTR, i.ino), usize::MAX)? {
            self.txn.delete(k);
        }
        self.txn.delete(key::ino(key::INODE, i.ino));
        let mut c = self.txn.counters()?;
        c.inodes = c.inodes.saturating_sub(1);
        self.txn.put_counters(&c);
        Ok(())
    }

    pub(super) fn is_empty_dir(&self, ino: u64) -> Result<bool, Fail> {
        Ok(self.txn.keys_with_prefix(&key::ino(key::DENTRY, ino), 1)?.is_empty())
    }

    /// Unlinks `name` if it still names `ino` (0: whatever it names).
    fn remove_if(&mut self, parent: u64, name: &[u8], ino: u64) -> Result<(), Fail> {
        if ino != 0 && self.dentry(parent, name)?.is_some_and(|d| d.ino != ino) {
            return Err(err(libc::ENOENT, "the name names another file now"));
        }
        self.remove(parent, name, false)
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
        let d = self.dentry(parent, name)?.ok_or_else(|| err(libc::ENOENT, "no such file or directory"))?;
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

    fn xattr_perm(&self, i: &Inode, name: &[u8]) -> Result<(), Fail> {
        if name.is_empty() || name.len() > 255 {
            return Err(err(libc::ERANGE, "bad attribute name"));
        }
        if name.starts_with(b"user.") {
            if !i.is_dir() && i.kind != KIND_REGULAR {
                return Err(err(libc::EPERM, "user attributes only on files and directories"));
            }
            check(i, self.cred, W, "set attribute")?;
        } else if tessera_proto::xattr_namespace_supported(name) {
            // trusted.* and security.* are root's, as on Linux (which asks
            // CAP_SYS_ADMIN for both): a squashed root is not root.
            if self.cred.uid != 0 {
                return Err(err(libc::EPERM, "trusted and security attributes need root"));
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
        if !exists {
            i.xattrs += 1;
        }
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
        xattrs: 0,
    };
    txn.put_inode(&root);
    let mut c = txn.counters()?;
    c.inodes = c.inodes.max(1);
    txn.put_counters(&c);
    Ok(())
}
