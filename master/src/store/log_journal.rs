//! What makes a Raft log append durable. The entries go into RocksDB as
//! before (readable at once), but the fsync that acknowledges them is not
//! RocksDB's WAL sync: the same bytes are written to a journal segment and
//! that file is fdatasynced. Segments are recycled, as the chunkservers'
//! small-chunk journal and RocksDB's own `recycle_log_file_num` do: a
//! retired segment becomes the spare (`SEQ.spare`) and is renamed to be a
//! later one, so an append overwrites blocks the file already has and its
//! fdatasync writes the data alone. A WAL growing a fresh file must also
//! write the inode for every sync; with three masters and three
//! chunkservers syncing on one disk, that difference is a tenth of a small
//! file's create (`bench/README.md`).
//!
//! RocksDB is synced (`flush_wal`) when a segment fills: then the entries
//! the segment holds are durable in RocksDB and the segment is retired. A
//! restart replays the segments left into RocksDB, syncs it, and starts a
//! fresh segment. A truncation of the log (a follower's conflicting
//! suffix) syncs RocksDB and retires every segment at once, so no journal
//! record ever brings back a truncated entry.
//!
//! A segment starts with `FILE_MAGIC | segment number | nonce`, the nonce
//! drawn at random each time a file becomes a segment. A record is `MAGIC |
//! nonce (u64 LE) | index (u64 LE) | len (u32 LE) | check (8 bytes) |
//! entry`, the entry as CF_LOGS stores it and `check` the start of
//! BLAKE3(index, entry). Replay stops at the first record that is short,
//! fails its check or carries another nonce (the stale tail of a recycled
//! file): only an append never acknowledged can be lost there. The nonce,
//! not the segment number, ends it, because entries carry client bytes
//! (names, xattr values): a record forged inside one would need a number
//! no client ever sees.

use crate::fsm::{cf, db_err};
use crate::store::CF_LOGS;
use parking_lot::Mutex;
use rocksdb::{WriteBatch, DB};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tessera_util::segment_files::{ensure_spare, numbered, read_full, recycle_or_create, retire_segment, sync_dir};

const FILE_MAGIC: [u8; 4] = *b"TRJF";
/// The segment's own header: FILE_MAGIC, number, nonce (and padding).
const FILE_HEADER: u64 = 24;
const MAGIC: [u8; 4] = *b"TRJ1";
const HEADER: usize = 4 + 8 + 8 + 4 + 8;
/// A segment holding this much is retired (RocksDB synced) at the next append.
const SEGMENT_BYTES: u64 = 4 << 20;
/// A new segment file is written with this many zeros first, so that even
/// the first use of a file overwrites blocks (zeros end a replay).
const PREALLOCATE: u64 = SEGMENT_BYTES + (1 << 20);
/// No entry is larger (openraft entries are one command each, and commands
/// are refused above `types::MAX_COMMAND_BYTES` before they are proposed).
/// Replay stops at a longer record, so one is never written.
pub const MAX_ENTRY: usize = 64 << 20;

fn lock<T>(m: &Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    m.lock()
}

fn check(index: u64, entry: &[u8]) -> [u8; 8] {
    let mut h = blake3::Hasher::new();
    h.update(&index.to_le_bytes());
    h.update(entry);
    let mut c = [0u8; 8];
    c.copy_from_slice(&h.finalize().as_bytes()[..8]);
    c
}

fn record(nonce: u64, index: u64, entry: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&nonce.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&(entry.len() as u32).to_le_bytes());
    out.extend_from_slice(&check(index, entry));
    out.extend_from_slice(entry);
}

fn file_header(seq: u64, nonce: u64) -> [u8; FILE_HEADER as usize] {
    let mut h = [0u8; FILE_HEADER as usize];
    h[0..4].copy_from_slice(&FILE_MAGIC);
    h[4..12].copy_from_slice(&seq.to_le_bytes());
    h[12..20].copy_from_slice(&nonce.to_le_bytes());
    h
}

/// The intact records of segment `seq`, in order.
fn read_segment(path: &Path, seq: u64) -> io::Result<Vec<(u64, Vec<u8>)>> {
    let mut r = io::BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut out = Vec::new();
    let mut fh = [0u8; FILE_HEADER as usize];
    // A header of another number: the file was renamed to be this segment
    // and nothing was acknowledged through it before the crash.
    if read_full(&mut r, &mut fh)? < fh.len() || fh[0..4] != FILE_MAGIC || fh[4..12] != seq.to_le_bytes() {
        return Ok(out);
    }
    let nonce = &fh[12..20];
    loop {
        let mut h = [0u8; HEADER];
        if read_full(&mut r, &mut h)? < HEADER || h[0..4] != MAGIC || h[4..12] != *nonce {
            break;
        }
        let index = u64::from_le_bytes(h[12..20].try_into().map_err(io::Error::other)?);
        let len = u32::from_le_bytes(h[20..24].try_into().map_err(io::Error::other)?) as usize;
        if len > MAX_ENTRY {
            break;
        }
        let mut entry = vec![0u8; len];
        if read_full(&mut r, &mut entry)? < len || h[24..32] != check(index, &entry) {
            break;
        }
        out.push((index, entry));
    }
    Ok(out)
}

/// A segment being written.
pub struct Segment {
    seq: u64,
    nonce: u64,
    path: PathBuf,
    file: Arc<File>,
}

struct Current {
    seg: Segment,
    end: u64,
}

pub struct LogJournal {
    dir: PathBuf,
    cur: Mutex<Current>,
    /// Spare bookkeeping, one retirement at a time.
    retiring: Mutex<()>,
}

