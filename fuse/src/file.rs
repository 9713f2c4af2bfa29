//! The content of one open file as this mount sees it: the committed extent
//! list plus dirty chunk-sized slots. A slot holds only the range of bytes
//! written into it (no read-modify-write of the chunk): a small write in a
//! big file uploads a small chunk, spliced into the extent list over the
//! committed bytes. A full slot is uploaded in the background while writing
//! goes on; `flush` uploads the rest and commits the spliced extent list in
//! one Raft command. Reads see unflushed data.

use bytes::Bytes;
use std::collections::BTreeMap;
use tessera_client::fs::Riders;
use tessera_client::transfer::Transfer;
use tessera_client::{ClientError, Fs, Result};
use tessera_proto::extents::{hole, slice, splice};
use tessera_proto::pb::{Attr, Extent, Timespec};
use tessera_proto::ChunkId;
use tokio::task::JoinHandle;

/// Background uploads allowed per file before a writer waits.
const MAX_PENDING: usize = 8;
/// Dirty slots after which a long write commits what it has: bounds memory
/// and how long uploaded chunks stay unreferenced. (Scattered small writes
/// also gain: a slot starts afresh after a commit, instead of its one held
/// range growing over the gaps between them.)
const COMMIT_EVERY: usize = 64;

/// A flush with at most this much left to upload commits while it uploads
/// (`commit_while_uploading`): small files, small overwrites.
const UNSEALED_UPTO: u64 = 1 << 20;

/// Written chunks up to this size are kept in the read cache.
const CACHE_WRITTEN_UPTO: usize = 1 << 20;

/// Extents a slot's range may be cut into before a flush rewrites the
/// whole slot as one chunk: bounds the extent list (and the old chunks kept
/// alive by pieces) under many small writes. A file of few slots may cut
/// each into more pieces, up to EXTENT_BUDGET for the whole file: the master
/// keeps a file's extent list as one value, so the budget bounds what every
/// commit rewrites, while a slot rewrite (read, upload and store 3 copies of
/// a whole chunk) is what bounds fsynced random writes.
const MIN_PIECES: usize = 16;
const MAX_PIECES: usize = 128;
const EXTENT_BUDGET: usize = 1024;

fn piece_limit(size: u64, chunk: u64) -> usize {
    let slots = size.div_ceil(chunk.max(1)).max(1);
    (EXTENT_BUDGET / slots.min(EXTENT_BUDGET as u64) as usize).clamp(MIN_PIECES, MAX_PIECES)
}

/// What rides on a file's commit from the mount's write-behind layer
/// (behind.rs): today the file's held create. An open file knows only this
/// trait, not how the layer holds or sends anything.
pub trait CommitRider: Send + Sync {
    /// The create for a commit of `ino` to carry, if one is held and may go
    /// now. The layer keeps its bookkeeping until `landed`.
    fn take(&self, ino: u64) -> Option<tessera_proto::pb::CreateRequest>;
    /// The commit that carried `ino`'s create returned `r`.
    fn landed<'a>(&'a self, fs: &'a Fs, ino: u64, r: &'a Result<Attr>) -> futures::future::BoxFuture<'a, ()>;
    /// Whether the layer still holds anything of `ino`.
    fn holds(&self, ino: u64) -> bool;
}

/// A slot's bytes `[lo, lo + len)`, offsets within the slot.
enum Slot {
    /// Written, not yet uploaded.
    Buf { lo: u64, bytes: Vec<u8> },
    /// Being uploaded; reads use `data`.
    Pending { lo: u64, data: Bytes, id: ChunkId, task: JoinHandle<Result<()>> },
    /// Uploaded: the chunk holding exactly these bytes.
    Stored { lo: u64, len: u64, id: ChunkId },
}

