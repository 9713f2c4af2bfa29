//! Write-behind unlink. A user deleting many files waits on one Raft commit
//! (fsynced on a majority of masters) per file if each unlink waits for its
//! commit. Instead the mount acknowledges an unlink as soon as the kernel
//! has checked its permissions (default_permissions: write and search on
//! the directory, the sticky rule) and queues it; a sender sends what has
//! queued as one request (one Raft entry) whenever the previous one is
//! answered, so the batch grows with the rate of unlinks.
//!
//! By default only in a directory this mount holds exclusively (no other
//! mount has it cached; see master/src/leases.rs), and only for a name
//! whose inode the mount knows (sent along: a late unlink cannot remove a
//! file made since). Before another mount reads or changes the directory,
//! the masters recall it: the revoke is acknowledged only once the queued
//! unlinks have committed, so every other mount's next call sees them. An
//! unlink queued after the recall reached the mount is answered when it
//! commits. `--unlink-behind` writes every unlink behind (other mounts see
//! it milliseconds later, not at their next call); `--sync-unlink` none.
//!
//! What keeps this invisible on this mount: every later master call waits
//! for the unlinks queued before it (`tessera_client::write_behind`), except
//! lookups and getattrs that the pending unlinks cannot affect; the lookup
//! cache and the directory's post-op attributes are updated at once.
//! Other mounts see the unlink when it commits, milliseconds later.
//! Durability is that of a local file system's unlink: fsync of the
//! directory (or of any file) waits for it; one lost with the mount process
//! (SIGKILL in the milliseconds it is queued) did not happen.

use crate::fs::{b, Mount};
use crate::unlink_queue::{Queued, UnlinkBehind, UnlinkQueue, MAX_BATCH, RECALL_WAIT};
use fuser::ReplyEmpty;
use std::sync::Arc;
use tessera_client::write_behind::Ticket;
use tessera_client::{ClientError, Fs};
use tessera_proto::pb;
use tokio::runtime::Handle;

