//! The small-chunk journal. A chunk file costs two fsyncs and a new inode
//! (temp file, fsync, rename, directory fsync); for a 4 KiB file that is
//! most of a put's time, and three replicas on one disk queue behind each
//! other. A small chunk is instead appended to a journal file and made
//! durable by one `fdatasync`, shared by every put that appended before it
//! (group commit). A background checkpoint then turns the journal's records
//! into ordinary chunk files (temp file + rename), makes them durable with
//! one `syncfs`, and only then deletes the journal. So the chunk layout the
//! rest of the system sees (`chunks/ab/abcd…`) is unchanged; chunks not yet
//! checkpointed are served from memory.
//!
//! A record is `MAGIC | segment (u64 LE) | len (u32 LE) | id (32 bytes) |
//! data`. The id is the BLAKE3 hash of the data, so every record checks
//! itself: replay after a crash stops at a short record (a torn tail: a put
//! never acknowledged) and skips a whole record that does not hash to its id.
//! (Records of the first format, `TSJ1`, had no segment number; a journal
//! left by that version still replays.)
//!
//! Segments are recycled, as RocksDB recycles its WAL files: a checkpointed
//! segment is kept as the spare (`SEQ.spare`) and renamed to be the next
//! segment but one. Records then overwrite blocks the file already has, and
//! each put's `fdatasync` writes the data alone; appending to a new file
//! must also write the inode (its size grew), which on one disk shared by
//! several replicas costs half again the time (`bench/README.md`). Replay
//! stops at the first record of another segment number: the stale tail of
//! a recycled file. (The masters' log journal ends its records with a
//! random nonce instead, as client bytes could otherwise pass for a record
//! there. Here such a forged record could only bring back a chunk whose id
//! is the hash of its bytes: a valid chunk nobody references, which GC
//! removes.)

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tessera_proto::ChunkId;
use tessera_util::segment_files::{ensure_spare, numbered, read_full, recycle_or_create, retire_segment, sync_dir};

/// Chunks up to this size go through the journal.
pub const JOURNAL_MAX: usize = 128 << 10;
/// Bytes held in memory awaiting a checkpoint; past this, puts take the
/// direct path (chunk file + fsyncs) until a checkpoint catches up.
const PENDING_LIMIT: u64 = 64 << 20;
/// A journal this large is checkpointed at once instead of on the timer.
const CHECKPOINT_BYTES: u64 = 16 << 20;
/// A new segment file is written with this many zeros first, so that even
/// its first use overwrites blocks (zeros end a replay). A busier segment
/// grows past it, and keeps that size when recycled.
const PREALLOCATE: u64 = 4 << 20;
const MAGIC_V1: [u8; 4] = *b"TSJ1";
const HEADER_V1: usize = 4 + 4 + 32;
const MAGIC: [u8; 4] = *b"TSJ2";
const HEADER: usize = 4 + 8 + 4 + 32;

fn lock<T>(m: &Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    m.lock()
}

/// One journal file. `synced` is the offset up to which an fdatasync has
/// completed; holding its lock while syncing makes later putters wait for
/// that sync and then find their record already covered.
struct Segment {
    seq: u64,
    file: File,
    synced: Mutex<u64>,
    /// An fsync of this file failed. Linux may then drop the dirty pages
    /// and report success to the next fsync, so no later put may be
    /// acknowledged through this segment; puts take the file path until a
    /// checkpoint starts a new one.
    failed: AtomicBool,
}

struct Writer {
    seg: Arc<Segment>,
    end: u64,
}

struct Pending {
    seq: u64,
    data: Bytes,
}

struct PendingSet {
    map: HashMap<ChunkId, Pending>,
    bytes: u64,
    /// Every segment up to this one is checkpointed (on disk as files).
    checkpointed: u64,
}

pub struct Journal {
    root: PathBuf,
    dir: PathBuf,
    writer: Mutex<Writer>,
    pending: Mutex<PendingSet>,
    /// One checkpoint at a time.
    checkpointing: tokio::sync::Mutex<()>,
    kick: tokio::sync::Notify,
    written: AtomicU64,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.journal"))
}

/// The record header for chunk `id` of `len` bytes in segment `seq`.
fn header(seq: u64, len: usize, id: &ChunkId) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&MAGIC);
    h[4..12].copy_from_slice(&seq.to_le_bytes());
    h[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    h[16..HEADER].copy_from_slice(id.as_bytes());
    h
}

/// Reads the next record header of segment `seq`: the data length and id,
/// or None at the end (a short or foreign header, or a stale record of an
/// earlier use of a recycled file).
fn read_header(r: &mut impl Read, seq: u64) -> io::Result<Option<(usize, ChunkId)>> {
    let mut h = [0u8; HEADER];
    if read_full(r, &mut h[..HEADER_V1])? < HEADER_V1 {
        return Ok(None);
    }
    let rest = if h[0..4] == MAGIC_V1 {
        &h[4..HEADER_V1]
    } else if h[0..4] == MAGIC {
        if read_full(r, &mut h[HEADER_V1..])? < HEADER - HEADER_V1 || h[4..12] != seq.to_le_bytes() {
            return Ok(None);
        }
        &h[12..HEADER]
    } else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    Ok(ChunkId::from_slice(&rest[4..]).ok().filter(|_| len <= JOURNAL_MAX).map(|id| (len, id)))
}

