//! Attribute changes held for a file whose writes are not committed yet
//! (setattr_behind.rs): how several merge, and how they show in the
//! attributes the kernel sees meanwhile.

use tessera_proto::pb::{Attr, SetAttrRequest};

/// Later changes win, field by field; the caller is the latest one's.
pub(crate) fn merge(p: &mut SetAttrRequest, req: &SetAttrRequest) {
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
