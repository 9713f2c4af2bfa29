//! Unsealed commits. A mount's small flush of a file whose content it
//! replaces whole may send its commit while the chunks are still being
//! uploaded, and answer close(2) once both are done: a small file's close
//! then costs the longer of the two, not their sum.
//!
//! The commit is never acknowledged before its chunks are durable, but if
//! the writer dies between the two, the file would name chunks no server
//! holds. So such a commit leaves a marker (inode, content version, time).
//! The leader's healer settles markers older than its grace period: a file
//! whose every chunk has a holder is sealed (the marker goes); one missing a
//! chunk, and unchanged since, is emptied, as a local file system's
//! never-synced write may read back empty after a crash. A mount gives up
//! (EIO) on an upload that outlives a fraction of that grace.
//!
//! A commit that patches part of a file (an fsync after a small overwrite,
//! a database's pattern) may be unsealed too, with a marker of its own
//! (`UnsealedPatchRec`): the size before it and the pieces of the list
//! before it over every range it changed. Reverting lays those back, so
//! the file is as it was before the patch, as a local file system's
//! never-synced overwrite may read back old after a crash. The marker holds
//! a reference on each piece's chunk until it is settled, so GC cannot take
//! them meanwhile. Only the chunks the patch laid down are checked for
//! holders: what it kept was acknowledged before (a mount sends a sealed
//! commit after a failed upload).

use super::apply::Applier;
use super::content::{from_pb, to_pb};
use super::fail::Fail;
use super::model::*;
use super::read::{self, Res};
use crate::types::{ExtentRec, Reply, Splice, Time};
use rocksdb::DB;
use tessera_proto::pb::Extent;

/// A file whose last commit was sent before its chunks were durable.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct UnsealedRec {
    /// The content version that commit made.
    pub version: u64,
    pub at: Time,
}

impl Applier<'_, '_> {
    /// Marks the content an unsealed commit just made. Only a commit that
    /// replaces the whole content may be unsealed: emptying the file is
    /// then a state the writer's own sequence of operations passed through.
    pub(super) fn mark_unsealed(&mut self, ino: u64, reply: &Reply) {
        if let Reply::Attr(i) = reply {
            let rec = UnsealedRec { version: i.version, at: self.now };
            self.txn.put(key::ino(key::UNSEALED, ino), &rec);
        }
    }

    /// Marks the content an unsealed patch (`sp`, keep > 0) made of a file
    /// whose list was `before` at size `before_size`.
    pub(super) fn mark_unsealed_patch(
        &mut self,
        ino: u64,
        reply: &Reply,
        sp: &Splice,
        before: &[ExtentRec],
        before_size: u64,
    ) -> Result<(), Fail> {
        let Reply::Attr(i) = reply else {
            return Ok(());
        };
        // Every range the commit changed below the old size.
        let mut ranges: Vec<(u64, u64)> = sp
            .patches
            .iter()
            .map(|(off, exts)| (*off, off.saturating_add(exts.iter().map(|e| e.len).sum::<u64>())))
            .collect();
        ranges.push((sp.keep, u64::MAX));
        let base: Vec<Extent> = before.iter().map(to_pb).collect();
        let undo: Vec<(u64, Extents)> = ranges
            .into_iter()
            .map(|(a, b)| (a, b.min(before_size)))
            .filter(|(a, b)| a < b)
            .map(|(a, b)| (a, tessera_proto::extents::slice(&base, a, b).iter().map(from_pb).collect()))
            .collect();
        let mut new_ids: Vec<Vec<u8>> =
            sp.patches.iter().flat_map(|(_, e)| e.iter()).filter(|e| !e.id.is_empty()).map(|e| e.id.clone()).collect();
        new_ids.sort();
        new_ids.dedup();
        self.drop_patch_marker(ino)?;
        self.move_refs(&[], &flat(&undo))?;
        let rec = UnsealedPatchRec { version: i.version, at: self.now, new_ids, size: before_size, undo };
        self.txn.put(key::ino(key::UNSEALED_PATCH, ino), &rec);
        Ok(())
    }

    /// Removes a file's patch marker, releasing its references.
    fn drop_patch_marker(&mut self, ino: u64) -> Result<Option<UnsealedPatchRec>, Fail> {
        let k = key::ino(key::UNSEALED_PATCH, ino);
        let Some(rec) = self.txn.get::<UnsealedPatchRec>(&k)? else {
            return Ok(None);
        };
        self.txn.delete(k);
        self.move_refs(&flat(&rec.undo), &[])?;
        Ok(Some(rec))
    }

    /// Lays back what an unsealed patch replaced.
    fn revert_patch(&mut self, ino: u64, rec: &UnsealedPatchRec) -> Result<(), Fail> {
        let Some(mut i) = self.txn.inode(ino)? else {
            return Ok(());
        };
        let cur: Vec<Extent> = self.extents(ino)?.iter().map(to_pb).collect();
        let undo: Vec<(u64, Vec<Extent>)> =
            rec.undo.iter().map(|(off, e)| (*off, e.iter().map(to_pb).collect())).collect();
        let list = tessera_proto::extents::splice(&cur, i.size.min(rec.size), rec.size, &undo)
            .ok_or_else(|| super::fail::err(libc::EIO, "an unsealed patch's undo reaches past the old size"))?;
        tracing::warn!(ino, version = rec.version, "reverting an overwrite whose unsealed commit lost its chunks");
        self.replace_extents(ino, list.iter().map(from_pb).collect())?;
        i.size = rec.size;
        i.ctime = self.now;
        i.mtime = self.now;
        i.version += 1;
        self.txn.put_inode(&i);
        Ok(())
    }