pub struct FileData {
    pub ino: u64,
    chunk: u64,
    base: Vec<Extent>,
    committed_size: u64,
    /// Content version of the committed view (the master bumps it per commit).
    committed_version: u64,
    pub size: u64,
    slots: BTreeMap<u64, Slot>,
    /// Error of a background upload, reported at the next flush.
    failed: Option<ClientError>,
    /// An unsealed commit went out whose upload then failed: the committed
    /// list may name a chunk no server holds yet, so the next flush
    /// uploads before it commits (an unsealed patch is undone only to what
    /// was before it, which must be durable: master fsm/unsealed.rs).
    base_unsure: bool,
    last_read_end: u64,
    /// Sequential prefetch has been issued up to here.
    prefetched_to: u64,
    /// GC epoch read before the first upload of the pending commit.
    epoch: Option<u64>,
    /// When the first chunk not yet committed was uploaded: GC takes an
    /// unreferenced chunk after its grace, so it must be committed sooner.
    uploaded_at: Option<std::time::Instant>,
    /// The committed view was cut by a local truncate the master has not
    /// seen yet (the next flush commits it even if the size is unchanged).
    trimmed: bool,
    /// Committed bytes still part of the file: the committed size, or less
    /// after a local truncate (the cut the next commit makes).
    keep: u64,
    /// When this mount last changed the content (write, truncate) without
    /// committing it: what stat shows as mtime and ctime until the commit.
    modified: Option<Timespec>,
    /// The mount's write-behind layer while it holds something of this
    /// file (its create): the first commit carries it (create_behind.rs).
    pub(crate) rider: Option<std::sync::Arc<dyn CommitRider>>,
    /// Attribute changes made while the file had unflushed writes: they
    /// ride on the next commit (setattr_behind.rs).
    pub(crate) pending_attrs: Option<tessera_proto::pb::SetAttrRequest>,
    /// Who this mount acts as when it commits the file or reloads its
    /// extents: the last process that opened it for writing, or else the
    /// first that opened it (the masters check these, and a certificate's
    /// uid map may squash them).
    pub(crate) cred: tessera_proto::pb::Cred,
}

/// About how many extents cover `[a, b)` of a list whose extents end at
/// `ends` (a hole past its end counts as one).
fn pieces_in(ends: &[u64], a: u64, b: u64) -> usize {
    if a >= b {
        return 0;
    }
    let first = ends.partition_point(|&e| e <= a);
    let last = ends.partition_point(|&e| e < b);
    let within = if first < ends.len() { last.min(ends.len() - 1) + 1 - first } else { 0 };
    within + usize::from(b > ends.last().copied().unwrap_or(0))
}

/// Appends `src[a..b]`, zero-filled where `src` is shorter.
fn copy_range(src: &[u8], a: usize, b: usize, out: &mut Vec<u8>) {
    let have = src.len().min(b);
    if a < have {
        out.extend_from_slice(&src[a..have]);
    }
    let copied = have.saturating_sub(a);
    out.resize(out.len() + (b - a - copied), 0);
}

impl FileData {
    pub fn new(ino: u64, chunk: u64, attr: &Attr, base: Vec<Extent>) -> FileData {
        FileData {
            ino,
            chunk,
            base,
            committed_size: attr.size,
            committed_version: attr.version,
            size: attr.size,
            slots: BTreeMap::new(),
            failed: None,
            base_unsure: false,
            last_read_end: 0,
            prefetched_to: 0,
            epoch: None,
            uploaded_at: None,
            trimmed: false,
            keep: attr.size,
            modified: None,
            rider: None,
            pending_attrs: None,
            cred: Default::default(),
        }
    }

    /// The committed size, version and extents when nothing is pending.
    pub fn committed_view(&self) -> Option<(u64, u64, &[Extent])> {
        let settled = !self.is_dirty() && !self.base_unsure && self.rider.is_none() && self.failed.is_none();
        settled.then_some((self.committed_size, self.committed_version, &self.base))
    }

    /// Whether attributes from the master (content version `version`) are
    /// older than what this mount holds: local writes not yet committed, or
    /// a commit that finished after those attributes were read.
    pub fn newer_than(&self, version: u64) -> bool {
        self.is_dirty() || version < self.committed_version
    }

    /// The content changed here now: mtime and ctime are now, and a pending
    /// explicit mtime (set before this write) no longer holds.
    fn touch(&mut self) {
        self.modified = Some(tessera_proto::time::now());
        if let Some(p) = self.pending_attrs.as_mut() {
            (p.mtime, p.mtime_now) = (None, false);
        }
    }

    /// The committed content version this view holds.
    pub fn committed_version(&self) -> u64 {
        self.committed_version
    }

    pub fn is_dirty(&self) -> bool {
        !self.slots.is_empty() || self.size != self.committed_size || self.trimmed
    }

