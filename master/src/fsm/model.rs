//! Persistent records of the namespace and their RocksDB keys. Keys are
//! prefixed by one byte per table and use big-endian integers so that a
//! directory's entries, a file's xattrs, etc. are contiguous and ordered.

use crate::values::{ExtentRec, Time};
use serde::{Deserialize, Serialize};

pub const KIND_REGULAR: i32 = 1;
pub const KIND_DIR: i32 = 2;
pub const KIND_SYMLINK: i32 = 3;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Inode {
    pub ino: u64,
    pub kind: i32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: Time,
    pub mtime: Time,
    pub ctime: Time,
    pub nlink: u32,
    pub rdev: u32,
    /// For directories: the parent directory (directories have exactly one).
    pub parent: u64,
    /// For symlinks: the target.
    pub target: Vec<u8>,
    /// Bumped on every content change.
    pub version: u64,
    /// Number of extended attributes: lets a mount answer "no such
    /// attribute" (ls, cp and every first write probe for some) locally.
    pub xattrs: u32,
}

impl Inode {
    pub fn is_dir(&self) -> bool {
        self.kind == KIND_DIR
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Dentry {
    pub ino: u64,
    pub kind: i32,
}

/// Reference count of a chunk across all files, with its length.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ChunkRefs {
    pub refs: u64,
    pub len: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkServerRec {
    pub id: String,
    pub addr: String,
    pub capacity: u64,
    pub zone: String,
    pub state: ServerState,
}

/// Ring membership of a chunkserver, changed only through Raft.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum ServerState {
    /// On the ring: owns chunks.
    #[default]
    Alive,
    /// Silent past the dead timeout: off the ring until it heartbeats again.
    Dead,
    /// Leaving: off the ring, its chunks are being copied to their new owners.
    Draining,
    /// Drained: holds nothing the ring needs.
    Drained,
}

impl ServerState {
    pub fn name(&self) -> &'static str {
        match self {
            ServerState::Alive => "alive",
            ServerState::Dead => "dead",
            ServerState::Draining => "draining",
            ServerState::Drained => "drained",
        }
    }

    pub fn parse(s: &str) -> Option<ServerState> {
        Some(match s {
            "alive" => ServerState::Alive,
            "dead" => ServerState::Dead,
            "draining" => ServerState::Draining,
            "drained" => ServerState::Drained,
            _ => return None,
        })
    }
}

/// A garbage chunk being collected: the log index at which collection began
/// and the index at which every replica was deleted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CollectRec {
    pub started: u64,
    pub done: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Counters {
    pub next_ino: u64,
    pub inodes: u64,
    pub chunks: u64,
    pub chunk_bytes: u64,
}

pub type Extents = Vec<ExtentRec>;

pub mod key {
    pub const INODE: u8 = b'i';
    pub const DENTRY: u8 = b'd';
    pub const EXTENTS: u8 = b'e';
    pub const XATTR: u8 = b'x';
    pub const CHUNK: u8 = b'r';
    pub const SERVER: u8 = b's';
    /// Chunks whose count fell to zero, with the time: garbage candidates.
    pub const GARBAGE: u8 = b'g';
    /// Chunks being (or recently) collected: see `CollectRec`.
    pub const COLLECT: u8 = b'c';
    /// Request id -> result of the command (exactly-once retries).
    pub const REQUEST: u8 = b'q';
    /// Log index + request id, to forget old request ids in order.
    pub const REQUEST_ORDER: u8 = b'Q';
    /// An open file without a name: value = when it lost its last name.
    pub const ORPHAN: u8 = b'o';
    /// A file whose last commit was sent before its chunks were durable:
    /// see fsm/unsealed.rs.
    pub const UNSEALED: u8 = b'u';
    /// The same for a commit that patched part of a file, with what it
    /// replaced (fsm/unsealed.rs, `UnsealedPatchRec`).
    pub const UNSEALED_PATCH: u8 = b'U';
    /// Advisory locks held on an inode (fsm/locks.rs): fcntl byte ranges.
    pub const LOCK: u8 = b'l';
    /// flock(2) locks held on an inode: a table of their own, as flock and
    /// fcntl locks never conflict with each other.
    pub const FLOCK: u8 = b'F';
    /// A mount's lock session: its lease and the inodes it locked.
    pub const SESSION: u8 = b'k';
    /// ino -> the lock session its locks are delegated to (String).
    pub const LOCK_DELEGATION: u8 = b'D';
    /// Revoked certificates: serial -> `RevokedRec`.
    pub const REVOKED: u8 = b'V';
    pub const COUNTERS: &[u8] = b"mcounters";
    /// The state's format number (fsm/format.rs).
    pub const FORMAT: &[u8] = b"mformat";
    /// Log index below which commits may not add first references (gc.rs).
    pub const COLLECT_FLOOR: &[u8] = b"mcollect_floor";
    /// The keys chunk access tokens are signed with (`TokenKeyRec`s).
    pub const TOKEN_KEYS: &[u8] = b"mtoken_keys";

    pub fn ino(tag: u8, ino: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(9);
        k.push(tag);
        k.extend_from_slice(&ino.to_be_bytes());
        k
    }

    pub fn ino_name(tag: u8, inode: u64, name: &[u8]) -> Vec<u8> {
        let mut k = ino(tag, inode);
        k.extend_from_slice(name);
        k
    }

    pub fn bytes(tag: u8, b: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(1 + b.len());
        k.push(tag);
        k.extend_from_slice(b);
        k
    }
}

/// A state value, in the state's format (fsm/format.rs: postcard).
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain records cannot fail.
    crate::codec::to_vec(v).unwrap_or_default()
}

pub fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> std::io::Result<T> {
    Ok(crate::codec::from_slice(b)?)
}

/// relatime: a read updates atime when it is not after mtime or ctime, or
/// is more than a day old.
pub fn relatime_due(i: &Inode, now: (i64, u32)) -> bool {
    i.atime <= i.mtime || i.atime <= i.ctime || now.0 - i.atime.0 > 86_400
}

/// A key chunk access tokens are signed with (tessera_rpc::chunk_token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenKeyRec {
    pub epoch: u32,
    pub secret: [u8; 32],
    /// When the leader made it (unix seconds).
    pub created: u64,
}

/// A certificate an operator revoked: whose, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRec {
    pub name: String,
    pub at: Time,
}

/// A granted advisory lock (shared with the mounts' delegated tables).
pub use tessera_proto::locks::Held;
