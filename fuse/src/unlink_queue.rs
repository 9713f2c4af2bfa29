//! The unlinks a mount acknowledged and has not sent yet (see
//! unlink_behind.rs for the protocol), and the directories it holds
//! exclusively.

use fuser::ReplyEmpty;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;
use tessera_client::write_behind::Ticket;
use tessera_proto::pb;

/// Fresh files remembered at most (`UnlinkQueue::fresh`): past it, new
/// files are not fresh (their renames and attribute changes wait).
pub(crate) const MAX_FRESH: usize = 100_000;
/// Unlinks sent in one request at most.
pub(crate) const MAX_BATCH: usize = 512;
/// How long a recall waits for queued unlinks (the masters cut a mount off
/// that takes longer than half a lease to acknowledge).
pub(crate) const RECALL_WAIT: Duration = Duration::from_secs(2);

/// Which unlinks are written behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnlinkBehind {
    /// None: each waits for its commit.
    Never,
    /// In directories this mount holds exclusively (the default).
    Exclusive,
    /// All (other mounts see them milliseconds late).
    Always,
}

pub(crate) struct Queued {
    pub(crate) req: pb::UnlinkRequest,
    pub(crate) ticket: Ticket,
    pub(crate) file: Option<u64>,
    /// Answered when the unlink commits (queued after its directory was
    /// recalled); None: answered when queued.
    pub(crate) reply: Option<ReplyEmpty>,
}

#[derive(Default)]
pub(crate) struct UnlinkQueue {
    pub(crate) queued: Vec<Queued>,
    /// A sender task is running (it exits when it finds the queue empty).
    pub(crate) sending: bool,
    /// The last batch found no master: unlinks wait for their commit (and
    /// fail visibly) until a batch gets through again.
    pub(crate) no_master: bool,
    /// Directories this mount holds exclusively.
    pub(crate) exclusive: HashSet<u64>,
    /// Attribute changes of such directories (and of files fresh in them)
    /// acknowledged and not yet answered (attrs_behind.rs), by inode.
    pub(crate) dir_attrs: HashMap<u64, DirAttrs>,
    /// Files this mount created in a directory it holds exclusively, by
    /// inode, with that directory: no other session has seen them (it
    /// would have recalled the directory first, which forgets them here),
    /// so their attribute changes and renames may go behind.
    pub(crate) fresh: HashMap<u64, u64>,
    /// Renames acknowledged and not yet answered (rename_behind.rs), in
    /// the order they were made; the front one is on its way.
    pub(crate) renames: VecDeque<QueuedRename>,
}

/// A rename acknowledged before it was sent.
pub(crate) struct QueuedRename {
    pub(crate) req: pb::RenameRequest,
    pub(crate) ticket: Ticket,
}

/// The attribute changes of one directory not yet answered
/// (attrs_behind.rs): the front one is being sent; each entry carries the
/// tickets of the changes merged into it.
#[derive(Default)]
pub(crate) struct DirAttrs {
    pub(crate) queue: VecDeque<(pb::SetAttrRequest, Vec<Ticket>)>,
}
