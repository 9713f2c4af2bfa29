//! The extended-attribute callbacks (set, get, list, remove). Files known
//! to have none, POSIX ACL probes and changes in namespaces the masters do
//! not store (ACLs are not supported) are answered without a round trip; a
//! change forgets what the mount knew of the file's attributes.

use crate::convert::{errno, xattr_reply};
use crate::fs::cred;
use crate::inflight::Bound;
use crate::ops::TesseraFs;
use fuser::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

impl TesseraFs {
    #[allow(clippy::too_many_arguments)] // mirrors FUSE's setxattr
    pub(crate) fn xattr_set(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        reply: ReplyEmpty,
    ) {
        // cp -a sets system.posix_acl_access on every file; refused here,
        // it does not wait for the file's held create to be sent first.
        if !tessera_proto::xattr_namespace_supported(name.as_bytes()) {
            reply.error(Errno::from_i32(libc::EOPNOTSUPP));
            return;
        }
        let fs = self.mount.with_cred(cred(req.uid(), req.gid(), req.pid()));
        let (name, value) = (name.as_bytes().to_vec(), value.to_vec());
        self.xattr_change(req.unique().0, ino.0, reply, async move {
            fs.set_xattr(ino.0, &name, &value, flags as u32).await
        });
    }

    pub(crate) fn xattr_get(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        // No ACLs: answer tools probing for them (ls, cp) without a round trip.
        if name.as_bytes().starts_with(b"system.posix_acl_") || self.mount.known_without_xattrs(ino.0) {
            reply.error(Errno::from_i32(libc::ENODATA));
            return;
        }
        let fs = self.mount.with_cred(cred(req.uid(), req.gid(), req.pid()));
        let name = name.as_bytes().to_vec();
        let work = async move { fs.get_xattr(ino.0, &name).await };
        self.inflight.run(&self.rt, req.unique().0, Bound::Timeout, reply, work, move |reply, r| match r {
            Ok(value) => xattr_reply(reply, &value, size),
            Err(e) => reply.error(errno(&e)),
        });
    }

    pub(crate) fn xattr_list(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let fs = self.mount.with_cred(cred(req.uid(), req.gid(), req.pid()));
        let work = async move { fs.list_xattr(ino.0).await };
        self.inflight.run(&self.rt, req.unique().0, Bound::Timeout, reply, work, move |reply, r| match r {
            Ok(names) => {
                let mut buf = Vec::new();
                for n in names {
                    buf.extend_from_slice(&n);
                    buf.push(0);
                }
                xattr_reply(reply, &buf, size)
            }
            Err(e) => reply.error(errno(&e)),
        });
    }

    pub(crate) fn xattr_remove(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if !tessera_proto::xattr_namespace_supported(name.as_bytes()) {
            reply.error(Errno::from_i32(libc::EOPNOTSUPP));
            return;
        }
        let fs = self.mount.with_cred(cred(req.uid(), req.gid(), req.pid()));
        let name = name.as_bytes().to_vec();
        self.xattr_change(req.unique().0, ino.0, reply, async move { fs.remove_xattr(ino.0, &name).await });
    }

    /// A change of `ino`'s extended attributes. What the mount knew of them
    /// is forgotten before the call and again after it: attributes fetched
    /// while it was in flight may predate it.
    fn xattr_change<T: Send + 'static>(
        &self,
        unique: u64,
        ino: u64,
        reply: ReplyEmpty,
        call: impl std::future::Future<Output = tessera_client::Result<T>> + Send + 'static,
    ) {
        self.mount.attrs_changed(ino);
        let m = self.mount.clone();
        let work = async move {
            let res = call.await;
            m.attrs_changed(ino);
            res
        };
        self.inflight.run(&self.rt, unique, Bound::Timeout, reply, work, |reply, r| match r {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        });
    }
}