    /// Whether chunks uploaded for this file have waited `idle` for their
    /// commit (a writer that paused with the file open).
    pub fn commit_due(&self, idle: std::time::Duration) -> bool {
        self.uploaded_at.is_some_and(|t| t.elapsed() >= idle)
    }

    /// The time of the last uncommitted change, if any.
    pub fn modified(&self) -> Option<&Timespec> {
        self.modified.as_ref().filter(|_| self.is_dirty())
    }

    /// Replaces the committed view (after open or a truncate by the master).
    pub fn reset(&mut self, attr: &Attr, base: Vec<Extent>) {
        self.base = base;
        self.committed_size = attr.size;
        self.committed_version = attr.version;
        self.size = attr.size;
        self.slots.clear();
        self.trimmed = false;
        self.keep = attr.size;
        self.modified = None;
        // New content: what was prefetched belongs to the old one.
        self.prefetched_to = 0;
    }

    /// Truncates (or extends with zeros) the file in this mount's view; the
    /// next flush commits it like a write. ftruncate on an open file is
    /// frequent (fsx, databases): committing each one would upload every
    /// dirty chunk each time.
    pub async fn truncate(&mut self, t: &Transfer, size: u64) -> Result<()> {
        let gone: Vec<u64> = self.slots.keys().copied().filter(|s| s * self.chunk >= size).collect();
        for s in gone {
            if let Some(Slot::Pending { task, .. }) = self.slots.remove(&s) {
                task.abort();
            }
        }
        let s = size / self.chunk;
        if let Some((lo, mut bytes)) = self.take_held(t, s).await? {
            let keep = (size - s * self.chunk).saturating_sub(lo);
            if keep > 0 {
                bytes.truncate(keep as usize);
                self.slots.insert(s, Slot::Buf { lo, bytes });
            }
        }
        // Committed bytes past the new end must read as zeros if the file
        // grows again: cut them from the view.
        let covered: u64 = self.base.iter().map(|e| e.len).sum();
        if size < covered {
            self.base = slice(&self.base, 0, size);
        }
        self.size = size;
        self.keep = self.keep.min(size);
        self.trimmed = true;
        self.touch();
        Ok(())
    }

    async fn committed_bytes(&self, t: &Transfer, from: u64, len: u64) -> Result<Vec<u8>> {
        t.read_range(&self.base, self.committed_size, from, len).await
    }

    /// Committed bytes of the file range `[from, to)`, zeros where the
    /// committed view has none.
    async fn committed_in(&self, t: &Transfer, from: u64, to: u64) -> Result<Vec<u8>> {
        let mut v = self.committed_bytes(t, from, to - from).await?;
        v.resize((to - from) as usize, 0);
        Ok(v)
    }

    /// Takes slot `s` out: where its bytes start in the slot, and the bytes.
    async fn take_held(&mut self, t: &Transfer, s: u64) -> Result<Option<(u64, Vec<u8>)>> {
        Ok(match self.slots.remove(&s) {
            None => None,
            Some(Slot::Buf { lo, bytes }) => Some((lo, bytes)),
            // The upload goes on and its chunk is simply not referenced.
            Some(Slot::Pending { lo, data, .. }) => Some((lo, data.to_vec())),
            Some(Slot::Stored { lo, len, id }) => Some((lo, t.fetch_chunk(id).await?[..len as usize].to_vec())),
        })
    }

    /// The bytes of slot `s` from its start to `end` (offset in the slot):
    /// the committed view with the slot's range laid over it.
    async fn slot_whole(&mut self, t: &Transfer, s: u64, end: u64) -> Result<Vec<u8>> {
        let start = s * self.chunk;
        let mut v = self.committed_in(t, start, start + end).await?;
        if let Some((lo, bytes)) = self.take_held(t, s).await? {
            if lo < end {
                let n = bytes.len().min((end - lo) as usize);
                v[lo as usize..lo as usize + n].copy_from_slice(&bytes[..n]);
            }
        }
        Ok(v)
    }