/// One append's records, written; `sync` makes them durable.
pub struct Written {
    file: Arc<File>,
    /// The segment this append filled: retire it once RocksDB is synced.
    pub full: Option<Segment>,
}

impl Written {
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

impl LogJournal {
    /// Replays what a previous run left in `dir` into the log column family
    /// (entries up to `purged` excepted: they are gone), syncs RocksDB and
    /// starts a new segment. Returns the journal and the entries replayed.
    pub fn open(dir: &Path, db: &DB, purged: Option<u64>) -> io::Result<(LogJournal, usize)> {
        std::fs::create_dir_all(dir)?;
        let old = numbered(dir, ".log")?;
        let logs = cf(db, CF_LOGS)?;
        let mut replayed = 0;
        for (seq, path) in &old {
            let mut batch = WriteBatch::default();
            for (index, entry) in read_segment(path, *seq)? {
                if purged.is_none_or(|p| index > p) {
                    batch.put_cf(logs, index.to_be_bytes(), &entry);
                    replayed += 1;
                }
            }
            db.write(batch).map_err(db_err)?;
        }
        db.flush_wal(true).map_err(db_err)?;
        let j = LogJournal {
            dir: dir.to_path_buf(),
            // Numbers only grow, past the spare's too: a recycled file's
            // stale records never carry the number of the segment it becomes.
            cur: Mutex::new(Current { seg: Self::new_segment(dir, Self::next_seq(dir)?)?, end: FILE_HEADER }),
            retiring: Mutex::new(()),
        };
        j.retire_older()?;
        // A spare ready for the first segment to fill (later ones are the
        // segments retired).
        // Numbered below the segment, like a retired one.
        ensure_spare(dir, lock(&j.cur).seg.seq - 1, PREALLOCATE)?;
        Ok((j, replayed))
    }

    fn next_seq(dir: &Path) -> io::Result<u64> {
        let last = |s: &str| -> io::Result<u64> { Ok(numbered(dir, s)?.last().map_or(0, |(q, _)| *q)) };
        Ok(last(".log")?.max(last(".spare")?) + 1)
    }

    /// Segment `seq`: the spare renamed, or else a new file.
    fn new_segment(dir: &Path, seq: u64) -> io::Result<Segment> {
        let path = dir.join(format!("{seq:016x}.log"));
        let file = recycle_or_create(dir, &path, PREALLOCATE)?;
        // Made durable by the first record's fdatasync, before which nothing
        // in the file is acknowledged.
        let nonce = rand::random::<u64>();
        file.write_all_at(&file_header(seq, nonce), 0)?;
        // The name must be durable before a record in it is acknowledged: a
        // recycled file found under its old name replays none of them.
        sync_dir(dir)?;
        Ok(Segment { seq, nonce, path, file: Arc::new(file) })
    }

    /// Writes `entries` (index, encoded entry); the caller syncs the result.
    /// A full segment is synced and swapped for a new one first (blocking:
    /// an fdatasync, a rename and a directory sync, once per SEGMENT_BYTES).
    pub fn write(&self, entries: &[(u64, &[u8])]) -> io::Result<Written> {
        if let Some((index, e)) = entries.iter().find(|(_, e)| e.len() > MAX_ENTRY) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("log entry {index} of {} bytes is over the journal's limit", e.len()),
            ));
        }
        let mut cur = lock(&self.cur);
        let full = if cur.end >= SEGMENT_BYTES {
            // Appends sync in parallel and may finish out of order; one
            // finishing says every earlier entry is durable. Within a
            // segment its fdatasync covers them all; across the swap,
            // only this sync of the full segment does.
            cur.seg.file.sync_data()?;
            let next = Self::new_segment(&self.dir, cur.seg.seq + 1)?;
            cur.end = FILE_HEADER;
            Some(std::mem::replace(&mut cur.seg, next))
        } else {
            None
        };
        let mut buf = Vec::with_capacity(entries.iter().map(|(_, e)| HEADER + e.len()).sum());
        for (index, entry) in entries {
            record(cur.seg.nonce, *index, entry, &mut buf);
        }
        cur.seg.file.write_all_at(&buf, cur.end)?;
        cur.end += buf.len() as u64;
        Ok(Written { file: cur.seg.file.clone(), full })
    }

    /// Retires a full segment: RocksDB holds its entries (written before
    /// them), so once RocksDB is synced the segment becomes the spare.
    pub fn retire(&self, seg: Segment, db: &DB) -> io::Result<()> {
        db.flush_wal(true).map_err(db_err)?;
        let _one = lock(&self.retiring);
        match retire_segment(&self.dir, seg.seq, &seg.path, true) {
            // A truncation retired it already.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            r => r?,
        }
        sync_dir(&self.dir)
    }

    /// After a truncation of the log, with RocksDB synced: a new segment,
    /// and every older one retired, so none is replayed over the cut.
    pub fn restart(&self) -> io::Result<()> {
        {
            let mut cur = lock(&self.cur);
            let next = Self::new_segment(&self.dir, cur.seg.seq + 1)?;
            cur.seg = next;
            cur.end = FILE_HEADER;
        }
        self.retire_older()
    }

    /// Retires every segment before the current one (RocksDB synced).
    fn retire_older(&self) -> io::Result<()> {
        let _one = lock(&self.retiring);
        let current = lock(&self.cur).seg.seq;
        for (seq, path) in numbered(&self.dir, ".log")?.into_iter().rev() {
            if seq < current {
                retire_segment(&self.dir, seq, &path, true)?;
            }
        }
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
#[path = "log_journal_tests.rs"]
mod tests;
