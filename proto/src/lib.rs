//! Tessera's shared language: the gRPC messages and services (generated from
//! `proto/tessera.proto`), the content address of a chunk, the placement ring
//! that clients and masters must compute identically, and the conventions
//! for carrying errno values and leader hints inside gRPC statuses.

pub mod chunk_id;
pub mod extents;
pub mod locks;
pub mod ring;
pub mod status;
pub mod time;

#[allow(clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("tessera");
}

pub use chunk_id::ChunkId;

/// Largest data frame on a chunk stream.
pub const MAX_FRAME: usize = 1 << 20;
/// Largest data frame a chunkserver sends when a chunk is read: a chunk of
/// the default size goes in one frame, which the reader uses as it arrives
/// instead of copying frames together.
pub const READ_FRAME: usize = DEFAULT_CHUNK_SIZE;
/// Default chunk size for new files.
pub const DEFAULT_CHUNK_SIZE: usize = 4 << 20;
/// Largest chunk a chunkserver accepts.
pub const MAX_CHUNK_SIZE: u64 = 64 << 20;
/// Replicas per chunk.
pub const REPLICATION: usize = 3;
/// Copies a chunk write needs durable when ring owners are down (as Ceph's
/// min_size); the masters' `--min-replicas` overrides it.
pub const DEFAULT_MIN_REPLICAS: usize = 2;
/// A mount that sent an unsealed commit (its chunks still uploading) fails
/// the flush if the upload is not done this long after it sent the commit;
/// masters settle unsealed commits no sooner than twice this.
pub const UNSEALED_UPLOAD_LIMIT: std::time::Duration = std::time::Duration::from_secs(15);
/// Longest file name, in bytes (as ext4 and most local file systems).
pub const NAME_MAX: usize = 255;

/// How long a mount trusts a cache lease the leader granted for `granted`,
/// counted from before it asked: less a tenth for clock rates. The masters'
/// failover argument (master/src/leases.rs, `hold_after_election`) relies on
/// this bound, so both sides take it from here.
pub fn lease_trusted_for(granted: std::time::Duration) -> std::time::Duration {
    granted * 9 / 10
}

/// Whether an extended attribute's namespace is one Tessera stores (user.,
/// trusted., security.). The masters refuse the others, system.posix_acl_*
/// among them (no ACLs), with EOPNOTSUPP, and the mount answers so without
/// asking them: cp -a then falls back to chmod, which rides on the file's
/// write-behind create or commit instead of flushing them first.
pub fn xattr_namespace_supported(name: &[u8]) -> bool {
    [&b"user."[..], b"trusted.", b"security."].iter().any(|ns| name.starts_with(ns))
}
/// Inode number of the root directory.
pub const ROOT_INO: u64 = 1;
/// Chunk ids per page of a full chunk report (3.2 MiB of ids, well under
/// the message limit; a chunkserver with millions of chunks sends pages).
pub const REPORT_PAGE_IDS: usize = 100_000;
/// gRPC messages carry up to one frame plus headers.
pub const GRPC_MAX_MESSAGE: usize = 16 << 20;