    /// Does a write that needs no I/O and returns true: it lands in one
    /// slot, new or held in memory (`Buf`) and grown without a gap, and
    /// neither fills the slot (an upload) nor brings a periodic commit.
    /// Returns false, changing nothing, for any other: `write` does it.
    /// The mount runs this on the FUSE thread, saving the hop to tokio for
    /// most small writes.
    pub fn write_buffered(&mut self, off: u64, data: &[u8]) -> bool {
        let end = off + data.len() as u64;
        let s = off / self.chunk;
        let start = s * self.chunk;
        if data.is_empty() || end > start + self.chunk || self.slots.len() + 1 >= COMMIT_EVERY {
            return false;
        }
        let (a, b) = (off - start, end - start);
        match self.slots.get_mut(&s) {
            None if a == 0 && b == self.chunk => return false,
            None => {
                self.slots.insert(s, Slot::Buf { lo: a, bytes: data.to_vec() });
            }
            Some(Slot::Buf { lo, bytes }) => {
                let hi = *lo + bytes.len() as u64;
                if a < *lo || a > hi || (*lo == 0 && b.max(hi) == self.chunk) {
                    return false;
                }
                let (from, to) = ((a - *lo) as usize, (b - *lo) as usize);
                if to > bytes.len() {
                    bytes.resize(to, 0);
                }
                bytes[from..to].copy_from_slice(data);
            }
            Some(_) => return false,
        }
        self.size = self.size.max(end);
        self.touch();
        true
    }

    pub async fn write(&mut self, fs: &Fs, off: u64, data: &[u8]) -> Result<()> {
        let t = &fs.transfer;
        let end = off + data.len() as u64;
        let mut pos = off;
        while pos < end {
            let s = pos / self.chunk;
            let start = s * self.chunk;
            let piece_end = end.min(start + self.chunk);
            let (a, b) = (pos - start, piece_end - start);
            let (lo, mut bytes) = match self.take_held(t, s).await? {
                None => (a, vec![0; (b - a) as usize]),
                Some((mut lo, mut bytes)) => {
                    // Grow the held range to cover [a, b); a gap between the
                    // two comes from the committed view.
                    if a < lo {
                        let mut front = vec![0; (b.min(lo) - a) as usize];
                        if b < lo {
                            front.extend(self.committed_in(t, start + b, start + lo).await?);
                        }
                        front.extend_from_slice(&bytes);
                        (lo, bytes) = (a, front);
                    }
                    let hi = lo + bytes.len() as u64;
                    if a > hi {
                        bytes.extend(self.committed_in(t, start + hi, start + a).await?);
                    }
                    if b > hi {
                        bytes.resize((b - lo) as usize, 0);
                    }
                    (lo, bytes)
                }
            };
            bytes[(a - lo) as usize..(b - lo) as usize]
                .copy_from_slice(&data[(pos - off) as usize..(piece_end - off) as usize]);
            let full = lo == 0 && bytes.len() as u64 == self.chunk;
            self.slots.insert(s, Slot::Buf { lo, bytes });
            if full {
                if self.epoch.is_none() {
                    self.epoch = Some(fs.recent_epoch().await?);
                }
                self.start_upload(t, s).await;
            }
            pos = piece_end;
        }
        self.size = self.size.max(end);
        self.touch();
        // Commit now and then during long writes: bounds memory and how long
        // uploaded chunks stay unreferenced (the GC grace period).
        if self.slots.len() >= COMMIT_EVERY {
            self.flush(fs).await?;
        }
        Ok(())
    }

    /// Uploads a full slot in the background (sequential writes stream).
    async fn start_upload(&mut self, t: &Transfer, s: u64) {
        let pending = self.slots.values().filter(|v| matches!(v, Slot::Pending { .. })).count();
        if pending >= MAX_PENDING {
            self.settle().await;
        }
        self.spawn_upload(t, s);
    }

    /// Turns a buffered slot into a background upload.
    fn spawn_upload(&mut self, t: &Transfer, s: u64) {
        if let Some(Slot::Buf { lo, bytes }) = self.slots.remove(&s) {
            self.uploaded_at.get_or_insert_with(std::time::Instant::now);
            let data = Bytes::from(bytes);
            let id = ChunkId::of(&data);
            let (t2, d2) = (t.clone(), data.clone());
            let task = tokio::spawn(async move {
                t2.store_chunk(id, d2.clone()).await?;
                // Small chunks just written stay readable from memory (their
                // id is their content, so they can never be stale); large
                // ones would only push read data out of the cache.
                if let Some(cache) = t2.cache.as_ref().filter(|_| d2.len() <= CACHE_WRITTEN_UPTO) {
                    cache.insert(id, d2);
                }
                Ok(())
            });
            self.slots.insert(s, Slot::Pending { lo, data, id, task });
        }
    }

