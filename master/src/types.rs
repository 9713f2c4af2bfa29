//! The Raft type configuration and the replicated commands. Every namespace
//! change is a `Command` in the Raft log; the leader stamps the time into it
//! so every replica applies exactly the same change.

use serde::{Deserialize, Serialize};
use std::fmt;

pub use crate::values::{Cred, ExtentRec, FsErr, Splice, Time, TimeSet};

/// A create a mount acknowledged before sending it (write-behind): a
/// regular file with an inode number from the mount's lease, made at `at`
/// by `cred` (a commit carrying it may be sent by another user).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BehindCreate {
    pub cred: Cred,
    pub parent: u64,
    pub name: Vec<u8>,
    pub mode: u32,
    pub ino: u64,
    pub at: Time,
    /// O_EXCL, held by a mount that holds the directory exclusively: fails
    /// (EEXIST) rather than taking over a name that exists after all.
    #[serde(default)]
    pub exclusive: bool,
}

/// A setattr that rides on a commit, with its own caller.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingAttrs {
    pub cred: Cred,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Op {
    Mkdir {
        parent: u64,
        name: Vec<u8>,
        mode: u32,
    },
    Create {
        parent: u64,
        name: Vec<u8>,
        mode: u32,
        kind: i32,
        rdev: u32,
        exclusive: bool,
        truncate: bool,
    },
    Symlink {
        parent: u64,
        name: Vec<u8>,
        target: Vec<u8>,
    },
    Link {
        ino: u64,
        new_parent: u64,
        new_name: Vec<u8>,
    },
    Unlink {
        parent: u64,
        name: Vec<u8>,
        /// Regular files open on the caller's mount: kept as orphans if
        /// this removes their last name.
        #[serde(default)]
        open: Vec<u64>,
    },
    Rmdir {
        parent: u64,
        name: Vec<u8>,
    },
    /// Unlinks of possibly different callers, each applied or refused on
    /// its own, in order (the command's own cred is unused).
    UnlinkMany {
        items: Vec<UnlinkItem>,
        #[serde(default)]
        open: Vec<u64>,
    },
    /// The mounts that kept these orphans open have closed them (or the
    /// leader found them abandoned): free them.
    ReleaseOrphans {
        inos: Vec<u64>,
    },
    /// Still open on the mount that keeps them: restarts their age.
    RenewOrphans {
        inos: Vec<u64>,
    },
    Rename {
        parent: u64,
        name: Vec<u8>,
        new_parent: u64,
        new_name: Vec<u8>,
        flags: u32,
        #[serde(default)]
        open: Vec<u64>,
    },
    SetAttr {
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeSet>,
        mtime: Option<TimeSet>,
        /// A size change through a handle opened for writing (ftruncate):
        /// the kernel checked the permission at open, so the file's mode
        /// now does not matter (a file created with mode 0 stays writable).
        #[serde(default)]
        by_handle: bool,
    },
    Commit {
        ino: u64,
        extents: Vec<ExtentRec>,
        size: u64,
        /// The GC epoch the client read before checking/uploading chunks.
        gc_epoch: u64,
        /// Explicit mtime (an upload preserving the source's), else now.
        mtime: Option<Time>,
        /// Set: `extents` is unused and the new list is the committed one
        /// changed by this splice (a mount's flush).
        #[serde(default)]
        splice: Option<Splice>,
        /// Applied first, in the same entry (a new file's first commit).
        #[serde(default)]
        create: Option<BehindCreate>,
        /// Sent before its chunks were durable (see fsm/unsealed.rs).
        #[serde(default)]
        unsealed: bool,
        /// Applied after the content, in the same entry (setattrs made on
        /// the mount while the file was written).
        #[serde(default)]
        attrs: Option<Box<PendingAttrs>>,
    },
    /// The healer's verdict on old unsealed markers: (inode, version)
    /// pairs to seal (keep the content) or to revert (empty the file, or
    /// undo a patch: fsm/unsealed.rs).
    SettleUnsealed {
        seal: Vec<(u64, u64)>,
        revert: Vec<(u64, u64)>,
    },
    CreateBehind(BehindCreate),
    /// Reserves `count` inode numbers for one client's write-behind creates.
    LeaseInos {
        count: u32,
    },
    SetXattr {
        ino: u64,
        name: Vec<u8>,
        value: Vec<u8>,
        flags: u32,
    },
    RemoveXattr {
        ino: u64,
        name: Vec<u8>,
    },
    RegisterChunkserver {
        id: String,
        addr: String,
        capacity: u64,
        zone: String,
    },
    /// A read happened: atime = now where relatime asks for it (atime not
    /// after mtime or ctime, or a day old); ctime unchanged.
    TouchAtimes {
        inos: Vec<u64>,
    },
    SetServerState {
        id: String,
        state: crate::fsm::model::ServerState,
    },
    /// Starts collecting unreferenced chunks: garbage whose count fell to
    /// zero before `older_than`, or (`orphans`) chunks never referenced.
    CollectGarbage {
        ids: Vec<Vec<u8>>,
        older_than: Time,
        orphans: bool,
    },
    /// Every replica of these collected chunks is deleted.
    GarbageDeleted {
        ids: Vec<Vec<u8>>,
    },
    /// Takes (or, F_UNLCK, drops) an advisory lock if nothing conflicts,
    /// and renews the owner's session lease (fsm/locks.rs).
    SetLock {
        ino: u64,
        owner: String,
        pid: u32,
        start: u64,
        end: u64,
        typ: i32,
        lease_ms: u64,
    },
    /// Drops every lock `owner` holds on `ino` (its last close).
    ReleaseLocks {
        ino: u64,
        owner: String,
    },
    /// A live mount keeps its locks: its lease runs `lease_ms` from now.
    RenewSession {
        session: String,
        lease_ms: u64,
    },
    /// Ends these sessions if their lease has run out, releasing their locks.
    ExpireSessions {
        sessions: Vec<String>,
    },
    /// Forgets collection records of chunks whose deletion finished at or
    /// before log index `floor`, at most `limit` of them; from now on a
    /// commit with an epoch older than `floor` may not add the first
    /// reference to any chunk (fsm/gc.rs).
    PruneCollected {
        floor: u64,
        limit: u32,
    },
    /// `SetLock` for a flock(2) lock: the same rules in a table of its
    /// own (fsm/locks.rs).
    SetFlock {
        ino: u64,
        owner: String,
        pid: u32,
        start: u64,
        end: u64,
        typ: i32,
        lease_ms: u64,
    },
    /// An operator revoked a certificate (its serial, lowercase hex).
    RevokeCert {
        serial: String,
        name: String,
    },
    /// The leader replaced the chunk token keys (chunk_tokens.rs).
    SetTokenKeys {
        keys: Vec<crate::fsm::model::TokenKeyRec>,
    },
    /// A rename sent behind by a mount (after it acknowledged it): applied
    /// only if the names still name what the mount saw, `ino` at the old
    /// name and `replaces` at the new one (0: nothing), as an unlink sent
    /// behind names its inode. A mount cut off from its lease sends it
    /// late, and it must not move or replace a file made since.
    RenameSeen {
        parent: u64,
        name: Vec<u8>,
        new_parent: u64,
        new_name: Vec<u8>,
        flags: u32,
        open: Vec<u64>,
        ino: u64,
        replaces: u64,
    },
    /// Hands the locks of `ino` to the mount of lock session `session`
    /// (it then keeps them itself) if no other session holds a lock there
    /// or has them delegated (fsm/locks.rs).
    DelegateLocks {
        ino: u64,
        session: String,
        lease_ms: u64,
    },
    /// The mount of `session` gives the locks of `ino` back: `locks` (fcntl,
    /// flock) replace its own there, unless None (the masters' are right).
    ReturnLocks {
        ino: u64,
        session: String,
        locks: Option<(Vec<crate::fsm::model::Held>, Vec<crate::fsm::model::Held>)>,
        lease_ms: u64,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnlinkItem {
    pub cred: Cred,
    pub parent: u64,
    pub name: Vec<u8>,
    /// The inode the caller saw under the name (0: any).
    #[serde(default)]
    pub ino: u64,
}

/// The largest command proposed, as its Raft entry encodes it: a quarter
/// of the log journal's replay limit (store::log_journal::MAX_ENTRY),
/// leaving room for the entry's envelope.
pub const MAX_COMMAND_BYTES: usize = 16 << 20;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Command {
    pub cred: Cred,
    pub now: Time,
    pub op: Op,
    /// The client's id for this operation: a retry with the same id gets the
    /// first result back instead of applying twice.
    #[serde(default)]
    pub request_id: String,
}

impl Command {
    /// Refuses a command whose entry would be larger than
    /// `MAX_COMMAND_BYTES` (checked before it enters the log).
    pub fn check_size(&self) -> Result<(), FsErr> {
        // The size of its log entry's payload (store/entry_codec.rs), computed
        // without encoding it.
        let len = crate::codec::size(self).unwrap_or(usize::MAX);
        if len > MAX_COMMAND_BYTES {
            return Err(FsErr::new(
                libc::E2BIG,
                format!("{self} request of {len} bytes encoded is over the limit of {MAX_COMMAND_BYTES}"),
            ));
        }
        Ok(())
    }
}

impl Op {
    /// Whether the change adds names, data or attributes (refused when the
    /// master's disk is nearly full, see disk_guard.rs).
    pub fn adds(&self) -> bool {
        matches!(
            self,
            Op::Mkdir { .. }
                | Op::Create { .. }
                | Op::CreateBehind(_)
                | Op::Symlink { .. }
                | Op::Link { .. }
                | Op::Commit { .. }
                | Op::SetXattr { .. }
        )
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match &self.op {
            Op::Mkdir { .. } => "mkdir",
            Op::Create { .. } => "create",
            Op::Symlink { .. } => "symlink",
            Op::Link { .. } => "link",
            Op::Unlink { .. } => "unlink",
            Op::Rmdir { .. } => "rmdir",
            Op::UnlinkMany { .. } => "unlink_many",
            Op::ReleaseOrphans { .. } => "release_orphans",
            Op::RenewOrphans { .. } => "renew_orphans",
            Op::Rename { .. } => "rename",
            Op::RenameSeen { .. } => "rename_seen",
            Op::SetAttr { .. } => "setattr",
            Op::Commit { .. } => "commit",
            Op::SettleUnsealed { .. } => "settle_unsealed",
            Op::CreateBehind(_) => "create_behind",
            Op::LeaseInos { .. } => "lease_inos",
            Op::SetXattr { .. } => "setxattr",
            Op::RemoveXattr { .. } => "removexattr",
            Op::RegisterChunkserver { .. } => "register",
            Op::SetServerState { .. } => "set_server_state",
            Op::TouchAtimes { .. } => "touch_atimes",
            Op::CollectGarbage { .. } => "collect_garbage",
            Op::GarbageDeleted { .. } => "garbage_deleted",
            Op::PruneCollected { .. } => "prune_collected",
            Op::SetFlock { .. } => "set_flock",
            Op::RevokeCert { .. } => "revoke_cert",
            Op::SetTokenKeys { .. } => "set_token_keys",
            Op::SetLock { .. } => "set_lock",
            Op::ReleaseLocks { .. } => "release_locks",
            Op::RenewSession { .. } => "renew_session",
            Op::ExpireSessions { .. } => "expire_sessions",
            Op::DelegateLocks { .. } => "delegate_locks",
            Op::ReturnLocks { .. } => "return_locks",
        };
        write!(f, "{name}(uid={})", self.cred.uid)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Reply {
    None,
    Attr(crate::fsm::model::Inode),
    Created {
        inode: crate::fsm::model::Inode,
        created: bool,
    },
    Ids(Vec<Vec<u8>>),
    /// Per item of a many-item command: None when applied; and the open
    /// files left without a name (orphans).
    Outcomes(Vec<Option<FsErr>>, Vec<u64>),
    /// A change applied; the open files it left without a name (orphans).
    Orphaned(Vec<u64>),
    /// The first inode number of a lease.
    Inos(u64),
    /// A lock request: None when granted, else the lock in the way.
    Lock(Option<crate::fsm::model::Held>),
    /// How many records a housekeeping command removed.
    Count(u64),
    /// A lock command on a file whose locks this session keeps (its
    /// mount must give them back first).
    LockDelegated(String),
    /// `DelegateLocks`: the session's fcntl and flock locks on the file
    /// when granted, None when refused.
    Delegated(Option<(Vec<crate::fsm::model::Held>, Vec<crate::fsm::model::Held>)>),
}

pub type CommandResult = Result<Reply, FsErr>;

openraft::declare_raft_types!(
    /// Tessera's master group: commands in, results out, nodes addressed by
    /// their gRPC address.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        Node = openraft::BasicNode,
);

pub type NodeId = u64;
