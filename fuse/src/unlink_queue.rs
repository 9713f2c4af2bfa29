//! The unlinks a mount acknowledged and has not sent yet (see
//! unlink_behind.rs for the protocol), and the directories it holds
//! exclusively.

use fuser::ReplyEmpty;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;
use tessera_client::write_behind::Ticket;
use tessera_proto::pb;

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
    /// Attribute changes of such directories acknowledged and not yet
    /// answered (attrs_behind.rs), by directory.
    pub(crate) dir_attrs: HashMap<u64, DirAttrs>,
}

/// The attribute changes of one directory not yet answered
/// (attrs_behind.rs): the front one is being sent; each entry carries the
/// tickets of the changes merged into it.
#[derive(Default)]
pub(crate) struct DirAttrs {
    pub(crate) queue: VecDeque<(pb::SetAttrRequest, Vec<Ticket>)>,
}
