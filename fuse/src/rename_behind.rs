//! Write-behind rename. rsync writes each file under a temporary name
//! and renames it into place once its times and mode are set; git and
//! many editors do the same. Each rename was a Raft commit the tool waited
//! for. In directories this mount holds exclusively (see unlink_behind.rs)
//! a rename of a file whose inode the mount knows, to a name it knows to
//! be free or to name a file it knows, is acknowledged at once and sent
//! behind, in order, one at a time.
//!
//! Why no one can tell: as for unlinks and attribute changes written
//! behind, another mount's first read or change of either directory
//! recalls it, and the recall is acknowledged only once the queued renames
//! have landed. On this mount every later master call waits for them,
//! except lookups and getattrs of names and inodes they do not touch; the
//! lookup cache moves the name at once. The request names what the mount
//! saw (the file at the old name, and the file replaced at the new one or
//! none), so a rename sent late by a mount cut off from its lease moves
//! nothing made since: it fails, and is logged. Durability is that of an
//! unlink behind: fsync of a file or a directory waits for it.
//!
//! Not written behind: directories (a move changes `..` and is checked
//! against loops), RENAME_EXCHANGE/NOREPLACE, a replaced file open here
//! (its last close must know it lost its name), and any name the mount's
//! listing does not know.

use crate::fs::Mount;
use crate::unlink_queue::{QueuedRename, UnlinkBehind};
use std::sync::Arc;
use tessera_client::ClientError;
use tessera_proto::pb::{self, FileKind};
use tokio::runtime::Handle;

impl Mount {
    /// Acknowledges and queues `req` if it may go behind (see the module
    /// comment); false: it must go to the master and be waited for.
    pub(crate) fn rename_behind(self: &Arc<Self>, rt: &Handle, req: &pb::RenameRequest) -> bool {
        if self.behind.unlink == UnlinkBehind::Never || req.flags != 0 {
            return false;
        }
        let (parent, new_parent) = (req.parent, req.new_parent);
        let open = self.open_inos();
        let behind = self.fs.meta.write_behind().clone();
        // Decided under the lock a recall takes to end the holds: the
        // listings read below are this mount's alone until it lets go.
        let mut q = self.behind.unlinks.lock();
        if q.no_master || !q.exclusive.contains(&parent) || !q.exclusive.contains(&new_parent) {
            return false;
        }
        let dirs = &self.caches.dir;
        // The kernel checked the caller by its own uid; the masters judge
        // the mapped one (a squashed root): both directories writable and
        // searchable by it, and no sticky bit to weigh.
        let Some(cred) = req.cred.as_ref() else { return false };
        let writable = |d: u64| {
            let a = self.caches.post_op.get_any_age(d).or_else(|| dirs.dir_attr(d));
            a.is_some_and(|a| crate::dircache::may(&a, cred, 3) && (cred.uid == 0 || a.mode & 0o1000 == 0))
        };
        if !writable(parent) || !writable(new_parent) {
            return false;
        }
        let Some(ino) = dirs.ino_known(parent, &req.name) else { return false };
        // A file replaced must have no other name (whose holders would see
        // its link count late) and not be open here (its last close must
        // know it lost its name).
        let plain = |dir: u64, i: u64| {
            dirs.attr_in(dir, i).is_some_and(|a| a.kind != FileKind::Directory as i32 && a.nlink == 1)
        };
        let replaces = match dirs.ino_known(new_parent, &req.new_name) {
            Some(t) if t != ino && plain(new_parent, t) && !open.contains(&t) => t,
            Some(_) => return false,
            None if dirs.absent_known(new_parent, &req.new_name) => 0,
            None => return false,
        };
        let Some(mut moved) = dirs.attr_in(parent, ino).filter(|a| a.kind != FileKind::Directory as i32) else {
            return false;
        };
        let touched: Vec<u64> = [parent, new_parent, ino, replaces].into_iter().filter(|i| *i != 0).collect();
        let Some(ticket) = behind.try_begin_rename((parent, &req.name), (new_parent, &req.new_name), &touched) else {
            return false;
        };
        let req = pb::RenameRequest { seen: true, ino, replaces, ..req.clone() };
        dirs.renamed(parent, &req.name, new_parent, &req.new_name, false);
        // Known still, but for its ctime: a look at the new name needs no
        // round trip (which would wait for the rename to land).
        moved.ctime = Some(tessera_proto::time::now());
        dirs.set_attr_in(new_parent, &moved);
        self.post_op_predicted(parent);
        self.post_op_predicted(new_parent);
        if let Some(p) = q.fresh.get_mut(&ino) {
            *p = new_parent;
        }
        if replaces != 0 {
            q.fresh.remove(&replaces);
        }
        q.renames.push_back(QueuedRename { req, ticket });
        let start = q.renames.len() == 1;
        drop(q);
        crate::exported::written_behind("rename");
        if start {
            rt.spawn(self.clone().send_renames());
        }
        true
    }

    /// A rename of `name` in `parent` goes to the masters as it is: the
    /// file may land where other sessions see it, so it is no longer fresh
    /// (all of `parent`'s are not, when the listing does not say which).
    pub(crate) fn not_fresh_after(&self, parent: u64, name: &[u8]) {
        let file = self.caches.dir.ino_known(parent, name);
        let mut q = self.behind.unlinks.lock();
        match file {
            Some(i) => {
                q.fresh.remove(&i);
            }
            None => q.fresh.retain(|_, p| *p != parent),
        }
    }

    /// Whether renames are queued or on their way.
    pub(crate) fn renames_pending(&self) -> bool {
        !self.behind.unlinks.lock().renames.is_empty()
    }

    /// Sends the queued renames, one at a time, until none is left.
    async fn send_renames(self: Arc<Self>) {
        let behind = self.fs.meta.write_behind().clone();
        loop {
            let next = {
                let q = self.behind.unlinks.lock();
                q.renames.front().map(|r| (r.req.clone(), r.ticket.seq()))
            };
            let Some((mut req, seq)) = next else { return };
            // Changes begun before land first (the file's held create, an
            // unlink of the name it takes): the masters must see the
            // directories as this mount did when it acknowledged.
            behind.settle_before_kicking(seq).await;
            req.request_id = tessera_client::fs::request_id();
            req.open = self.open_inos();
            let r = self.fs.rename_unordered(&req).await;
            let (ticket, last) = {
                let mut q = self.behind.unlinks.lock();
                q.no_master = matches!(r, Err(ClientError::NoMaster { .. }));
                let Some(done) = q.renames.pop_front() else { return };
                (done.ticket, q.renames.is_empty())
            };
            let still = behind.end(ticket, req.parent);
            match r {
                Ok(d) => {
                    self.orphaned(&d.orphaned);
                    if !still {
                        self.post_op(req.parent, d.parent);
                    }
                    if req.new_parent != req.parent && !behind.touches(req.new_parent) {
                        self.post_op(req.new_parent, d.new_parent);
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        parent = req.parent,
                        name = %String::from_utf8_lossy(&req.name),
                        new_parent = req.new_parent,
                        new_name = %String::from_utf8_lossy(&req.new_name),
                        error = %e,
                        "write-behind rename not applied"
                    );
                    self.dir_change_failed(req.parent);
                    self.dir_change_failed(req.new_parent);
                    self.attrs_changed(req.ino);
                }
            }
            self.behind_progressed();
            if last {
                return;
            }
        }
    }
}
