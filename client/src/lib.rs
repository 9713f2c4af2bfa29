//! Tessera client library: a leader-tracking metadata client, chunk upload
//! and verified download, and path-level file operations for batch jobs.

pub mod cache;
/// Chunk transfer to and from chunkservers (from the RPC layer).
pub use tessera_rpc::chunks;
pub mod chunk_write;
pub mod error;
pub mod fs;
pub mod fs_locks;
pub mod fs_ops;
pub mod meta;
pub mod path;
pub mod placement;
pub mod transfer;
pub mod write_behind;

pub use error::{ClientError, Result};
pub use fs::{Fs, Grant};
pub use fs_ops::NewEntry;

use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_MASTERS: &str = "127.0.0.1:7400,127.0.0.1:7401,127.0.0.1:7402";

#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub masters: Vec<String>,
    pub chunk_size: usize,
    /// Chunks in flight per transfer (bounds memory to parallel x chunk_size).
    pub parallel: usize,
    pub meta: meta::MetaOptions,
    pub chunk_timeout: Duration,
    /// Upload memory budget, MiB of chunk buffers in flight (all files).
    pub buffer_mib: usize,
    /// Bytes of verified chunks to keep for repeated reads (0 = no cache).
    pub cache_bytes: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            masters: DEFAULT_MASTERS.split(',').map(String::from).collect(),
            chunk_size: tessera_proto::DEFAULT_CHUNK_SIZE,
            parallel: 6,
            meta: Default::default(),
            chunk_timeout: Duration::from_secs(60),
            cache_bytes: 0,
            buffer_mib: 96,
        }
    }
}

/// Connects (lazily) to a cluster and acts with the calling process's ids.
pub fn connect(cfg: ClientConfig) -> Fs {
    let meta = meta::MetaClient::new(cfg.masters.clone(), cfg.meta.clone());
    let io = Arc::new(tessera_rpc::chunks::ChunkIo::new(cfg.chunk_timeout));
    let transfer = transfer::Transfer {
        meta: meta.clone(),
        ring: Arc::new(placement::RingView::new(meta.clone(), io.tokens().clone())),
        io,
        chunk_size: cfg.chunk_size,
        parallel: cfg.parallel,
        stats: Default::default(),
        buffers: Arc::new(tokio::sync::Semaphore::new(cfg.buffer_mib.max(1))),
        cache: (cfg.cache_bytes > 0).then(|| Arc::new(cache::ChunkCache::new(cfg.cache_bytes))),
    };
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let cred = tessera_proto::pb::Cred { uid, gid, groups: vec![] };
    Fs { meta, transfer, cred }
}