/// The final path of a chunk under the store root (`chunks/ab/abcd…`).
pub fn chunk_path(root: &Path, id: &ChunkId) -> PathBuf {
    let h = id.to_hex();
    root.join("chunks").join(&h[0..2]).join(h)
}

/// Flushes every dirty page and inode of the file system holding `root`.
fn syncfs(root: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let d = File::open(root)?;
    // SAFETY: d is an open descriptor for the duration of the call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes every intact record of segment `path` as a chunk file (unless the
/// chunk file exists), without fsync: the caller syncs the file system.
/// Returns the ids written. Stops at a torn or corrupt record.
fn materialize(root: &Path, path: &Path, seq: u64) -> io::Result<Vec<ChunkId>> {
    let mut r = io::BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut made = Vec::new();
    while let Some((len, id)) = read_header(&mut r, seq)? {
        let mut data = vec![0u8; len];
        if read_full(&mut r, &mut data)? < len {
            tracing::warn!(journal = %path.display(), "journal ends in a torn record (never acknowledged)");
            break;
        }
        if ChunkId::of(&data) != id {
            // Whole but damaged (or torn in place): skip it; the master
            // re-replicates the chunk from another holder.
            tracing::error!(journal = %path.display(), chunk = %id, "journal record does not match its id; skipped");
            continue;
        }
        let dst = chunk_path(root, &id);
        if dst.exists() {
            continue;
        }
        let tmp = root.join("tmp").join(format!("{}.{:016x}", id.to_hex(), rand::random::<u64>()));
        std::fs::write(&tmp, &data)?;
        std::fs::rename(&tmp, &dst)?;
        made.push(id);
    }
    Ok(made)
}

fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    numbered(dir, ".journal")
}

/// Segment `seq`: the spare renamed, or else a new file.
fn open_segment(dir: &Path, seq: u64) -> io::Result<Arc<Segment>> {
    let path = segment_path(dir, seq);
    let file = recycle_or_create(dir, &path, PREALLOCATE)?;
    // The new name must be durable before any record in it is acknowledged:
    // a recycled file found under its old name replays nothing of it.
    sync_dir(dir)?;
    Ok(Arc::new(Segment { seq, file, synced: Mutex::new(0), failed: Default::default() }))
}

impl Journal {
    /// Replays what a previous run left in `root/journal` into chunk files
    /// (durably), then starts an empty journal. Call before scanning the
    /// store. `root/chunks/*` and `root/tmp` must exist.
    pub fn open(root: &Path) -> io::Result<Journal> {
        let dir = root.join("journal");
        std::fs::create_dir_all(&dir)?;
        let old = segments(&dir)?;
        let mut replayed = 0;
        for (seq, p) in &old {
            replayed += materialize(root, p, *seq)?.len();
        }
        // Numbers only grow, past the spare's too: a recycled file's stale
        // records must never carry the number of the segment it becomes.
        let spare = numbered(&dir, ".spare")?.last().map_or(0, |(s, _)| *s);
        let next = old.last().map_or(0, |(s, _)| *s).max(spare) + 1;
        if !old.is_empty() {
            syncfs(root)?;
            for (_, p) in &old {
                std::fs::remove_file(p)?;
            }
            sync_dir(&dir)?;
            tracing::info!(segments = old.len(), chunks = replayed, "journal replayed into chunk files");
        }
        let seg = open_segment(&dir, next)?;
        // A spare ready for the first checkpoint (later ones are the
        // segments checkpointed).
        // Numbered below the segment, like a checkpointed one.
        ensure_spare(&dir, next - 1, PREALLOCATE)?;
        Ok(Journal {
            root: root.to_path_buf(),
            dir,
            writer: Mutex::new(Writer { seg, end: 0 }),
            pending: Mutex::new(PendingSet { map: HashMap::new(), bytes: 0, checkpointed: next - 1 }),
            checkpointing: tokio::sync::Mutex::new(()),
            kick: tokio::sync::Notify::new(),
            written: AtomicU64::new(0),
        })
    }

    /// Whether a chunk of `len` bytes should go through the journal now.
    pub fn takes(&self, len: usize) -> bool {
        len <= JOURNAL_MAX
            && lock(&self.pending).bytes + len as u64 <= PENDING_LIMIT
            && !lock(&self.writer).seg.failed.load(Ordering::Relaxed)
    }

    /// Chunks and bytes acknowledged through the journal and not yet
    /// checkpointed into chunk files (the checkpoint's lag).
    pub fn pending(&self) -> (usize, u64) {
        let p = lock(&self.pending);
        (p.map.len(), p.bytes)
    }

