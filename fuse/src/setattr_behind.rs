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
use tessera_client::Result;
use tessera_proto::pb::{Attr, SetAttrRequest};

impl Mount {
    /// Keeps `req` (no size change) with the open file `ino`'s unflushed
    /// writes; None if the file has none here (then it goes to the master).
    pub async fn setattr_behind(&self, req: &SetAttrRequest) -> Option<Result<Attr>> {
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
                if !self.creates.set_held_mode(req.ino, mode) {
                    return None;
                }
                drop(d);
                return Some(self.getattr_for_kernel(req.ino).await.map(|(a, _)| a));
            }
            let p = d.pending_attrs.get_or_insert_with(|| SetAttrRequest { ino: req.ino, ..Default::default() });
            merge(p, req);
        }
        // Attributes as this mount shows them (a held create's, a cached
        // answer, else the master's), with the pending change laid over
        // (`Mount::patch`); no call waits for write-behind changes, so a
        // held create still rides on the commit.
        Some(self.getattr_for_kernel(req.ino).await.map(|(a, _)| a))
    }
}

/// Later changes win, field by field; the caller is the latest one's.
fn merge(p: &mut SetAttrRequest, req: &SetAttrRequest) {
    p.cred = req.cred.clone();
    p.mode = req.mode.or(p.mode);
    p.uid = req.uid.or(p.uid);
    p.gid = req.gid.or(p.gid);
    if req.atime.is_some() || req.atime_now {
        (p.atime, p.atime_now) = (req.atime, req.atime_now);
    }
    if req.mtime.is_some() || req.mtime_now {
        (p.mtime, p.mtime_now) = (req.mtime, req.mtime_now);
    }
}

/// `a` as the pending change will leave it (times set to now show now).
pub(crate) fn overlay(p: &SetAttrRequest, a: &mut Attr) {
    let now = tessera_proto::time::now();
    if let Some(m) = p.mode {
        a.mode = (a.mode & !0o7777) | (m & 0o7777);
    }
    if let Some(u) = p.uid {
        a.uid = u;
    }
    if let Some(g) = p.gid {
        a.gid = g;
    }
    if p.atime_now {
        a.atime = Some(now);
    } else if p.atime.is_some() {
        a.atime = p.atime;
    }
    if p.mtime_now {
        a.mtime = Some(now);
    } else if p.mtime.is_some() {
        a.mtime = p.mtime;
    }
    a.ctime = Some(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_changes_win_field_by_field() {
        let mut p = SetAttrRequest::default();
        merge(&mut p, &SetAttrRequest { mode: Some(0o600), mtime_now: true, ..Default::default() });
        merge(&mut p, &SetAttrRequest { uid: Some(7), mode: Some(0o640), ..Default::default() });
        assert_eq!((p.mode, p.uid, p.gid, p.mtime_now), (Some(0o640), Some(7), None, true));
        let t = tessera_proto::pb::Timespec { sec: 5, nsec: 0 };
        merge(&mut p, &SetAttrRequest { mtime: Some(t), ..Default::default() });
        assert_eq!((p.mtime, p.mtime_now), (Some(t), false));
        let mut a = Attr { mode: 0o100644, ..Default::default() };
        overlay(&p, &mut a);
        assert_eq!((a.mode, a.uid, a.mtime), (0o100640, 7, Some(t)));
    }
}
