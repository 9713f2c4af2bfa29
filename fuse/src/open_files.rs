//! What a mount has open: regular files by inode (shared by all their
//! handles, so every reader sees unflushed writes), file and directory
//! handles, and the content version the kernel's cached pages of a closed
//! file hold (for FOPEN_KEEP_CACHE at the next open), the committed content
//! of files this mount wrote and closed (their next open here needs no
//! round trip); and how files unlinked while open here are kept alive at
//! the masters (orphans.rs).

use crate::file::FileData;
use fuser::FileType;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tessera_proto::pb::{Attr, Extent};
use tokio::sync::Mutex as AsyncMutex;

pub struct OpenFile {
    pub data: AsyncMutex<FileData>,
    pub handles: AtomicU64,
    /// Unlinked while open here: the master keeps it until this mount
    /// releases it after the last close (see orphans.rs).
    pub orphaned: std::sync::atomic::AtomicBool,
    /// Another mount changed the file (a lease revoke): the next read
    /// reloads the committed content unless this mount has unflushed
    /// writes (what a database relies on after taking a lock).
    pub revoked: std::sync::atomic::AtomicBool,
    /// The lease generation read before this mount's last commit of the
    /// file (u64::MAX: none since it was opened).
    pub committed_under: AtomicU64,
}

/// Files remembered closed at most, and the most extents one may have.
const MAX_CLOSED: usize = 10_000;
const MAX_CLOSED_EXTENTS: usize = 256;

/// A file this mount committed and then closed: its committed size,
/// content version and extents, as of lease generation `gen`. While that
/// lease holds no one else changed it (the commit registered this mount on
/// it, so a change by another would have been revoked here first, and a
/// revoke bumps the generation), so the next open here uses them (rsync
/// opens each file it wrote again to set its mode).
pub struct ClosedFile {
    pub size: u64,
    pub version: u64,
    pub extents: Vec<Extent>,
    pub gen: u64,
}

impl OpenFiles {
    pub fn remember_closed(&self, ino: u64, c: ClosedFile) {
        if c.extents.len() > MAX_CLOSED_EXTENTS {
            return;
        }
        let mut closed = self.closed.lock();
        if closed.len() >= MAX_CLOSED {
            closed.clear();
        }
        closed.insert(ino, c);
    }

    /// The closed file's content, if remembered (it is then forgotten: the
    /// open file holds it from now on).
    pub fn take_closed(&self, ino: u64) -> Option<ClosedFile> {
        self.closed.lock().remove(&ino)
    }

    pub fn forget_closed(&self, ino: u64) {
        self.closed.lock().remove(&ino);
    }
}

pub struct DirHandle {
    pub entries: Vec<(u64, FileType, Vec<u8>, Option<Attr>)>,
    /// The listing is under this mount's lease (the kernel may keep its
    /// entries; otherwise it must ask again).
    pub leased: bool,
}

pub struct OpenFiles {
    pub files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    /// File handle -> (inode, open flags).
    pub handles: Mutex<HashMap<u64, (u64, i32)>>,
    pub dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    pub next_fh: AtomicU64,
    pub page_versions: Mutex<HashMap<u64, u64>>,
    pub closed: Mutex<HashMap<u64, ClosedFile>>,
}

impl Default for OpenFiles {
    fn default() -> Self {
        OpenFiles {
            files: Mutex::default(),
            handles: Mutex::default(),
            dirs: Mutex::default(),
            // 0 is no handle.
            next_fh: AtomicU64::new(1),
            page_versions: Mutex::default(),
            closed: Mutex::default(),
        }
    }
}

/// How this mount keeps its orphans alive at the masters.
pub struct OrphanRenewal {
    pub every: std::time::Duration,
    /// Whether the renewing task runs (one at a time).
    pub(crate) running: std::sync::atomic::AtomicBool,
}

impl Default for OrphanRenewal {
    fn default() -> Self {
        OrphanRenewal { every: std::time::Duration::from_secs(600), running: std::sync::atomic::AtomicBool::new(false) }
    }
}
