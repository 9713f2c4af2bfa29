//! Write-behind attribute changes of directories this mount holds
//! exclusively. tar and `cp -a` set each directory's owner, mode and times
//! once they have filled it (about three setattrs per directory), and each
//! was a Raft commit the tool waited for. In a directory no other mount
//! has looked at (see unlink_behind.rs for exclusive holds), the change is
//! acknowledged at once with the attributes it will leave, and sent behind:
//! one request per directory at a time, later changes of the same caller
//! merged into the next one, different directories in parallel.
//!
//! Why no one can tell: before another mount reads the directory's
//! attributes (a getattr of it, a lookup or listing that returns it) the
//! masters recall the directory from this mount, and the recall is
//! acknowledged only once every queued change has landed. On this mount,
//! a change of the directory's contents begun later waits for it (a create
//! does not ride on its commit, an unlink is not queued past it), so the
//! directory's times end as the calls were made; changes of other inodes
//! commute with it and do not wait. Durability is that of an unlink behind:
//! fsync and fsyncdir wait for it.
//!
//! The same holds for a file this mount created in such a directory
//! (`UnlinkQueue::fresh`; rsync sets a file's times and mode after closing
//! it, then renames it into place): no other session can reach it but
//! through the directory. Only changes the masters will accept as this
//! mount judges them (the caller owns the file or is root, as the masters
//! see the caller), of a file with no writes waiting here for their commit
//! (those carry the change themselves: setattr_behind.rs).

use crate::fs::Mount;
use std::sync::Arc;
use tessera_client::ClientError;
use tessera_proto::pb::{Attr, Cred, FileKind, SetAttrRequest};

impl Mount {
    /// Acknowledges `req` (no size change) on a directory this mount holds
    /// exclusively and whose attributes it knows, and sends it behind;
    /// returns the attributes it will leave. None: it goes synchronously.
    pub(crate) fn dir_setattr_behind(self: &Arc<Self>, req: &SetAttrRequest) -> Option<Attr> {
        if req.size.is_some() || req.read_access {
            return None;
        }
        let behind = self.fs.meta.write_behind().clone();
        // A file with writes waiting here: they carry the change. Its lock
        // is tried, not awaited: a close's release (which the kernel sends
        // after close(2) returned) may hold it while rsync's chmod arrives,
        // and the change then goes synchronously (awaiting the lock halved
        // rsync_in: the chmod waited for the release's flush).
        let maybe_fresh = self.behind.unlinks.lock().fresh.contains_key(&req.ino);
        let writing = self.open_file(req.ino).is_some_and(|f| f.data.try_lock().map_or(true, |d| d.is_dirty()));
        let mut q = self.behind.unlinks.lock();
        let held_dir = q.exclusive.contains(&req.ino);
        let fresh_file = !held_dir && q.fresh.get(&req.ino).is_some_and(|p| q.exclusive.contains(p));
        if q.no_master || !(held_dir || fresh_file) {
            if maybe_fresh {
                tracing::debug!(
                    ino = req.ino,
                    no_master = q.no_master,
                    "attributes of a fresh file not set behind: its directory is not held"
                );
            }
            return None;
        }
        // Its attributes as this mount's last change left them, of any age:
        // no one else changed it since (they would have recalled it, and a
        // revoke forgets them).
        let known = match q.fresh.get(&req.ino) {
            Some(&parent) if !held_dir => {
                let a = self.caches.dir.attr_in(parent, req.ino);
                if a.is_none() {
                    tracing::debug!(
                        ino = req.ino,
                        parent,
                        "attributes of a fresh file not set behind: not in its listing"
                    );
                }
                a?
            }
            _ => self.caches.post_op.get_any_age(req.ino).or_else(|| self.caches.dir.attr(req.ino))?,
        };
        let fits = match held_dir {
            true => known.kind == FileKind::Directory as i32,
            false => {
                known.kind == FileKind::Regular as i32
                    && known.nlink == 1
                    && req.cred.as_ref().is_some_and(|c| accepted(&known, c, req))
                    && !writing
            }
        };
        if !fits {
            tracing::debug!(
                ino = req.ino,
                writing,
                nlink = known.nlink,
                "attributes not set behind: the file does not qualify"
            );
            return None;
        }
        let ticket = behind.try_begin_attrs(req.ino)?;
        let mut a = known;
        crate::pending_attrs::overlay(req, &mut a);
        // A file's attributes live in the listing's cache only: a later
        // commit updates that one, and a post-op entry would go stale.
        if held_dir {
            self.caches.post_op.insert(req.ino, a);
        }
        self.caches.dir.updated(&a);
        let entry = q.dir_attrs.entry(req.ino).or_default();
        let start = entry.queue.is_empty();
        // The front one is on its way; a later one of the same caller merges.
        let queued_behind_front = entry.queue.len() > 1;
        match entry.queue.back_mut() {
            Some((p, tickets)) if queued_behind_front && p.cred == req.cred => {
                crate::pending_attrs::merge(p, req);
                tickets.push(ticket);
            }
            _ => entry.queue.push_back((req.clone(), vec![ticket])),
        }
        drop(q);
        crate::exported::written_behind(if held_dir { "dir_attrs" } else { "fresh_file_attrs" });
        if start {
            tokio::spawn(self.clone().send_dir_attrs(req.ino));
        }
        Some(a)
    }

