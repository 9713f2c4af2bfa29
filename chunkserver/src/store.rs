//! The on-disk chunk store. Each chunk is one file named by its BLAKE3 hex id
//! in one of 256 fan-out directories (`chunks/ab/abcd…`), made (and made
//! durable) when the store opens. One level, as MooseFS does: after a cold
//! start, reading a chunk needs the few blocks of one shared directory, not
//! a directory block of its own. Writes go to `tmp/`, are verified against
//! the id, fsynced, renamed into place and the directory fsynced: a chunk
//! file either exists whole and correct or not at all. Small chunks take a
//! faster route to the same place: see `journal`.

use crate::error::StoreError;
use crate::journal::Journal;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tessera_proto::ChunkId;
use tessera_util::durable::sync_dir;

pub struct ChunkStore {
    root: PathBuf,
    reserve: u64,
    used: AtomicU64,
    count: AtomicU64,
    /// Chunks added/removed since the last report to the master: the last
    /// change of each (true = added). A chunk deleted and written again
    /// between two reports must reach the master as held, and one written
    /// then deleted as gone: two separate lists would lose that order.
    changes: Mutex<HashMap<ChunkId, bool>>,
    journal: Arc<Journal>,
}

#[derive(Debug, Clone, Copy)]
pub struct DiskStats {
    pub capacity: u64,
    pub free: u64,
}

pub fn disk_stats(path: &Path) -> std::io::Result<DiskStats> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and st a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(DiskStats { capacity: st.f_blocks as u64 * st.f_frsize as u64, free: st.f_bavail as u64 * st.f_frsize as u64 })
}

impl ChunkStore {
    /// Opens (creating if needed) a store and scans it; returns the store and
    /// the list of chunks it holds (for the first full report).
    pub fn open(root: &Path, reserve: u64) -> Result<(ChunkStore, Vec<ChunkId>), StoreError> {
        let chunks = root.join("chunks");
        std::fs::create_dir_all(&chunks)?;
        for i in 0..=255u8 {
            let d = chunks.join(format!("{i:02x}"));
            if !d.exists() {
                std::fs::create_dir(&d)?;
            }
        }
        sync_dir(&chunks)?;
        sync_dir(root)?;
        Self::flatten_two_level(&chunks)?;
        let tmp = root.join("tmp");
        // Leftover temp files are uploads that never completed: drop them.
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let journal = Arc::new(Journal::open(root)?);
        let ids = Self::scan(root)?;
        let store = ChunkStore {
            root: root.to_path_buf(),
            reserve,
            used: AtomicU64::new(0),
            count: AtomicU64::new(ids.len() as u64),
            changes: Mutex::new(HashMap::new()),
            journal,
        };
        for id in &ids {
            store.used.fetch_add(std::fs::metadata(store.chunk_path(id))?.len(), Ordering::Relaxed);
        }
        Ok((store, ids))
    }

    /// Moves chunks of the earlier two-level layout (`chunks/ab/cd/abcd…`)
    /// up into `chunks/ab/`, durably, and removes the emptied directories.
    fn flatten_two_level(chunks: &Path) -> std::io::Result<()> {
        for a in std::fs::read_dir(chunks)? {
            let a = a?.path();
            let mut moved = false;
            for b in std::fs::read_dir(&a)? {
                let b = b?;
                if !b.file_type()?.is_dir() {
                    continue;
                }
                for f in std::fs::read_dir(b.path())? {
                    let f = f?;
                    std::fs::rename(f.path(), a.join(f.file_name()))?;
                    moved = true;
                }
                if moved {
                    sync_dir(&a)?;
                }
                std::fs::remove_dir(b.path())?;
            }
        }
        Ok(())
    }