    /// Waits for background uploads; their slots become Stored.
    async fn settle(&mut self) {
        let keys: Vec<u64> =
            self.slots.iter().filter(|(_, v)| matches!(v, Slot::Pending { .. })).map(|(k, _)| *k).collect();
        for k in keys {
            if let Some(Slot::Pending { lo, data, id, task }) = self.slots.remove(&k) {
                let r = task.await.unwrap_or_else(|e| Err(ClientError::fs(libc::EIO, e.to_string())));
                match r {
                    Ok(()) => {
                        self.slots.insert(k, Slot::Stored { lo, len: data.len() as u64, id });
                    }
                    Err(e) => {
                        // Keep the bytes so a later flush retries the upload.
                        self.slots.insert(k, Slot::Buf { lo, bytes: data.to_vec() });
                        self.failed.get_or_insert(e);
                    }
                }
            }
        }
    }

    pub async fn read(&mut self, t: &Transfer, off: u64, len: u64) -> Result<Bytes> {
        let end = self.size.min(off.saturating_add(len));
        if off >= end {
            return Ok(Bytes::new());
        }
        self.prefetch(t, off, end);
        // The usual read: inside one slot this mount holds nothing of, and
        // inside one committed chunk: a slice of the cached chunk, no copy.
        let s = off / self.chunk;
        if (end - 1) / self.chunk == s && !self.slots.contains_key(&s) {
            let v = t.read_range_bytes(&self.base, self.committed_size, off, end - off).await?;
            if v.len() as u64 == end - off {
                self.last_read_end = end;
                return Ok(v);
            }
        }
        let mut out = Vec::with_capacity((end - off) as usize);
        let mut pos = off;
        while pos < end {
            let s = pos / self.chunk;
            let start = s * self.chunk;
            let piece_end = end.min(start + self.chunk);
            let (a, b) = (pos - start, piece_end - start);
            let stored;
            let held: Option<(u64, &[u8])> = match self.slots.get(&s) {
                Some(Slot::Buf { lo, bytes }) => Some((*lo, bytes)),
                Some(Slot::Pending { lo, data, .. }) => Some((*lo, data)),
                Some(Slot::Stored { lo, len, id }) => {
                    stored = t.fetch_chunk(*id).await?;
                    Some((*lo, &stored[..*len as usize]))
                }
                None => None,
            };
            match held {
                // The slot holds all of it.
                Some((lo, held)) if a >= lo && b <= lo + held.len() as u64 => {
                    out.extend_from_slice(&held[(a - lo) as usize..(b - lo) as usize])
                }
                // Part of it: the held bytes over the committed ones.
                Some((lo, held)) => {
                    let mut v = self.committed_in(t, pos, piece_end).await?;
                    let (x, y) = (a.max(lo), b.min(lo + held.len() as u64));
                    if x < y {
                        v[(x - a) as usize..(y - a) as usize]
                            .copy_from_slice(&held[(x - lo) as usize..(y - lo) as usize]);
                    }
                    out.extend_from_slice(&v);
                }
                None => {
                    // Past the committed size (the file grew through other
                    // slots) the bytes are zeros.
                    let v = self.committed_bytes(t, pos, piece_end - pos).await?;
                    let n = (piece_end - pos) as usize;
                    if out.is_empty() {
                        // The usual read, inside one chunk: no second copy.
                        out = v;
                        out.resize(n, 0);
                    } else {
                        copy_range(&v, 0, n, &mut out);
                    }
                }
            }
            pos = piece_end;
        }
        self.last_read_end = end;
        Ok(Bytes::from(out))
    }

    /// On sequential reads, warms the cache with the next chunks. Each chunk
    /// is asked for once, when the window first reaches it (a FUSE read is
    /// far smaller than a chunk; asking on every read cost more than it saved).
    fn prefetch(&mut self, t: &Transfer, off: u64, end: u64) {
        if off != self.last_read_end || t.cache.is_none() {
            return;
        }
        let ahead = self.chunk * t.parallel as u64;
        // Whole chunks only, so each one is asked for once.
        let target = ((end + ahead) / self.chunk * self.chunk).min(self.committed_size);
        let from = end.max(self.prefetched_to);
        if target <= from {
            return;
        }
        for e in slice(&self.base, from, target) {
            if let Ok(id) = ChunkId::from_slice(&e.id) {
                let t2 = t.clone();
                tokio::spawn(async move {
                    let _ = t2.fetch_chunk(id).await;
                });
            }
        }
        self.prefetched_to = target;
    }

