//! What a mount has open: regular files by inode (shared by all their
//! handles, so every reader sees unflushed writes), file and directory
//! handles, and the content version the kernel's cached pages of a closed
//! file hold (for FOPEN_KEEP_CACHE at the next open); and how files unlinked
//! while open here are kept alive at the masters (orphans.rs).

use crate::file::FileData;
use fuser::FileType;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tessera_proto::pb::Attr;
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
