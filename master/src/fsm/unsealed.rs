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

use super::apply::Applier;
use super::fail::Fail;
use super::model::*;
use super::read::{self, Res};
use crate::types::{Reply, Time};
use rocksdb::DB;

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

    pub(super) fn settle_unsealed(&mut self, seal: &[(u64, u64)], revert: &[(u64, u64)]) -> Result<Reply, Fail> {
        for &(ino, version) in seal {
            let k = key::ino(key::UNSEALED, ino);
            if self.txn.get::<UnsealedRec>(&k)?.is_some_and(|r| r.version == version) {
                self.txn.delete(k);
            }
        }
        for &(ino, version) in revert {
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

/// Markers older than `before`, as (inode, marker).
pub fn old_markers(db: &DB, before: Time) -> Res<Vec<(u64, UnsealedRec)>> {
    Ok(read::records::<UnsealedRec>(db, key::UNSEALED)?
        .into_iter()
        .filter(|(_, r)| r.at < before)
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