    /// Lists every chunk file under `root`.
    pub fn scan(root: &Path) -> std::io::Result<Vec<ChunkId>> {
        let mut ids = Vec::new();
        for a in std::fs::read_dir(root.join("chunks"))? {
            let a = a?;
            if !a.file_type()?.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(a.path())? {
                let name = f?.file_name();
                if let Some(id) = name.to_str().and_then(|s| ChunkId::from_hex(s).ok()) {
                    ids.push(id);
                }
            }
        }
        Ok(ids)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn chunk_path(&self, id: &ChunkId) -> PathBuf {
        crate::journal::chunk_path(&self.root, id)
    }

    pub fn has(&self, id: &ChunkId) -> bool {
        self.journal.holds(id) || self.chunk_path(id).exists()
    }

    /// The small-chunk journal (its checkpoint task is the caller's to run).
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// The bytes of a chunk still held by the journal (not yet a file).
    pub fn journaled(&self, id: &ChunkId) -> Option<Bytes> {
        self.journal.get(id)
    }

    /// Every chunk held: the files plus those still in the journal
    /// (blocking: scans the store).
    pub fn list(&self) -> std::io::Result<Vec<ChunkId>> {
        let mut ids = Self::scan(&self.root)?;
        let on_disk: std::collections::HashSet<ChunkId> = ids.iter().copied().collect();
        ids.extend(self.journal.ids().into_iter().filter(|id| !on_disk.contains(id)));
        Ok(ids)
    }

    /// The whole chunk, from the journal or its file.
    pub async fn read(&self, id: &ChunkId) -> Result<Bytes, StoreError> {
        if let Some(b) = self.journaled(id) {
            return Ok(b);
        }
        match tokio::fs::read(self.chunk_path(id)).await {
            Ok(b) => Ok(Bytes::from(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound(id.to_hex())),
            Err(e) => Err(e.into()),
        }
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn disk(&self) -> std::io::Result<DiskStats> {
        disk_stats(&self.root)
    }

    fn added(&self, id: ChunkId, len: u64) {
        self.used.fetch_add(len, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.changes.lock().insert(id, true);
    }

    /// Takes the chunks added and removed since the last call.
    pub fn take_changes(&self) -> (Vec<ChunkId>, Vec<ChunkId>) {
        let changes = std::mem::take(&mut *self.changes.lock());
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for (id, held) in changes {
            if held {
                added.push(id)
            } else {
                removed.push(id)
            }
        }
        (added, removed)
    }

    pub async fn begin(&self, id: ChunkId, len: u64) -> Result<ChunkWriter<'_>, StoreError> {
        let disk = self.disk()?;
        if disk.free < self.reserve.saturating_add(len) {
            return Err(StoreError::DiskFull { free: disk.free, reserve: self.reserve });
        }
        let tmp = self.root.join("tmp").join(format!("{}.{:016x}", id.to_hex(), rand::random::<u64>()));
        Ok(ChunkWriter {
            store: self,
            id,
            expected_len: len,
            tmp,
            buf: Vec::new(),
            file: None,
            tmp_exists: false,
            hasher: blake3::Hasher::new(),
            written: 0,
        })
    }

    /// Opens a chunk for reading (blocking: call from the blocking pool).
    pub fn open_chunk(&self, id: &ChunkId) -> Result<std::fs::File, StoreError> {
        match std::fs::File::open(self.chunk_path(id)) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound(id.to_hex())),
            Err(e) => Err(e.into()),
        }
    }

    /// Re-hashes a stored chunk; Ok(false) when the content does not match.
    pub async fn verify(&self, id: &ChunkId) -> Result<bool, StoreError> {
        let p = self.chunk_path(id);
        if let Some(b) = self.journaled(id) {
            if !p.exists() {
                return Ok(ChunkId::of(&b) == *id);
            }
        }
        let id2 = *id;
        tokio::task::spawn_blocking(move || -> Result<bool, StoreError> {
            let mut f = match std::fs::File::open(&p) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound(id2.to_hex())),
                Err(e) => return Err(e.into()),
            };
            let mut h = blake3::Hasher::new();
            std::io::copy(&mut f, &mut h)?;
            Ok(ChunkId::from_hash(h.finalize()) == id2)
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    /// Moves a bad chunk out of the store (kept for inspection) and reports
    /// it as removed, so the master re-replicates from a good copy.
    pub async fn quarantine(&self, id: &ChunkId) -> Result<(), StoreError> {
        metrics::counter!("tessera_chunkserver_quarantined_total").increment(1);
        let p = self.chunk_path(id);
        let len = tokio::fs::metadata(&p).await?.len();
        let qdir = self.root.join("quarantine");
        tokio::fs::create_dir_all(&qdir).await?;
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        tokio::fs::rename(&p, qdir.join(format!("{}.{stamp}", id.to_hex()))).await?;
        self.used.fetch_sub(len, Ordering::Relaxed);
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.changes.lock().insert(*id, false);
        tracing::error!(chunk = %id, "corrupt chunk quarantined");
        Ok(())
    }

    pub async fn delete(&self, id: &ChunkId) -> Result<bool, StoreError> {
        if self.journal.holds(id) {
            // Its journal record would bring it back at replay: make it a
            // file first, then delete that.
            self.journal.checkpoint().await?;
        }
        let p = self.chunk_path(id);
        let len = match tokio::fs::metadata(&p).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        tokio::fs::remove_file(&p).await?;
        self.used.fetch_sub(len, Ordering::Relaxed);
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.changes.lock().insert(*id, false);
        Ok(true)
    }
}

/// Chunks up to this size are kept in memory until complete, then written,
/// fsynced and renamed in one trip to the blocking pool.
const IN_MEMORY: usize = 1 << 20;

/// The temp file while the blocking pool writes a frame to it (and hands
/// it back).
struct TempFile(tokio::task::JoinHandle<std::io::Result<std::fs::File>>);

impl TempFile {
    async fn settle(self) -> Result<std::fs::File, StoreError> {
        Ok(self.0.await.map_err(std::io::Error::other)??)
    }
}

/// An in-progress chunk upload: hashed as it streams, committed atomically.
pub struct ChunkWriter<'a> {
    store: &'a ChunkStore,
    id: ChunkId,
    expected_len: u64,
    tmp: PathBuf,
    /// The bytes so far, while they fit in IN_MEMORY.
    buf: Vec<u8>,
    /// The temp file, once the chunk outgrew IN_MEMORY, with its last
    /// frame being written. Frames go to
    /// the kernel straight from the received buffers, with no copy into an
    /// intermediate one, while the next frame is hashed.
    file: Option<TempFile>,
    /// A temp file may exist (Drop removes it).
    tmp_exists: bool,
    hasher: blake3::Hasher,
    written: u64,
}

impl ChunkWriter<'_> {
    pub async fn write(&mut self, data: Bytes) -> Result<(), StoreError> {
        self.written += data.len() as u64;
        if self.written > self.expected_len {
            return Err(StoreError::LengthMismatch {
                id: self.id.to_hex(),
                expected: self.expected_len,
                actual: self.written,
            });
        }
        self.hasher.update(&data);
        let file = match self.file.take() {
            Some(f) => f.settle().await?,
            None if self.buf.len() + data.len() <= IN_MEMORY => {
                self.buf.extend_from_slice(&data);
                return Ok(());
            }
            None => {
                // Created here, not in the background: once tmp_exists is
                // set, Drop's removal can never race the creation.
                self.tmp_exists = true;
                let (tmp, buf) = (self.tmp.clone(), std::mem::take(&mut self.buf));
                tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
                    let mut f = std::fs::File::create(&tmp)?;
                    f.write_all(&buf)?;
                    Ok(f)
                })
                .await
                .map_err(std::io::Error::other)??
            }
        };
        let mut f = file;
        self.file = Some(TempFile(tokio::task::spawn_blocking(move || {
            f.write_all(&data)?;
            Ok(f)
        })));
        Ok(())
    }

    /// Verifies length and hash, fsyncs, renames into place, fsyncs the directory.
    pub async fn finish(mut self) -> Result<(), StoreError> {
        let id = self.id.to_hex();
        if self.written != self.expected_len {
            return Err(StoreError::LengthMismatch { id, expected: self.expected_len, actual: self.written });
        }
        let actual = ChunkId::from_hash(self.hasher.finalize());
        if actual != self.id {
            return Err(StoreError::HashMismatch { id, actual: actual.to_hex() });
        }
        if self.file.is_none() && self.store.journal.takes(self.buf.len()) {
            let (journal, data) = (self.store.journal.clone(), Bytes::from(std::mem::take(&mut self.buf)));
            let id = self.id;
            let fresh = tokio::task::spawn_blocking(move || journal.append(id, data))
                .await
                .map_err(std::io::Error::other)??;
            if fresh {
                self.store.added(id, self.written);
            }
            return Ok(());
        }
        let file = match self.file.take() {
            Some(f) => Some(f.settle().await?),
            None => None,
        };
        let (tmp, buf) = (self.tmp.clone(), std::mem::take(&mut self.buf));
        let dst = self.store.chunk_path(&self.id);
        self.tmp_exists = true;
        let existed = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            let f = match file {
                Some(f) => f,
                None => {
                    let mut f = std::fs::File::create(&tmp)?;
                    f.write_all(&buf)?;
                    f
                }
            };
            f.sync_all()?;
            drop(f);
            let existed = dst.exists();
            std::fs::rename(&tmp, &dst)?;
            if let Some(dir) = dst.parent() {
                sync_dir(dir)?;
            }
            Ok(existed)
        })
        .await
        .map_err(std::io::Error::other)??;
        self.tmp_exists = false;
        if !existed {
            self.store.added(self.id, self.written);
        }
        Ok(())
    }
}

