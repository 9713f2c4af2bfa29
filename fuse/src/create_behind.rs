//! Write-behind create. A new small file costs two Raft commits if its
//! create waits for one and its close for another. Instead, the mount
//! acknowledges a create at once with an inode number from a lease the
//! masters granted it (`LeaseInos`), holds it back, and sends it inside the
//! file's first commit (one Raft entry): like CephFS's asynchronous create
//! with delegated inode numbers.
//!
//! What keeps this invisible on this mount: every later master call waits
//! for the creates begun before it and, with `WriteBehind::kicked`, gets
//! held ones sent first; lookups, getattrs and listings of this mount see the
//! file at once. A held create is sent on its own when its file is closed or
//! fsynced without data to commit, when another change must go first, and
//! at the latest after one attribute lifetime, so other mounts see the name
//! no later than this mount's other changes (close-to-open holds: close
//! sends it). Names over NAME_MAX, and directories whose attributes this
//! mount does not know (setgid) are created synchronously, and so are
//! O_EXCL creates unless this mount holds the directory exclusively (then
//! no other session can take the name before the masters recall the
//! directory, and the mount sends its held creates before it lets go).
//!
//! If another client created the same name in the meantime (this mount's
//! negative lookup was at most an attribute lifetime old), the held create
//! takes the name over, as a rename over it would: the later writer of a
//! name wins, as with two synchronous creates and their commits. Durability
//! is that of a local file system's create: fsync of the file or of the
//! directory waits for it.

use crate::fs::{b, Mount};
use crate::held_creates::{lost, send_create, Held};
use crate::unlink_queue::{MAX_FRESH, RECALL_WAIT};
use std::sync::Arc;
use std::time::Instant;
use tessera_client::{ClientError, Result};
use tessera_proto::pb::{self, Attr, Cred, FileKind};

/// Inode numbers asked for at a time, and the stock at which more are asked.
const LEASE: u32 = 1024;
const LOW: u64 = 256;
const S_ISGID: u32 = 0o2000;

impl Mount {
    /// Called on the FUSE thread: holds the create and returns the new
    /// file's attributes, or None when it must be made synchronously.
    ///
    /// An O_EXCL create (`excl`) is held only in a directory this mount
    /// holds exclusively and knows the name is absent from: no other
    /// session can make the name before a recall, which waits for it.
    pub(crate) fn hold_create(
        self: &Arc<Self>,
        cred: &Cred,
        parent: u64,
        name: &[u8],
        mode: u32,
        excl: bool,
    ) -> Option<Attr> {
        if !self.behind.create || name.len() > tessera_proto::NAME_MAX {
            return None;
        }
        // Kept until the create is held: a recall cannot pass in between.
        let exclusive_guard = match excl {
            true => Some(self.exclusive_absent(parent, name)?),
            false => None,
        };
        // Its group and setgid bit follow the directory's.
        let Some(dir) = self.known_dir_attr(parent, exclusive_guard.as_ref().map(|q| q.exclusive.contains(&parent)))
        else {
            tracing::debug!(parent, "create not held: the directory's attributes are not known here");
            return None;
        };
        if !crate::dircache::may(&dir, cred, 3) {
            // The kernel let the caller in by its own uid; the masters will
            // judge the mapped one (a squashed root): let them say no.
            return None;
        }
        let (gid, mut mode) = if dir.mode & S_ISGID != 0 { (dir.gid, mode) } else { (cred.gid, mode) };
        if mode & S_ISGID != 0 && cred.uid != 0 && cred.gid != gid && !cred.groups.contains(&gid) {
            mode &= !S_ISGID;
        }
        let creates = &self.behind.creates;
        let mut s = creates.lock();
        if s.no_master {
            return None;
        }
        if s.next >= s.end {
            drop(s);
            tracing::debug!(parent, "create not held: no inode numbers leased");
            self.lease_more();
            return None;
        }
        let ino = s.next;
        let ticket = creates.behind.try_begin_create(parent, ino)?;
        s.next += 1;
        let low = s.end - s.next < LOW;
        let now = tessera_proto::time::now();
        let attr = Attr {
            ino,
            kind: FileKind::Regular as i32,
            mode,
            uid: cred.uid,
            gid,
            size: 0,
            atime: Some(now),
            mtime: Some(now),
            ctime: Some(now),
            nlink: 1,
            rdev: 0,
            version: 0,
            parent: 0,
            xattrs: 0,
        };
        let req = pb::CreateRequest {
            cred: Some(cred.clone()),
            parent,
            name: b(name),
            mode,
            kind: FileKind::Regular as i32,
            ino,
            at: Some(now),
            exclusive: excl,
            request_id: tessera_client::fs::request_id(),
            ..Default::default()
        };
        s.held.insert(ino, Held { req, ticket, since: Instant::now(), attr });
        let start_sender = !std::mem::replace(&mut s.sender, true);
        drop(s);
        // A new file in a directory held here alone: no other session can
        // see it before a recall of the directory (rename_behind.rs).
        match exclusive_guard {
            Some(mut q) => {
                if q.fresh.len() < MAX_FRESH {
                    q.fresh.insert(ino, parent);
                }
            }
            None => {
                let mut q = self.behind.unlinks.lock();
                if q.exclusive.contains(&parent) && q.fresh.len() < MAX_FRESH {
                    q.fresh.insert(ino, parent);
                }
            }
        }
        if low {
            self.lease_more();
        }
        if start_sender {
            tokio::spawn(self.clone().send_held_creates());
        }
        self.caches.dir.created(parent, name, &attr);
        // The master gives the directory the create's time.
        self.post_op_predicted_at(parent, now);
        // New: no extended attributes (the kernel asks before a first write).
        self.note_xattrs(&attr);
        crate::exported::written_behind("create");
        Some(attr)
    }