    /// Uploads every dirty slot and commits the new extent list atomically.
    /// Returns the new attributes, or None when there was nothing to do.
    pub async fn flush(&mut self, fs: &Fs) -> Result<Option<Attr>> {
        if !self.is_dirty() {
            return Ok(None);
        }
        let acting = fs.acting_as(self.cred.clone());
        let fs = &acting;
        let t = &fs.transfer;
        if self.epoch.is_none() {
            self.epoch = Some(fs.recent_epoch().await?);
        }
        self.compact(t).await?;
        let bufs: Vec<u64> =
            self.slots.iter().filter(|(_, v)| matches!(v, Slot::Buf { .. })).map(|(k, _)| *k).collect();
        for s in bufs {
            self.spawn_upload(t, s);
        }
        self.failed = None;
        let uploading = self.uploading_bytes();
        let attr = if uploading > 0 && uploading <= UNSEALED_UPTO && !self.base_unsure {
            self.commit_while_uploading(fs).await?
        } else {
            self.settle().await;
            if let Some(e) = self.failed.take() {
                return Err(e);
            }
            let patches = self.patches();
            let epoch = self.epoch.unwrap_or(0);
            let attr = self.commit_patches(fs, self.size, patches, epoch).await?;
            self.base_unsure = false;
            attr
        };
        self.epoch = None;
        self.uploaded_at = None;
        self.committed_version = attr.version;
        self.slots.clear();
        self.trimmed = false;
        self.modified = None;
        self.pending_attrs = None;
        Ok(Some(attr))
    }

    /// Bytes of the slots being uploaded or about to be.
    fn uploading_bytes(&self) -> u64 {
        self.slots
            .values()
            .map(|s| match s {
                Slot::Buf { bytes, .. } => bytes.len() as u64,
                Slot::Pending { data, .. } => data.len() as u64,
                Slot::Stored { .. } => 0,
            })
            .sum()
    }

    /// One patch per uploaded (or uploading: its id is known) slot.
    fn patches(&self) -> Vec<(u64, Vec<Extent>)> {
        let mut patches = Vec::new();
        for (s, slot) in &self.slots {
            let (lo, len, id) = match slot {
                Slot::Stored { lo, len, id } => (*lo, *len, id),
                Slot::Pending { lo, data, id, .. } => (*lo, data.len() as u64, id),
                Slot::Buf { .. } => continue,
            };
            let from = s * self.chunk + lo;
            let len = len.min(self.size.saturating_sub(from));
            if len > 0 {
                patches.push((
                    from,
                    vec![Extent { id: Bytes::copy_from_slice(id.as_bytes()), offset: 0, len, ..Default::default() }],
                ));
            }
        }
        patches
    }

    /// A small flush sends its commit while the chunks upload (master
    /// fsm/unsealed.rs) and returns when both are done: the chunks are on
    /// their replicas and the list committed, as for any flush, in the time
    /// of the longer of the two. That is a new small file's close, and an
    /// fsync after a small overwrite (a database's commit).
    async fn commit_while_uploading(&mut self, fs: &Fs) -> Result<Attr> {
        let patches = self.patches();
        let (keep, size, epoch) = (self.keep, self.size, self.epoch.unwrap_or(0));
        let (list, create) = self.begin_commit(size, &patches)?;
        let carried = create.is_some();
        // The mtime this mount's stat showed since the write: the kernel keeps
        // cached pages while a file's mtime does not change under it.
        let riders = Riders { create, attrs: self.pending_attrs.clone(), mtime: self.modified };
        let sent = std::time::Instant::now();
        let commit = fs.commit_splice(self.ino, keep, size, patches, epoch, riders, true);
        let upload = async {
            self.settle().await;
            sent.elapsed()
        };
        let (took, r) = tokio::join!(upload, commit);
        let attr = self.end_commit(fs, carried, list, size, r).await?;
        // A failed upload keeps its slot (Buf): the next flush uploads it
        // again, and its id (its content) is the one just committed.
        if let Some(e) = self.failed.take() {
            self.base_unsure = true;
            return Err(e);
        }
        if took > tessera_proto::UNSEALED_UPLOAD_LIMIT {
            self.base_unsure = true;
            // The masters may already have judged the commit abandoned.
            return Err(ClientError::fs(libc::EIO, format!("upload outlived its unsealed commit ({took:?})")));
        }
        Ok(attr)
    }