impl Drop for ChunkWriter<'_> {
    fn drop(&mut self) {
        if self.tmp_exists {
            // Abandoned or failed upload: never leave a partial temp file.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_verify_read_delete() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids) = ChunkStore::open(dir.path(), 0).unwrap();
        assert!(ids.is_empty());
        let data = vec![7u8; 3000];
        let id = ChunkId::of(&data);
        let mut w = store.begin(id, 3000).await.unwrap();
        w.write(Bytes::copy_from_slice(&data[..1000])).await.unwrap();
        w.write(Bytes::copy_from_slice(&data[1000..])).await.unwrap();
        w.finish().await.unwrap();
        assert!(store.has(&id));
        store.journal().checkpoint().await.unwrap();
        assert_eq!(std::fs::read(store.chunk_path(&id)).unwrap(), data);
        assert_eq!(store.count(), 1);
        let (_, ids) = ChunkStore::open(dir.path(), 0).unwrap();
        assert_eq!(ids, vec![id]);
        assert!(store.delete(&id).await.unwrap());
        assert!(!store.has(&id));
    }

    /// The report after a delete and a rewrite of one chunk says it is
    /// held (found by CI: the master had applied the add before the delete
    /// and lost all three copies of a chunk GC took from under an upload).
    #[tokio::test]
    async fn a_chunk_deleted_then_written_again_is_reported_held() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = ChunkStore::open(dir.path(), 0).unwrap();
        let data = vec![9u8; 300 << 10];
        let id = ChunkId::of(&data);
        async fn put(store: &ChunkStore, data: &[u8]) {
            let mut w = store.begin(ChunkId::of(data), data.len() as u64).await.unwrap();
            w.write(Bytes::copy_from_slice(data)).await.unwrap();
            w.finish().await.unwrap();
        }
        put(&store, &data).await;
        assert_eq!(store.take_changes(), (vec![id], vec![]));
        assert!(store.delete(&id).await.unwrap());
        put(&store, &data).await;
        assert_eq!(store.take_changes(), (vec![id], vec![]), "deleted then written: held");
        assert!(store.delete(&id).await.unwrap());
        assert_eq!(store.take_changes(), (vec![], vec![id]));
        put(&store, &data).await;
        assert!(store.delete(&id).await.unwrap());
        assert_eq!(store.take_changes(), (vec![], vec![id]), "written then deleted: gone");
    }

    #[tokio::test]
    async fn rejects_wrong_hash_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = ChunkStore::open(dir.path(), 0).unwrap();
        let id = ChunkId::of(b"the real content");
        let mut w = store.begin(id, 5).await.unwrap();
        w.write(Bytes::from_static(b"bogus")).await.unwrap();
        assert!(matches!(w.finish().await, Err(StoreError::HashMismatch { .. })));
        assert!(!store.has(&id));
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn large_chunks_stream_through_a_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = ChunkStore::open(dir.path(), 0).unwrap();
        let data: Vec<u8> = (0..3 * IN_MEMORY + 17).map(|i| (i * 31 % 251) as u8).collect();
        let id = ChunkId::of(&data);
        let mut w = store.begin(id, data.len() as u64).await.unwrap();
        for piece in data.chunks(IN_MEMORY / 2) {
            w.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 1, "spilled to a temp file");
        w.finish().await.unwrap();
        assert_eq!(std::fs::read(store.chunk_path(&id)).unwrap(), data);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        // An abandoned large upload leaves no temp file behind.
        let other = ChunkId::of(b"never finished");
        let mut w = store.begin(other, data.len() as u64).await.unwrap();
        w.write(Bytes::copy_from_slice(&data[..IN_MEMORY + 1])).await.unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn earlier_two_level_layout_is_flattened() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"a chunk stored by an earlier version".to_vec();
        let id = ChunkId::of(&data);
        let h = id.to_hex();
        let old = dir.path().join("chunks").join(&h[0..2]).join(&h[2..4]);
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join(&h), &data).unwrap();
        let (store, ids) = ChunkStore::open(dir.path(), 0).unwrap();
        assert_eq!(ids, vec![id]);
        assert_eq!(std::fs::read(store.chunk_path(&id)).unwrap(), data);
        assert!(!old.exists());
        assert_eq!(store.used(), data.len() as u64);
    }

    #[tokio::test]
    async fn refuses_when_reserve_exceeds_free() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = ChunkStore::open(dir.path(), u64::MAX / 2).unwrap();
        let r = store.begin(ChunkId::of(b"x"), 1).await;
        assert!(matches!(r, Err(StoreError::DiskFull { .. })));
    }
}
