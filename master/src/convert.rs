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

/// The credentials a request acts with: what it carries, read through its
/// caller's certificate (`tessera_rpc::uid_map`). A request without any
/// claims root, which the certificate's map then bounds like any claim.
pub fn cred(c: Option<pb::Cred>) -> Cred {
    use tessera_rpc::uid_map::Creds;
    let c = c.map(|c| Creds { uid: c.uid, gid: c.gid, groups: c.groups }).unwrap_or_default();
    let c = tessera_rpc::authz::map_creds(c);
    Cred { uid: c.uid, gid: c.gid, groups: c.groups }
}

pub fn time(t: &pb::Timespec) -> Time {
    (t.sec, t.nsec)
}