    /// A chunk acknowledged through the journal and not yet checkpointed.
    pub fn get(&self, id: &ChunkId) -> Option<Bytes> {
        lock(&self.pending).map.get(id).map(|p| p.data.clone())
    }

    pub fn holds(&self, id: &ChunkId) -> bool {
        lock(&self.pending).map.contains_key(id)
    }

    pub fn ids(&self) -> Vec<ChunkId> {
        lock(&self.pending).map.keys().copied().collect()
    }

    /// Appends a verified chunk and returns once it is durable (blocking:
    /// call from the blocking pool). Returns false if the chunk was already
    /// held here.
    pub fn append(&self, id: ChunkId, data: Bytes) -> io::Result<bool> {
        let mut rec = Vec::with_capacity(HEADER + data.len());
        rec.extend_from_slice(&header(0, data.len(), &id));
        rec.extend_from_slice(&data);
        // Counted as new only if it was in neither place when the put began
        // (a checkpoint may write its file before this call returns).
        let fresh = !self.holds(&id) && !chunk_path(&self.root, &id).exists();
        let (seg, end) = {
            let mut w = lock(&self.writer);
            rec[4..12].copy_from_slice(&w.seg.seq.to_le_bytes());
            w.seg.file.write_all_at(&rec, w.end)?;
            w.end += rec.len() as u64;
            (w.seg.clone(), w.end)
        };
        {
            let mut synced = lock(&seg.synced);
            if seg.failed.load(Ordering::Relaxed) {
                return Err(io::Error::other("the journal segment failed an fsync; not acknowledged"));
            }
            if *synced < end {
                // Everything appended so far rides on this one sync.
                let upto = lock(&self.writer).end_in(seg.seq).unwrap_or(end);
                if let Err(e) = seg.file.sync_data() {
                    seg.failed.store(true, Ordering::Relaxed);
                    self.kick.notify_one();
                    return Err(e);
                }
                *synced = upto.max(end);
            }
        }
        let total = self.written.fetch_add(rec.len() as u64, Ordering::Relaxed) + rec.len() as u64;
        let mut p = lock(&self.pending);
        // A checkpoint that already covered this segment wrote the file.
        if seg.seq > p.checkpointed && !p.map.contains_key(&id) {
            p.bytes += data.len() as u64;
            p.map.insert(id, Pending { seq: seg.seq, data });
        }
        drop(p);
        if total >= CHECKPOINT_BYTES {
            self.kick.notify_one();
        }
        Ok(fresh)
    }

    /// Turns everything journaled so far into durable chunk files and
    /// deletes the journal segments that held it.
    pub async fn checkpoint(self: &Arc<Self>) -> io::Result<()> {
        let _one = self.checkpointing.lock().await;
        // Only a checkpoint (one at a time) changes the segment, so the
        // next one can be made (a create and a directory fsync) unlocked.
        let (current, empty) = {
            let w = lock(&self.writer);
            (w.seg.seq, w.end == 0)
        };
        if empty {
            return Ok(());
        }
        let dir = self.dir.clone();
        let next =
            tokio::task::spawn_blocking(move || open_segment(&dir, current + 1)).await.map_err(io::Error::other)??;
        let old = {
            let mut w = lock(&self.writer);
            w.end = 0;
            std::mem::replace(&mut w.seg, next)
        };
        self.written.store(0, Ordering::Relaxed);
        let (root, dir, seq) = (self.root.clone(), self.dir.clone(), old.seq);
        let recycle = !old.failed.load(Ordering::Relaxed);
        let made = tokio::task::spawn_blocking(move || -> io::Result<usize> {
            // Older segments still here are ones an earlier checkpoint
            // failed on: they are redone now, so nothing released from
            // memory below lacks its file.
            let due: Vec<(u64, PathBuf)> = segments(&dir)?.into_iter().filter(|(s, _)| *s <= seq).collect();
            let mut made = 0;
            for (s, p) in &due {
                made += materialize(&root, p, *s)?.len();
            }
            syncfs(&root)?;
            for (s, p) in &due {
                retire_segment(&dir, *s, p, recycle && *s == seq)?;
            }
            sync_dir(&dir)?;
            Ok(made)
        })
        .await
        .map_err(io::Error::other)??;
        let mut p = lock(&self.pending);
        p.checkpointed = seq;
        let before = p.map.len();
        let mut freed = 0;
        p.map.retain(|_, e| {
            let keep = e.seq > seq;
            if !keep {
                freed += e.data.len() as u64;
            }
            keep
        });
        p.bytes -= freed;
        tracing::debug!(segment = seq, files = made, released = before - p.map.len(), "journal checkpoint");
        Ok(())
    }

    /// Checkpoints every `every`, or at once when the journal grows large.
    pub async fn run(self: Arc<Self>, every: Duration) {
        loop {
            tokio::select! {
                _ = self.kick.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.checkpoint().await {
                tracing::error!(error = %e, "journal checkpoint failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

impl Writer {
    /// The end of the current segment, if it is still segment `seq`.
    fn end_in(&self, seq: u64) -> Option<u64> {
        (self.seg.seq == seq).then_some(self.end)
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
