//! The creates a mount acknowledged and has not sent yet (see
//! create_behind.rs for the protocol): what each holds, the leased inode
//! numbers, and how a held create lands or is lost. Shared by the mount and
//! its open files, whose first commit carries their file's create.

use crate::file::CommitRider;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tessera_client::write_behind::{Ticket, WriteBehind};
use tessera_client::{ClientError, Fs, Result};
use tessera_proto::pb::{self, Attr};

/// A create acknowledged to the kernel and not yet sent.
pub struct Held {
    pub req: pb::CreateRequest,
    pub(crate) ticket: Ticket,
    pub(crate) since: Instant,
    pub(crate) attr: Attr,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) held: HashMap<u64, Held>,
    /// Creates taken by a commit that has not answered yet.
    pub(crate) riding: HashMap<u64, Held>,
    /// Leased inode numbers not used yet: `next..end`.
    pub(crate) next: u64,
    pub(crate) end: u64,
    pub(crate) leasing: bool,
    /// The last send found no master: create synchronously (and fail
    /// visibly) until one answers again.
    pub(crate) no_master: bool,
    pub(crate) sender: bool,
    /// Files whose create failed for good, with their directory.
    pub(crate) lost: HashMap<u64, u64>,
}

/// The held creates of one mount, shared with its open files (whose first
/// commit carries theirs).
pub struct Creates {
    state: Mutex<State>,
    pub(crate) behind: Arc<WriteBehind>,
}

impl Creates {
    pub fn new(behind: Arc<WriteBehind>) -> Creates {
        Creates { state: Mutex::new(State::default()), behind }
    }

    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Whether the create of `ino` is held here.
    pub fn holds(&self, ino: u64) -> bool {
        self.lock().held.contains_key(&ino)
    }

    /// The attributes the kernel was given for a held create.
    pub fn held_attr(&self, ino: u64) -> Option<Attr> {
        self.lock().held.get(&ino).map(|h| h.attr)
    }

    /// A chmod of a file whose create is still held: the create carries
    /// the new mode (permission bits). False if it is not held (any more).
    pub fn set_held_mode(&self, ino: u64, mode: u32) -> bool {
        let mut s = self.lock();
        let Some(h) = s.held.get_mut(&ino) else { return false };
        h.req.mode = (h.req.mode & !0o777) | (mode & 0o777);
        h.attr.mode = (h.attr.mode & !0o777) | (mode & 0o777);
        h.attr.ctime = Some(tessera_proto::time::now());
        true
    }

    /// A synchronous create got through: creates may be held again.
    pub fn master_reached(&self) {
        self.lock().no_master = false;
    }

    /// The commit that carried `h` returned `r`. If the master refused it,
    /// its create did not land either: it is sent on its own now, still
    /// ahead of every later change (its ticket is the oldest). If no master
    /// answered, neither would one now: the create is given up (like a
    /// synchronous one that timed out) and creates stop being held.
    async fn after_commit(&self, fs: &Fs, h: Held, r: &Result<Attr>) {
        match r {
            Ok(_) => {}
            Err(e @ ClientError::NoMaster { .. }) => {
                lost(&h.req, e);
                let mut s = self.lock();
                s.lost.insert(h.req.ino, h.req.parent);
                s.no_master = true;
            }
            Err(_) => {
                if let Err(e) = send_create(fs, &h.req).await {
                    lost(&h.req, &e);
                    self.lock().lost.insert(h.req.ino, h.req.parent);
                }
            }
        }
        self.behind.end(h.ticket, h.req.parent);
    }

    /// If the create of `ino` failed for good (its file is gone): its
    /// directory, once (the caller reports it).
    pub(crate) fn take_lost(&self, ino: u64) -> Option<u64> {
        self.lock().lost.remove(&ino)
    }
}

/// A file's commit carries its held create (file.rs knows only the trait).
impl CommitRider for Creates {
    /// Taken when nothing begun before it is in flight (else the commit
    /// waits for that, and the create is sent on its own first).
    fn take(&self, ino: u64) -> Option<pb::CreateRequest> {
        let mut s = self.lock();
        let oldest = s.held.get(&ino).is_some_and(|h| self.behind.may_ride(&h.ticket, h.req.parent, &h.req.name, ino));
        if !oldest {
            return None;
        }
        let h = s.held.remove(&ino)?;
        let req = h.req.clone();
        s.riding.insert(ino, h);
        Some(req)
    }

    fn landed<'a>(&'a self, fs: &'a Fs, ino: u64, r: &'a Result<Attr>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let h = self.lock().riding.remove(&ino);
            if let Some(h) = h {
                self.after_commit(fs, h, r).await;
            }
        })
    }

    fn holds(&self, ino: u64) -> bool {
        Creates::holds(self, ino)
    }
}

pub(crate) fn lost(req: &pb::CreateRequest, e: &ClientError) {
    tracing::warn!(
        parent = req.parent,
        name = %String::from_utf8_lossy(&req.name),
        ino = req.ino,
        error = %e,
        "write-behind create not applied"
    );
}

pub(crate) async fn send_create(fs: &Fs, req: &pb::CreateRequest) -> Result<()> {
    fs.send_held_create(req).await.map(|_| ())
}
