//! Conversions between state-machine records and wire messages.

use crate::fsm::model::Inode;
use crate::types::{Cred, Time};
use tessera_proto::pb;

pub fn ts(t: Time) -> Option<pb::Timespec> {
    Some(pb::Timespec { sec: t.0, nsec: t.1 })
}

pub fn attr(i: &Inode) -> pb::Attr {
    pb::Attr {
        ino: i.ino,
        kind: i.kind,
        mode: i.mode,
        uid: i.uid,
        gid: i.gid,
        size: i.size,
        atime: ts(i.atime),
        mtime: ts(i.mtime),
        ctime: ts(i.ctime),
        nlink: i.nlink,
        rdev: i.rdev,
        version: i.version,
        parent: i.parent,
        xattrs: i.xattrs,
    }
}

pub fn cred(c: Option<pb::Cred>) -> Cred {
    // A request without credentials acts as root: only trusted tools (the
    // CLI run by an operator) omit them; the FUSE mount always sends them.
    c.map(|c| Cred { uid: c.uid, gid: c.gid, groups: c.groups }).unwrap_or_default()
}

pub fn time(t: &pb::Timespec) -> Time {
    (t.sec, t.nsec)
}