    /// Whether attribute changes of `ino` are queued or on their way.
    pub(crate) fn dir_attrs_pending(&self, ino: u64) -> bool {
        self.behind.unlinks.lock().dir_attrs.contains_key(&ino)
    }

    /// Sends the queued changes of directory `ino`, one at a time, until
    /// none is left.
    async fn send_dir_attrs(self: Arc<Self>, ino: u64) {
        let behind = self.fs.meta.write_behind().clone();
        loop {
            let next = {
                let q = self.behind.unlinks.lock();
                let fresh_file = !q.exclusive.contains(&ino);
                q.dir_attrs.get(&ino).and_then(|e| e.queue.front().map(|(r, t)| (r.clone(), t[0].seq(), fresh_file)))
            };
            let Some((mut req, first, fresh_file)) = next else { return };
            // Changes of the directory begun before (creates and unlinks in
            // it) land first: its times must end as the calls were made. A
            // fresh file's create is not hurried: it rides on the file's
            // first commit (SQLite's journal: created, chowned, written,
            // fsynced), and the change follows it.
            match fresh_file {
                true => behind.settle_touching_before_quietly(first, ino).await,
                false => behind.settle_touching_before(first, ino).await,
            }
            req.request_id = tessera_client::fs::request_id();
            let r = self.fs.setattr_unordered(&req).await;
            let (tickets, last) = {
                let mut q = self.behind.unlinks.lock();
                q.no_master = matches!(r, Err(ClientError::NoMaster { .. }));
                let Some(e) = q.dir_attrs.get_mut(&ino) else { return };
                let (_, tickets) = e.queue.pop_front().unwrap_or_default();
                // Removed under the lock: a change queued after this starts
                // a sender of its own.
                let last = e.queue.is_empty();
                if last {
                    q.dir_attrs.remove(&ino);
                }
                (tickets, last)
            };
            let mut still = false;
            for t in tickets {
                still = behind.end(t, ino);
            }
            match r {
                Ok(a) if !still => self.attrs_set(&a),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(ino, error = %e, "write-behind attribute change not applied");
                    self.attrs_changed(ino);
                }
            }
            self.behind_progressed();
            if last {
                return;
            }
        }
    }
}

/// Whether the masters will accept `req` on the file `a` from `c` (as the
/// masters see the caller): root, or the owner changing mode and times, or
/// its group to one of the owner's, keeping a setgid bit only in it.
fn accepted(a: &Attr, c: &Cred, req: &SetAttrRequest) -> bool {
    if c.uid == 0 {
        return true;
    }
    let in_group = |g: u32| c.gid == g || c.groups.contains(&g);
    let gid = req.gid.unwrap_or(a.gid);
    c.uid == a.uid
        && req.uid.is_none_or(|u| u == a.uid)
        && (gid == a.gid || in_group(gid))
        && req.mode.is_none_or(|m| m & 0o2000 == 0 || in_group(gid))
}
