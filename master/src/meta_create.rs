//! The metadata RPCs that make regular files: create (as asked, or a
//! mount's write-behind create with a leased inode number), the lease of
//! inode numbers, and the commit of content, which may carry the create of
//! its file. Kept apart from meta_service.rs for size.

use crate::convert::{attr, cred, time};
use crate::error::MasterError;
use crate::meta_service::{ok, v, MetaService, Res};
use crate::types::{BehindCreate, ExtentRec, Op, Reply, Splice};
use tessera_proto::pb::*;

/// The write-behind create a request describes (its inode number is set),
/// which must say when the mount acknowledged it.
fn behind(r: &CreateRequest) -> Result<Option<BehindCreate>, MasterError> {
    if r.ino == 0 {
        return Ok(None);
    }
    let at = r.at.as_ref().ok_or_else(|| MasterError::fs(libc::EINVAL, "a write-behind create needs its time"))?;
    Ok(Some(BehindCreate {
        cred: cred(r.cred.clone()),
        parent: r.parent,
        name: v(&r.name),
        mode: r.mode,
        ino: r.ino,
        at: time(at),
        exclusive: r.exclusive,
    }))
}

fn rec(e: Extent) -> ExtentRec {
    ExtentRec { id: e.id.to_vec(), offset: e.offset, len: e.len }
}

impl MetaService {
    pub(crate) async fn create_file(&self, r: CreateRequest) -> Res<CreateReply> {
        let op = match behind(&r)? {
            Some(b) => Op::CreateBehind(b),
            None => Op::Create {
                parent: r.parent,
                name: v(&r.name),
                mode: r.mode,
                kind: r.kind,
                rdev: r.rdev,
                exclusive: r.exclusive,
                truncate: r.truncate,
            },
        };
        let token = self.leases.begin_read();
        match self.write_once(cred(r.cred), op, r.request_id.clone()).await? {
            Reply::Created { inode, created } => {
                // The creator's kernel keeps the new file's attributes: it
                // is registered on them as if it had read them.
                let lease = self.grant(&[inode.ino], token);
                ok(CreateReply { attr: Some(attr(&inode)), created, parent: self.post_op_attr(r.parent), lease })
            }
            _ => Err(MasterError::internal("create returned no inode").into()),
        }
    }

    pub(crate) async fn lease(&self, r: LeaseInosRequest) -> Res<LeaseInosReply> {
        match self.write_once(crate::types::Cred::root(), Op::LeaseInos { count: r.count }, r.request_id).await? {
            Reply::Inos(first) => ok(LeaseInosReply { first, count: r.count }),
            _ => Err(MasterError::internal("lease returned no inode numbers").into()),
        }
    }

    pub(crate) async fn commit_content(&self, r: CommitRequest) -> Res<AttrReply> {
        let create = match r.create.as_ref().map(behind).transpose()? {
            Some(None) => {
                return Err(MasterError::fs(libc::EINVAL, "a commit carries only a write-behind create").into())
            }
            c => c.flatten(),
        };
        let parent = create.as_ref().map(|c| c.parent);
        let extents = r.extents.into_iter().map(rec).collect();
        let splice = r.splice.then(|| Splice {
            keep: r.keep,
            patches: r.patches.into_iter().map(|p| (p.offset, p.extents.into_iter().map(rec).collect())).collect(),
        });
        let op = Op::Commit {
            ino: r.ino,
            extents,
            size: r.size,
            gc_epoch: r.gc_epoch,
            mtime: r.mtime.as_ref().map(time),
            splice,
            create,
            unsealed: r.unsealed,
            attrs: r.attrs.map(|a| {
                Box::new(crate::types::PendingAttrs {
                    cred: cred(a.cred),
                    mode: a.mode.map(|m| m & 0o7777),
                    uid: a.uid,
                    gid: a.gid,
                    atime: Self::time_set_of(a.atime, a.atime_now),
                    mtime: Self::time_set_of(a.mtime, a.mtime_now),
                })
            }),
        };
        let reply = Self::attr_reply(self.write_once(cred(r.cred), op, r.request_id.clone()).await?);
        // A new file's directory changed too (post-op attributes).
        match parent {
            Some(p) => self.with_parent(reply, p),
            None => reply,
        }
    }
}