    pub(super) fn settle_unsealed(&mut self, seal: &[(u64, u64)], revert: &[(u64, u64)]) -> Result<Reply, Fail> {
        for &(ino, version) in seal {
            let k = key::ino(key::UNSEALED, ino);
            if self.txn.get::<UnsealedRec>(&k)?.is_some_and(|r| r.version == version) {
                self.txn.delete(k);
            }
            let k = key::ino(key::UNSEALED_PATCH, ino);
            if self.txn.get::<UnsealedPatchRec>(&k)?.is_some_and(|r| r.version == version) {
                self.drop_patch_marker(ino)?;
            }
        }
        for &(ino, version) in revert {
            let k = key::ino(key::UNSEALED_PATCH, ino);
            if let Some(rec) = self.txn.get::<UnsealedPatchRec>(&k)?.filter(|r| r.version == version) {
                // Only the very content the patch made is undone: anything
                // committed over it is someone's later write. Undone before
                // the marker lets go of the pieces it lays back.
                if self.txn.inode(ino)?.is_some_and(|i| i.version == version) {
                    self.revert_patch(ino, &rec)?;
                }
                self.drop_patch_marker(ino)?;
                continue;
            }
            let k = key::ino(key::UNSEALED, ino);
            if self.txn.get::<UnsealedRec>(&k)?.is_none_or(|r| r.version != version) {
                continue; // settled since, or marked again by a newer commit
            }
            self.txn.delete(k);
            let Some(mut i) = self.txn.inode(ino)? else {
                continue;
            };
            // Only the very content the unsealed commit made is emptied:
            // anything committed over it is someone's later write.
            if i.version != version {
                continue;
            }
            tracing::warn!(ino, version, "emptying a file whose unsealed commit lost its chunks");
            self.resize(&mut i, 0)?;
            i.ctime = self.now;
            self.txn.put_inode(&i);
        }
        Ok(Reply::None)
    }
}

/// The marker of an unsealed commit that patched part of a file.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct UnsealedPatchRec {
    /// The content version that commit made.
    pub version: u64,
    pub at: Time,
    /// The chunks the patch laid down: the ones that must have a holder.
    pub new_ids: Vec<Vec<u8>>,
    /// The size before the commit, and the old list's pieces over each
    /// range it changed (offset, extents); the marker holds a reference
    /// on their chunks.
    pub size: u64,
    pub undo: Vec<(u64, Extents)>,
}

fn flat(undo: &[(u64, Extents)]) -> Extents {
    undo.iter().flat_map(|(_, e)| e.iter().cloned()).collect()
}

/// Markers older than `before`, as (inode, marker).
pub fn old_markers(db: &DB, before: Time) -> Res<Vec<(u64, UnsealedRec)>> {
    older_than(db, key::UNSEALED, before, |r: &UnsealedRec| r.at)
}

/// The records of table `tag` (keyed by inode) made before `before`.
fn older_than<T: for<'de> serde::Deserialize<'de>>(
    db: &DB,
    tag: u8,
    before: Time,
    at: impl Fn(&T) -> Time,
) -> Res<Vec<(u64, T)>> {
    Ok(read::records::<T>(db, tag)?
        .into_iter()
        .filter(|(_, r)| at(r) < before)
        .filter_map(|(k, r)| <[u8; 8]>::try_from(k.as_slice()).ok().map(|b| (u64::from_be_bytes(b), r)))
        .collect())
}

/// What the healer does with one old marker, given whether a chunk is held.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Seal,
    Revert,
}

/// Seal a marker whose file is gone or changed since, or whose chunks all
/// have a holder; revert one whose very content lacks a chunk.
pub fn verdict(db: &DB, ino: u64, rec: &UnsealedRec, held: impl Fn(&[u8]) -> bool) -> Res<Verdict> {
    let i = match read::inode(db, ino) {
        Ok(i) => i,
        Err(e) if e.errno == libc::ENOENT => return Ok(Verdict::Seal),
        Err(e) => return Err(e),
    };
    if i.version != rec.version {
        return Ok(Verdict::Seal);
    }
    let all_held = read::extents(db, ino)?.iter().filter(|e| !e.id.is_empty()).all(|e| held(&e.id));
    Ok(if all_held { Verdict::Seal } else { Verdict::Revert })
}

/// Patch markers older than `before`, as (inode, marker).
pub fn old_patch_markers(db: &DB, before: Time) -> Res<Vec<(u64, UnsealedPatchRec)>> {
    older_than(db, key::UNSEALED_PATCH, before, |r: &UnsealedPatchRec| r.at)
}

/// Seal a patch marker whose file is gone or changed since, or whose new
/// chunks all have a holder; revert one whose very content lacks one.
pub fn patch_verdict(db: &DB, ino: u64, rec: &UnsealedPatchRec, held: impl Fn(&[u8]) -> bool) -> Res<Verdict> {
    let i = match read::inode(db, ino) {
        Ok(i) => i,
        Err(e) if e.errno == libc::ENOENT => return Ok(Verdict::Seal),
        Err(e) => return Err(e),
    };
    if i.version != rec.version || rec.new_ids.iter().all(|id| held(id)) {
        return Ok(Verdict::Seal);
    }
    Ok(Verdict::Revert)
}