impl Mount {
    fn unlink_queue(&self) -> parking_lot::MutexGuard<'_, UnlinkQueue> {
        self.behind.unlinks.lock()
    }

    /// An unlink got through to the master: write-behind may resume.
    pub(crate) fn master_reached(&self) {
        self.unlink_queue().no_master = false;
    }

    /// Whether an unlink of `name` in `parent` may be written behind: not
    /// while the master is unreachable (acknowledging it would only lose it
    /// later), and by default only in a directory held exclusively, of a
    /// name whose inode is known.
    pub(crate) fn may_unlink_behind(&self, parent: u64, name: &[u8]) -> bool {
        let q = self.unlink_queue();
        !q.no_master
            && match self.behind.unlink {
                UnlinkBehind::Never => false,
                UnlinkBehind::Always => true,
                UnlinkBehind::Exclusive => {
                    q.exclusive.contains(&parent) && self.caches.dir.ino_known(parent, name).is_some()
                }
            }
    }

    /// The masters granted this mount `dir` exclusively in an answer
    /// fetched when the lease generation was `gen`.
    pub(crate) fn dir_exclusive(&self, dir: u64, gen: u64) {
        let mut q = self.unlink_queue();
        // Checked under the queue's lock: a revoke bumps the generation
        // before it takes the lock to drop exclusive holds.
        if self.leases.still(gen) {
            q.exclusive.insert(dir);
        }
    }

    /// Whether this mount holds `dir` exclusively and knows `name` is not
    /// in it: an O_EXCL create of it may be held (`hold_create`). Returns
    /// the queue's guard, held until the create is: a recall takes it to
    /// end the hold, then waits for the held creates.
    pub(crate) fn exclusive_absent(&self, dir: u64, name: &[u8]) -> Option<parking_lot::MutexGuard<'_, UnlinkQueue>> {
        let q = self.unlink_queue();
        (!q.no_master && q.exclusive.contains(&dir) && self.caches.dir.absent_known(dir, name)).then_some(q)
    }

    /// This mount made directory `a` and holds it exclusively (the mkdir's
    /// answer, fetched when the lease generation was `gen`): it is known
    /// empty, so lookups and O_EXCL creates in it need no round trip.
    pub(crate) fn made_dir_exclusive(&self, a: &pb::Attr, started: std::time::Instant, gen: u64) {
        let mut q = self.unlink_queue();
        if self.leases.still(gen) {
            q.exclusive.insert(a.ino);
            self.caches.dir.made_empty(started, *a);
            // Its attributes as the mkdir left them: creates held in it
            // predict its times from these.
            self.post_op(a.ino, Some(*a));
        }
    }

    /// The file an unlink of `name` in `parent` removes, if this mount
    /// knows it: from a listing of any age in an exclusively held directory
    /// (no one else changes it), else from one within its lifetime.
    fn unlinked_file(&self, parent: u64, name: &[u8]) -> Option<u64> {
        match self.behind.unlink {
            UnlinkBehind::Exclusive => self.caches.dir.ino_known(parent, name),
            _ => self.caches.dir.ino_of(parent, name),
        }
    }

    /// The lease is over: no directory is held exclusively.
    pub(crate) fn exclusive_lost(&self) {
        let mut q = self.unlink_queue();
        q.exclusive.clear();
        q.fresh.clear();
    }

    /// The masters recalled `dirs` (or every directory, `all`): no more
    /// unlinks there are acknowledged before they commit, and the ones
    /// queued are sent, and the creates held if one of them was held
    /// exclusively; returns once they are answered (bounded).
    pub(crate) async fn recalled(&self, dirs: &[u64], all: bool) {
        let was_exclusive = {
            let mut q = self.unlink_queue();
            let mut was_exclusive = false;
            if all {
                was_exclusive = !q.exclusive.is_empty();
                q.exclusive.clear();
                q.fresh.clear();
            } else {
                for d in dirs {
                    was_exclusive |= q.exclusive.remove(d);
                }
                // Another session may see their files from now on.
                q.fresh.retain(|_, parent| !dirs.contains(parent));
            }
            was_exclusive
        };
        // Attribute changes of held directories land too, whatever this
        // recall names: it may be of a directory's parent, whose listing
        // shows them, and a lapse of this mount's lease (a late renewal)
        // forgets which directories it held while their changes are still
        // queued.
        let idle =
            |q: &UnlinkQueue| q.queued.is_empty() && !q.sending && q.dir_attrs.is_empty() && q.renames.is_empty();
        // A fresh file's queued attributes wait for its held create.
        if !idle(&self.unlink_queue()) {
            self.fs.meta.write_behind().kick();
        }
        let deadline = tokio::time::Instant::now() + RECALL_WAIT;
        loop {
            let drained = self.behind.unlinks_drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if idle(&self.unlink_queue()) {
                break;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                tracing::warn!("queued changes did not commit within a recall's wait");
                break;
            }
        }
        // Creates held in it (O_EXCL ones among them) land first too.
        if was_exclusive {
            self.held_creates_landed().await;
        }
    }

    /// Wakes a recall waiting for the queues to drain.
    pub(crate) fn behind_progressed(&self) {
        self.behind.unlinks_drained.notify_waiters();
    }

    /// Called on the FUSE thread: unless the queue is full, replies at once.
    pub(crate) fn unlink_behind(self: &Arc<Self>, rt: &Handle, fs: Fs, parent: u64, name: Vec<u8>, reply: ReplyEmpty) {
        let behind = self.fs.meta.write_behind().clone();
        // The file, when a fresh listing says which one it is: its
        // attributes are then known to be changing (else any file's might).
        let file = self.unlinked_file(parent, &name);
        // Unlinks are sent without waiting for this mount's other changes,
        // so one must not overtake a create of the same name: none is begun
        // while a create is in flight. (A create begun in another directory
        // between this check and the ticket is of another name; in this
        // directory the kernel holds the directory's lock until we reply.)
        // Nor overtake an attribute change of the directory queued before
        // (attrs_behind.rs): its times must end as the calls were made.
        // Nor a rename queued before (rename_behind.rs): the name it names
        // may be the one the rename made.
        let ticket = if behind.creating() || self.dir_attrs_pending(parent) || self.renames_pending() {
            None
        } else {
            behind.try_begin(parent, &name, file)
        };
        match ticket {
            Some(ticket) => self.queue_unlink(rt, ticket, fs, parent, name, file, reply),
            None => {
                let (m, rt2) = (self.clone(), rt.clone());
                rt.spawn(async move {
                    let wait = async {
                        if m.dir_attrs_pending(parent) || m.renames_pending() {
                            behind.settle().await;
                        }
                        behind.settle_creates().await;
                        let file = m.unlinked_file(parent, &name);
                        (behind.begin(parent, &name, file).await, file)
                    };
                    let waited = match m.io_timeout {
                        Some(t) => tokio::time::timeout(t, wait).await.ok(),
                        None => Some(wait.await),
                    };
                    match waited {
                        Some((ticket, file)) => m.queue_unlink(&rt2, ticket, fs, parent, name, file, reply),
                        None => {
                            tracing::warn!("unlink waited on the cluster past the I/O timeout: EIO");
                            reply.error(fuser::Errno::EIO)
                        }
                    }
                });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn queue_unlink(
        self: &Arc<Self>,
        rt: &Handle,
        ticket: Ticket,
        fs: Fs,
        parent: u64,
        name: Vec<u8>,
        file: Option<u64>,
        reply: ReplyEmpty,
    ) {
        let req = pb::UnlinkRequest {
            cred: Some(fs.cred.clone()),
            parent,
            name: b(&name),
            ino: file.unwrap_or(0),
            ..Default::default()
        };
        let start = {
            let mut q = self.unlink_queue();
            // Decided under the lock a recall takes: once the directory is
            // recalled, unlinks in it are answered when they commit.
            let early = match self.behind.unlink {
                UnlinkBehind::Always => true,
                _ => q.exclusive.contains(&parent),
            };
            self.caches.dir.removed(parent, &name);
            self.post_op_predicted(parent);
            if let Some(f) = file {
                q.fresh.remove(&f);
            }
            let reply = if early {
                reply.ok();
                crate::exported::written_behind("unlink");
                None
            } else {
                Some(reply)
            };
            q.queued.push(Queued { req, ticket, file, reply });
            !std::mem::replace(&mut q.sending, true)
        };
        if start {
            rt.spawn(self.clone().send_unlinks());
        }
    }

    /// Sends queued unlinks, a batch at a time, until the queue is empty.
    async fn send_unlinks(self: Arc<Self>) {
        loop {
            let batch: Vec<Queued> = {
                let mut q = self.unlink_queue();
                if q.queued.is_empty() {
                    q.sending = false;
                    self.behind.unlinks_drained.notify_waiters();
                    return;
                }
                let n = q.queued.len().min(MAX_BATCH);
                q.queued.drain(..n).collect()
            };
            self.send_batch(batch).await;
        }
    }

    async fn send_batch(self: &Arc<Self>, batch: Vec<Queued>) {
        let req = pb::UnlinkManyRequest {
            unlinks: batch.iter().map(|q| q.req.clone()).collect(),
            request_id: tessera_client::fs::request_id(),
            open: self.open_inos(),
        };
        let res = self.fs.send_held_unlinks(&req).await;
        let behind = self.fs.meta.write_behind();
        let no_master = matches!(res, Err(ClientError::NoMaster { .. }));
        self.unlink_queue().no_master = no_master;
        let (outcomes, dirs) = match res {
            Ok(r) if r.outcomes.len() == batch.len() => {
                self.orphaned(&r.orphaned);
                (r.outcomes, r.dirs)
            }
            Ok(_) => (vec![outcome_of("the master answered a different number of unlinks"); batch.len()], vec![]),
            Err(e) => (vec![outcome_of(&e.to_string()); batch.len()], vec![]),
        };
        let mut settled_dirs = Vec::new();
        for (q, o) in batch.into_iter().zip(outcomes) {
            let (parent, file) = (q.req.parent, q.file);
            let still_touched = behind.end(q.ticket, parent);
            if let Some(reply) = q.reply {
                match o.errno {
                    0 => reply.ok(),
                    e => reply.error(fuser::Errno::from_i32(e)),
                }
            }
            if o.errno == 0 {
                // While other unlinks in the directory are on their way, the
                // prediction is newer than this reply.
                if !still_touched {
                    settled_dirs.push(parent);
                }
                continue;
            }
            self.dir_change_failed(parent);
            if let Some(f) = file {
                self.attrs_changed(f);
            }
            // ENOENT: another client removed the name first. Anything else
            // (a permission another client took away) leaves it in place.
            tracing::warn!(
                parent,
                name = %String::from_utf8_lossy(&q.req.name),
                errno = o.errno,
                error = %o.message,
                "write-behind unlink not applied"
            );
        }
        for d in settled_dirs {
            self.post_op(d, dirs.iter().find(|a| a.ino == d).copied());
        }
    }
}

fn outcome_of(msg: &str) -> pb::UnlinkOutcome {
    pb::UnlinkOutcome { errno: libc::EIO, message: msg.to_string() }
}