    /// Commits `patches` over the committed view (cut where a local
    /// truncate cut it) at `size`, and makes the result the committed view.
    /// The master builds the same list from the same splice.
    async fn commit_patches(
        &mut self,
        fs: &Fs,
        size: u64,
        patches: Vec<(u64, Vec<Extent>)>,
        epoch: u64,
    ) -> Result<Attr> {
        let (list, create) = self.begin_commit(size, &patches)?;
        let carried = create.is_some();
        // The mtime this mount's stat showed since the write: the kernel keeps
        // cached pages while a file's mtime does not change under it.
        let riders = Riders { create, attrs: self.pending_attrs.clone(), mtime: self.modified };
        let r = fs.commit_splice(self.ino, self.keep, size, patches, epoch, riders, false).await;
        self.end_commit(fs, carried, list, size, r).await
    }

    /// The list a commit of `patches` makes, and this file's create if
    /// still held and nothing else is in flight before it (it then lands
    /// with the commit).
    fn begin_commit(
        &self,
        size: u64,
        patches: &[(u64, Vec<Extent>)],
    ) -> Result<(Vec<Extent>, Option<tessera_proto::pb::CreateRequest>)> {
        let list = splice(&self.base, self.keep, size, patches)
            .ok_or_else(|| ClientError::fs(libc::EIO, "a patch reaches past the end of the file"))?;
        Ok((list, self.rider.as_ref().and_then(|c| c.take(self.ino))))
    }

    /// After a commit answered `r`: the carried create's fate, and on success
    /// the new committed view.
    async fn end_commit(
        &mut self,
        fs: &Fs,
        carried: bool,
        list: Vec<Extent>,
        size: u64,
        r: Result<Attr>,
    ) -> Result<Attr> {
        if let (Some(c), true) = (self.rider.as_ref(), carried) {
            c.landed(fs, self.ino, &r).await;
        }
        if self.rider.as_ref().is_some_and(|c| !c.holds(self.ino)) {
            self.rider = None; // landed, one way or another
        }
        let attr = r?;
        self.base = list;
        self.keep = size;
        self.committed_size = size;
        self.size = size;
        self.committed_version = attr.version;
        self.prefetched_to = 0;
        Ok(attr)
    }

    /// A slot whose range would leave its part of the file in more than
    /// `piece_limit` extents is rewritten whole, as one chunk.
    async fn compact(&mut self, t: &Transfer) -> Result<()> {
        let mut whole = Vec::new();
        let limit = piece_limit(self.size, self.chunk);
        // End offset of each committed extent, to count pieces by search.
        let ends: Vec<u64> = self
            .base
            .iter()
            .scan(0u64, |at, e| {
                *at += e.len;
                Some(*at)
            })
            .collect();
        for (s, slot) in &self.slots {
            let Slot::Buf { lo, bytes } = slot else { continue };
            let start = s * self.chunk;
            let end = (start + self.chunk).min(self.size);
            let hi = start + lo + bytes.len() as u64;
            let pieces = pieces_in(&ends, start, start + lo) + 1 + pieces_in(&ends, hi, end);
            if pieces > limit {
                whole.push((*s, end - start));
            }
        }
        for (s, end) in whole {
            let bytes = self.slot_whole(t, s, end).await?;
            self.slots.insert(s, Slot::Buf { lo: 0, bytes });
        }
        Ok(())
    }

    /// Makes `[from, to)` read as zeros in one commit (a hole: no chunk
    /// holds it); pending writes are committed first. A `to` past the end
    /// grows the file. Used by fallocate (extend, punch hole, zero range).
    pub async fn zero_range(&mut self, fs: &Fs, from: u64, to: u64) -> Result<Attr> {
        self.flush(fs).await?;
        let size = self.size.max(to);
        let epoch = fs.recent_epoch().await?;
        self.commit_patches(fs, size, vec![(from, vec![hole(to.saturating_sub(from))])], epoch).await
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
