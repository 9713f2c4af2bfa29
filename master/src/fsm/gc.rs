//! Garbage-collection bookkeeping in the state machine.
//!
//! Safety argument: a chunk is deleted from chunkservers only after a
//! `CollectGarbage` entry (log index G) marked it while unreferenced; the
//! deletion finishes before a `GarbageDeleted` entry (index D). A client reads
//! the epoch E (an applied index) *before* it checks or uploads chunks and
//! commits with it. A commit that adds the first reference to a chunk with a
//! collection record is refused (EAGAIN) unless D <= E: then every deletion
//! finished before the client looked, so what it saw (and uploaded) is what
//! the chunkservers hold. A commit applied before G makes the count non-zero
//! and `collect` skips the chunk. So no committed reference ever points at a
//! chunk that GC deletes.
//!
//! Pruning: a record whose deletion finished at D only matters to commits
//! with an epoch below D. The leader prunes records with D <= F once index
//! F was applied long ago (twice the GC grace: an upload older than that
//! has lost its unreferenced chunks to GC anyway), and raises the floor to
//! F: a commit with an epoch below F may no longer add the first reference
//! to any chunk (it cannot tell a pruned record from none), and gets
//! EAGAIN like any commit that raced GC (clients upload again with a fresh
//! epoch). So the records do not grow with every chunk ever deleted.

use super::fail::Fail;
use super::model::{key, ChunkRefs, CollectRec};
use super::Txn;
use crate::values::{ExtentRec, FsErr, Time};
use std::io;

pub(super) fn check_not_collected(txn: &mut Txn, extents: &[ExtentRec], epoch: u64) -> Result<(), Fail> {
    let below_floor = epoch < floor(txn)?;
    for e in extents.iter().filter(|e| e.id.len() == 32) {
        let referenced = txn.get::<ChunkRefs>(&key::bytes(key::CHUNK, &e.id))?.is_some_and(|r| r.refs > 0);
        if referenced {
            continue;
        }
        let ck = key::bytes(key::COLLECT, &e.id);
        let record = txn.get::<CollectRec>(&ck)?;
        if record.is_none() && below_floor {
            return Err(Fail::Fs(FsErr::new(
                libc::EAGAIN,
                format!("the upload of chunk {} is older than the collection records kept; upload again", hex(&e.id)),
            )));
        }
        if let Some(rec) = record {
            if rec.done.is_none_or(|d| d > epoch) {
                return Err(Fail::Fs(FsErr::new(
                    libc::EAGAIN,
                    format!("chunk {} was garbage-collected during the upload; upload again", hex(&e.id)),
                )));
            }
            // Collected and deleted before the client looked: the record is
            // no longer needed once the chunk is referenced again.
            txn.delete(ck);
        }
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect()
}

/// Marks unreferenced chunks as being collected; returns those marked.
pub fn collect(
    txn: &mut Txn,
    ids: &[Vec<u8>],
    older_than: Time,
    orphans: bool,
    index: u64,
) -> io::Result<Vec<Vec<u8>>> {
    let mut marked = Vec::new();
    for id in ids.iter().filter(|id| id.len() == 32) {
        if txn.get::<ChunkRefs>(&key::bytes(key::CHUNK, id))?.is_some_and(|r| r.refs > 0) {
            continue;
        }
        let gk = key::bytes(key::GARBAGE, id);
        match txn.get::<Time>(&gk)? {
            Some(t) if t <= older_than => {}
            Some(_) => continue, // still in its grace period
            None if orphans => {}
            None => continue,
        }
        txn.delete(gk);
        txn.put(key::bytes(key::COLLECT, id), &CollectRec { started: index, done: None });
        marked.push(id.clone());
    }
    Ok(marked)
}

pub fn deleted(txn: &mut Txn, ids: &[Vec<u8>], index: u64) -> io::Result<()> {
    for id in ids {
        let ck = key::bytes(key::COLLECT, id);
        if let Some(mut rec) = txn.get::<CollectRec>(&ck)? {
            rec.done = Some(index);
            txn.put(ck, &rec);
        }
    }
    Ok(())
}

/// Commits with an epoch below this may not add first references.
pub fn floor(txn: &Txn) -> io::Result<u64> {
    Ok(txn.get::<u64>(key::COLLECT_FLOOR)?.unwrap_or(0))
}

/// Drops up to `limit` records whose deletion finished at or before
/// `floor`, and raises the floor to it; how many were dropped.
pub fn prune(txn: &mut Txn, to: u64, limit: usize) -> io::Result<u64> {
    let old = floor(txn)?;
    if to > old {
        txn.put(key::COLLECT_FLOOR.to_vec(), &to);
    }
    // Only this command touches records here, so the stored ones are all.
    let mut done = Vec::new();
    let sm = super::cf(txn.db, super::CF_SM)?;
    for item in txn.db.prefix_iterator_cf(sm, [key::COLLECT]) {
        let (k, v) = item.map_err(super::db_err)?;
        if k.first() != Some(&key::COLLECT) || done.len() >= limit {
            break;
        }
        let rec: CollectRec = super::model::decode(&v)?;
        if rec.done.is_some_and(|d| d <= to) {
            done.push(k.to_vec());
        }
    }
    let n = done.len() as u64;
    for k in done {
        txn.delete(k);
    }
    Ok(n)
}
