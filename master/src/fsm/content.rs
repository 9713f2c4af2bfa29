//! Attributes and content: setattr (chmod, chown, utimens, truncate) and
//! the commit of a file's extent list with its chunk reference counts.

use super::apply::Applier;
use super::fail::{err, Fail};
use super::model::*;
use super::perm::{self, check, is_owner_or_root, S_ISGID, S_ISUID, W};
use crate::types::*;
use tessera_proto::pb::Extent;

impl Applier<'_, '_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn setattr(
        &mut self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<(u64, bool)>,
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
            // A write by anyone but the owner clears setuid and setgid: the
            // kernel asks for it as a chmod by the writer, which needs only
            // write permission (as on a local file system).
            let (old, new) = (i.mode & 0o7777, m & 0o7777);
            let removed = old & !new;
            // The new mode is the old one less setuid and/or setgid, nothing else.
            let drops_privs_only = removed != 0 && new & !old == 0 && removed & !(S_ISUID | S_ISGID) == 0;
            let writer_drops_privs = drops_privs_only && !i.is_dir() && perm::allowed(&i, c, W);
            if !is_owner_or_root(&i, c) && !writer_drops_privs {
                return Err(err(libc::EPERM, "only the owner may change the mode"));
            }
            if c.uid != 0 && !i.is_dir() && !perm::in_group(c, i.gid) {
                m &= !S_ISGID;
            }
            i.mode = m & 0o7777;
            changed = true;
        }
        if let Some((size, by_handle)) = size {
            if i.is_dir() {
                return Err(err(libc::EISDIR, "is a directory"));
            }
            if i.kind != KIND_REGULAR {
                return Err(err(libc::EINVAL, "not a regular file"));
            }
            if !by_handle {
                check(&i, c, W, "truncate")?;
            }
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

    pub(super) fn extents(&self, ino: u64) -> Result<Extents, Fail> {
        Ok(self.txn.get(&key::ino(key::EXTENTS, ino))?.unwrap_or_default())
    }

    /// Truncates or extends a file's extent list to `size` (holes when growing).
    pub(super) fn resize(&mut self, i: &mut Inode, size: u64) -> Result<(), Fail> {
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
            ext.push(ExtentRec { id: Vec::new(), offset: 0, len: size - total });
        }
        self.replace_extents(i.ino, ext)?;
        i.size = size;
        i.version += 1;
        Ok(())
    }

    /// Installs a new extent list and moves chunk reference counts. Only
    /// chunks whose count changes are touched: a commit that splices a few
    /// extents into a file of thousands costs a few updates, not thousands.
    pub(super) fn replace_extents(&mut self, ino: u64, new: Extents) -> Result<(), Fail> {
        let old = self.extents(ino)?;
        self.install_extents(ino, &old, new)
    }

    /// `replace_extents` for a caller that has the file's list (`old`)
    /// decoded already: a big file's list is thousands of extents.
    fn install_extents(&mut self, ino: u64, old: &[ExtentRec], new: Extents) -> Result<(), Fail> {
        self.move_refs(old, &new)?;
        if new.is_empty() {
            self.txn.delete(key::ino(key::EXTENTS, ino));
        } else {
            self.txn.put(key::ino(key::EXTENTS, ino), &new);
        }
        Ok(())
    }

    /// Moves chunk reference counts from the extents `old` to `new` (a
    /// chunk whose count falls to zero becomes garbage).
    pub(super) fn move_refs(&mut self, old: &[ExtentRec], new: &[ExtentRec]) -> Result<(), Fail> {
        // A commit changes a few extents of a list: what both lists share
        // at their start and end moves nothing.
        let head = old.iter().zip(new).take_while(|(a, b)| a == b).count();
        let (old, new) = (&old[head..], &new[head..]);
        let tail = old.iter().rev().zip(new.iter().rev()).take_while(|(a, b)| a == b).count();
        let (old, new) = (&old[..old.len() - tail], &new[..new.len() - tail]);
        // id -> (change in references, furthest byte the new list uses).
        let mut delta: std::collections::BTreeMap<&[u8], (i64, u64)> = Default::default();
        for e in new.iter().filter(|e| !e.id.is_empty()) {
            let d = delta.entry(&e.id).or_default();
            d.0 += 1;
            d.1 = d.1.max(e.offset + e.len);
        }
        for e in old.iter().filter(|e| !e.id.is_empty()) {
            delta.entry(&e.id).or_default().0 -= 1;
        }
        let mut c = self.txn.counters()?;
        for (id, (d, end)) in delta {
            if d == 0 {
                continue;
            }
            let k = key::bytes(key::CHUNK, id);
            let mut r: ChunkRefs = self.txn.get(&k)?.unwrap_or_default();
            if d > 0 {
                if r.refs == 0 {
                    c.chunks += 1;
                    c.chunk_bytes += end;
                    self.txn.delete(key::bytes(key::GARBAGE, id));
                }
                r.refs += d as u64;
                r.len = r.len.max(end);
                self.txn.put(k, &r);
                continue;
            }
            r.refs = r.refs.saturating_sub(d.unsigned_abs());
            if r.refs == 0 {
                c.chunks = c.chunks.saturating_sub(1);
                c.chunk_bytes = c.chunk_bytes.saturating_sub(r.len);
                self.txn.delete(k);
                // Remembered with the time it became garbage (for the GC grace period).
                self.txn.put(key::bytes(key::GARBAGE, id), &self.now);
            } else {
                self.txn.put(k, &r);
            }
        }
        self.txn.put_counters(&c);
        Ok(())
    }

    /// The extent list `sp` makes of the file's committed one.
    pub(super) fn spliced(&mut self, base: &[ExtentRec], sp: &Splice, size: u64) -> Result<Vec<ExtentRec>, Fail> {
        // Checked before they are laid over the list: a piece of a chunk
        // past 2^64 would overflow the arithmetic of the splice itself.
        for (_, exts) in &sp.patches {
            check_extents(exts)?;
        }
        let base: Vec<Extent> = base.iter().map(to_pb).collect();
        let patches: Vec<(u64, Vec<Extent>)> =
            sp.patches.iter().map(|(off, exts)| (*off, exts.iter().map(to_pb).collect())).collect();
        let list = tessera_proto::extents::splice(&base, sp.keep, size, &patches)
            .ok_or_else(|| err(libc::EINVAL, "a patch reaches past the end of the file"))?;
        Ok(list.iter().map(from_pb).collect())
    }

    /// Installs `extents` as the file's content at `size`; `old` is the
    /// file's list when the caller has it decoded already.
    pub(super) fn commit(
        &mut self,
        ino: u64,
        mut ext: Extents,
        size: u64,
        mtime: Option<Time>,
        old: Option<&[ExtentRec]>,
    ) -> Result<Reply, Fail> {
        let mut i = self.inode(ino)?;
        if i.is_dir() {
            return Err(err(libc::EISDIR, "is a directory"));
        }
        if i.kind != KIND_REGULAR {
            return Err(err(libc::EINVAL, "not a regular file"));
        }
        // Checked here, at apply, against the inode as it is now. Its owner
        // may always (it could grant itself the right, and tar writes a
        // 0444 file through the descriptor that created it); anyone else
        // needs write permission.
        if !is_owner_or_root(&i, self.cred) && !perm::allowed(&i, self.cred, W) {
            return Err(err(libc::EACCES, "permission denied: write"));
        }
        check_extents(&ext)?;
        ext.retain(|e| e.len > 0);
        let total = ext
            .iter()
            .try_fold(0u64, |t, e| t.checked_add(e.len))
            .ok_or_else(|| err(libc::EFBIG, "extents cover more than 2^64 bytes"))?;
        if total > size {
            return Err(err(libc::EINVAL, format!("extents cover {total} bytes, size is {size}")));
        }
        if size > total {
            ext.push(ExtentRec { id: Vec::new(), offset: 0, len: size - total });
        }
        match old {
            Some(old) => self.install_extents(ino, old, ext)?,
            None => self.replace_extents(ino, ext)?,
        }
        i.size = size;
        i.mtime = mtime.unwrap_or(self.now);
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
}

/// Each extent names a chunk (32 bytes) or a hole (none), and a piece of a
/// chunk lies within the largest chunk there can be.
fn check_extents(extents: &[ExtentRec]) -> Result<(), Fail> {
    for e in extents {
        if !(e.id.is_empty() || e.id.len() == 32) {
            return Err(err(libc::EINVAL, "malformed chunk id"));
        }
        // A hole (no id) may be any length: a sparse write far past the
        // end leaves one hole extent of gigabytes.
        let limit = if e.id.is_empty() { u64::MAX } else { tessera_proto::MAX_CHUNK_SIZE };
        if e.offset.checked_add(e.len).is_none_or(|end| end > limit) {
            return Err(err(libc::EINVAL, "extent beyond the chunk size limit"));
        }
    }
    Ok(())
}

/// An extent as the splice arithmetic (`tessera_proto::extents`) takes it.
pub(super) fn to_pb(e: &ExtentRec) -> Extent {
    Extent { id: e.id.clone().into(), offset: e.offset, len: e.len, ..Default::default() }
}

/// An extent as the state stores it.
pub(super) fn from_pb(e: &Extent) -> ExtentRec {
    ExtentRec { id: e.id.to_vec(), offset: e.offset, len: e.len }
}