    /// A directory's attributes as this mount last saw them change, or
    /// as leased (from a listing within its lifetime, or fetched alone).
    /// A directory held exclusively keeps them however old: no one else
    /// changed it since (they would have recalled it; a revoke forgets them).
    /// `exclusive`: whether it is, if the caller holds the queue's lock.
    fn known_dir_attr(&self, dir: u64, exclusive: Option<bool>) -> Option<Attr> {
        let leased =
            || self.leases.remaining().and(self.caches.dir.dir_attr(dir).or_else(|| self.caches.dir.attr(dir)));
        let held = || {
            let exclusive = exclusive.unwrap_or_else(|| self.behind.unlinks.lock().exclusive.contains(&dir));
            exclusive.then(|| self.caches.post_op.get_any_age(dir)).flatten()
        };
        self.post_op_attr(dir).or_else(held).or_else(leased)
    }

    /// Asks for more inode numbers in the background.
    pub(crate) fn lease_more(self: &Arc<Self>) {
        if !self.behind.create {
            return;
        }
        if std::mem::replace(&mut self.behind.creates.lock().leasing, true) {
            return;
        }
        let m = self.clone();
        tokio::spawn(async move {
            let r = m.fs.lease_inos(LEASE).await;
            let mut s = m.behind.creates.lock();
            s.leasing = false;
            match r {
                Ok(first) => (s.next, s.end) = (first, first + u64::from(LEASE)),
                Err(e) => tracing::debug!(error = %e, "leasing inode numbers failed; creating synchronously"),
            }
        });
    }

    /// The one sender of held creates: all of them when a change waits
    /// for them (a kick), those held for an attribute lifetime otherwise;
    /// each in order, after every change begun before it.
    async fn send_held_creates(self: Arc<Self>) {
        let behind = self.behind.creates.behind.clone();
        loop {
            let oldest = self.behind.creates.lock().held.values().map(|h| h.since).min();
            let all = match oldest {
                Some(t) => {
                    tokio::select! {
                        _ = behind.kicked() => true,
                        _ = tokio::time::sleep_until((t + self.ttl).into()) => false,
                    }
                }
                None => {
                    behind.kicked().await;
                    true
                }
            };
            let mut due: Vec<Held> = {
                let mut s = self.behind.creates.lock();
                let inos: Vec<u64> =
                    s.held.iter().filter(|(_, h)| all || h.since.elapsed() >= self.ttl).map(|(i, _)| *i).collect();
                inos.iter().filter_map(|i| s.held.remove(i)).collect()
            };
            due.sort_by_key(|h| h.ticket.seq());
            // Once one finds no master, the rest of the pass would wait out
            // the same timeout each: they are given up with it.
            let mut no_master = false;
            let sent_any = !due.is_empty();
            for h in due {
                behind.settle_before(&h.ticket).await;
                let r = if no_master {
                    Err(ClientError::fs(libc::EIO, "no master answered an earlier create"))
                } else {
                    tracing::debug!(ino = h.req.ino, all, "sending a held create on its own");
                    send_create(&self.fs, &h.req).await
                };
                no_master |= matches!(r, Err(ClientError::NoMaster { .. }));
                if let Err(e) = &r {
                    // The file this mount announced does not exist: what
                    // cached it is dropped; its next commit fails (ENOENT).
                    lost(&h.req, e);
                    self.behind.creates.lock().lost.insert(h.req.ino, h.req.parent);
                    self.dir_change_failed(h.req.parent);
                    self.attrs_changed(h.req.ino);
                }
                behind.end(h.ticket, h.req.parent);
            }
            if sent_any {
                self.behind.creates.lock().no_master = no_master;
            }
        }
    }

    /// Before a recall is acknowledged: every held create is sent, so the
    /// session that recalled a directory finds the names made in it (an
    /// O_EXCL create held in it must land before another session's).
    ///
    /// Waits for every change begun before, not only creates still held: the
    /// sender takes a create out of `held` before its answer arrives, and
    /// a recall acknowledged in between let another mount's O_EXCL create
    /// of the same name win (found by the coherence test under CI load).
    pub(crate) async fn held_creates_landed(&self) {
        if tokio::time::timeout(RECALL_WAIT, self.behind.creates.behind.settle()).await.is_err() {
            tracing::warn!("held creates did not land within a recall's wait");
        }
    }

    /// Makes sure the create of `ino`, if held, has landed (a close or an
    /// fsync with nothing to commit): close-to-open needs the name.
    pub(crate) async fn create_landed(&self, ino: u64) -> Result<()> {
        if self.behind.creates.holds(ino) {
            self.behind.creates.behind.settle().await;
        }
        if let Some(parent) = self.behind.creates.take_lost(ino) {
            self.dir_change_failed(parent);
            self.attrs_changed(ino);
            return Err(ClientError::fs(libc::EIO, "the file's write-behind create failed (see the mount's log)"));
        }
        Ok(())
    }
}
