//! Attribute changes that ride on a file's next commit.
//!
//! tar, cp -a and rsync set times, owner and mode on each file they write,
//! often through the open descriptor before closing it (GNU tar: futimens,
//! fchown, fchmod, close). Each was a Raft commit of its own. While the
//! file has writes this mount has not committed, such a change is kept with
//! them and the commit carries it (`CommitRequest.attrs`, applied after the
//! content in the same entry, with the caller's credentials); the kernel
//! has already checked the caller's right to make it (default_permissions).
//! Until the commit, this mount's stat shows the change; other mounts see
//! it with the content, at the close or fsync (close-to-open).

use crate::fs::Mount;
use crate::pending_attrs::merge;
use tessera_client::Result;
use tessera_proto::pb::{Attr, SetAttrRequest};

impl Mount {
    /// Keeps `req` (no size change) with the open file `ino`'s unflushed
    /// writes; None if the file has none here (then it goes to the master).
    pub async fn setattr_behind(&self, req: &SetAttrRequest) -> Option<Result<Attr>> {
        if !self.behind.attrs {
            return None;
        }
        let f = self.open_file(req.ino)?;
        {
            let mut d = f.data.lock().await;
            if req.size.is_some() {
                return None;
            }
            if !d.is_dirty() {
                // rsync's fchmod right after its O_EXCL create: a create
                // still held carries the mode (permission bits only).
                let only_mode = req.uid.is_none()
                    && req.gid.is_none()
                    && req.atime.is_none()
                    && !req.atime_now
                    && req.mtime.is_none()
                    && !req.mtime_now;
                let mode = req.mode.filter(|m| only_mode && m & !0o777 == 0)?;
                if !self.behind.creates.set_held_mode(req.ino, mode) {
                    return None;
                }
                drop(d);
                return Some(self.getattr_for_kernel(req.ino).await.map(|(a, _)| a));
            }
            let p = d.pending_attrs.get_or_insert_with(|| SetAttrRequest { ino: req.ino, ..Default::default() });
            merge(p, req);
        }
        crate::exported::written_behind("file_attrs");
        // Attributes as this mount shows them (a held create's, a cached
        // answer, else the master's), with the pending change laid over
        // (`Mount::patch`); no call waits for write-behind changes, so a
        // held create still rides on the commit.
        Some(self.getattr_for_kernel(req.ino).await.map(|(a, _)| a))
    }
}
