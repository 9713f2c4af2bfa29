//! The callbacks that change names (create, mknod, mkdir, symlink, link,
//! unlink, rmdir, rename). Besides the master call, each keeps the mount's
//! lookup cache and the directories' post-op attributes in step with the
//! change: applied when it succeeded, forgotten when it failed.

use crate::fs::{b, cred, to_file_attr};
use crate::ops::{spawn, TesseraFs};
use fuser::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use tessera_client::ClientError;
use tessera_proto::pb::{self, FileKind};

impl TesseraFs {
    /// Like `entry`, for an operation that makes `name` in `parent` name the
    /// returned inode (create, mkdir, symlink, link, mknod).
    pub(crate) fn new_entry(
        &self,
        req: &Request,
        reply: ReplyEntry,
        parent: INodeNo,
        name: &OsStr,
        fut: impl std::future::Future<Output = tessera_client::Result<tessera_client::NewEntry>> + Send + 'static,
    ) {
        let m = self.mount.clone();
        let name = name.as_bytes().to_vec();
        self.entry(req, reply, async move {
            match fut.await {
                Ok(made) => {
                    m.caches.dir.created(parent.0, &name, &made.attr);
                    m.post_op(parent.0, made.parent);
                    Ok(made.attr)
                }
                Err(e) => {
                    m.dir_change_failed(parent.0);
                    Err(e)
                }
            }
        });
    }

    /// unlink and rmdir: the same request, two RPCs.
    pub(crate) fn remove(&self, req: &Request, parent: INodeNo, name: &OsStr, dir: bool, reply: ReplyEmpty) {
        let fs = self.mount.with_cred(cred(req.uid(), req.gid(), req.pid()));
        if !dir && self.mount.may_unlink_behind(parent.0, name.as_bytes()) {
            self.mount.unlink_behind(&self.rt, fs, parent.0, name.as_bytes().to_vec(), reply);
            return;
        }
        let open = if dir { Vec::new() } else { self.mount.open_inos() };
        let name = name.as_bytes().to_vec();
        spawn!(
            self,
            req,
            reply,
            |m| async move {
                let res = fs.remove_at(parent.0, &name, dir, open).await;
                match &res {
                    Ok(d) => {
                        m.master_reached();
                        m.orphaned(&d.orphaned);
                        m.caches.dir.removed(parent.0, &name);
                        if dir {
                            // The removed directory's own post-op attributes
                            // (from emptying it) are now wrong.
                            m.forget_all_post_op();
                        }
                        m.post_op(parent.0, d.parent);
                    }
                    Err(_) => m.dir_change_failed(parent.0),
                }
                res
            },
            |_x| reply.ok()
        );
    }

    #[allow(clippy::too_many_arguments)] // mirrors FUSE's rename
    pub(crate) fn rename_names(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let fs = self.mount.with_cred(cred(req.uid(), req.gid(), req.pid()));
        let r = pb::RenameRequest {
            cred: Some(fs.cred.clone()),
            parent: parent.0,
            name: b(name.as_bytes()),
            new_parent: newparent.0,
            new_name: b(newname.as_bytes()),
            flags: flags.bits(),
            request_id: tessera_client::fs::request_id(),
            open: self.mount.open_inos(),
            ..Default::default()
        };
        // In directories held here alone: acknowledged, sent behind.
        if self.mount.rename_behind(&self.rt, &r) {
            reply.ok();
            return;
        }
        self.mount.not_fresh_after(r.parent, &r.name);
        spawn!(
            self,
            req,
            reply,
            |m| async move {
                let res = fs.rename_request(&r).await;
                // The moved inodes' ctimes changed: no directory's post-op
                // attributes are trusted but the two just returned.
                m.forget_all_post_op();
                match &res {
                    Ok(d) => {
                        m.orphaned(&d.orphaned);
                        m.caches.dir.renamed(
                            r.parent,
                            &r.name,
                            r.new_parent,
                            &r.new_name,
                            r.flags & libc::RENAME_EXCHANGE != 0,
                        );
                        m.post_op(r.parent, d.parent);
                        m.post_op(r.new_parent, d.new_parent);
                    }
                    Err(_) => {
                        m.dir_change_failed(r.parent);
                        m.dir_change_failed(r.new_parent);
                    }
                }
                res
            },
            |_x| reply.ok()
        );
    }

    #[allow(clippy::too_many_arguments)] // mirrors FUSE's create
    pub(crate) fn create_file(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let fs = self.mount.with_cred(cred(req.uid(), req.gid(), req.pid()));
        let exclusive = flags & libc::O_EXCL != 0;
        let held = {
            let _rt = self.rt.enter();
            self.mount.hold_create(&fs.cred, parent.0, name.as_bytes(), mode & !umask & 0o7777, exclusive)
        };
        if let Some(a) = held {
            spawn!(self, req, reply, |m| m.open(&fs.cred, a.ino, flags, Some(&a)), |fh| reply.created(
                &m.kernel_ttl(),
                &to_file_attr(&a),
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty()
            ));
            return;
        }
        let r = pb::CreateRequest {
            cred: Some(fs.cred.clone()),
            parent: parent.0,
            name: b(name.as_bytes()),
            mode: mode & !umask & 0o7777,
            kind: FileKind::Regular as i32,
            rdev: 0,
            exclusive,
            truncate: flags & libc::O_TRUNC != 0,
            request_id: tessera_client::fs::request_id(),
            ..Default::default()
        };
        spawn!(
            self,
            req,
            reply,
            |m| async {
                let (gen, epoch) = (m.leases.gen(), m.caches.dir.epoch());
                let c = fs.create_request(&r).await.inspect_err(|_| m.dir_change_failed(parent.0))?;
                let a = c.attr.ok_or_else(|| ClientError::fs(libc::EIO, "no attributes"))?;
                m.behind.creates.master_reached();
                if c.lease && m.leases.still(gen) {
                    // Registered on the new file: its stats need no round trip.
                    m.caches.dir.learned_attr(&a, epoch);
                }
                m.caches.dir.created(parent.0, &r.name, &a);
                m.post_op(parent.0, c.parent);
                if a.kind != FileKind::Regular as i32 {
                    return Err(ClientError::fs(libc::EISDIR, "not a regular file"));
                }
                let fh = m.open(&fs.cred, a.ino, flags, c.created.then_some(&a)).await?;
                Ok((m.patch(a).await, fh))
            },
            |x| reply.created(
                &m.kernel_ttl(),
                &to_file_attr(&x.0),
                Generation(0),
                FileHandle(x.1),
                FopenFlags::empty()
            )
        );
    }
}
