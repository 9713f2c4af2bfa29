//! The metadata RPCs that make regular files: create (as asked, or a
//! mount's write-behind create with a leased inode number), the lease of
//! inode numbers, and the commit of content, which may carry the create of
//! its file. Kept apart from meta_service.rs for size.

use crate::convert::{attr, cred, time};
use crate::meta_service::{ok, v, MetaService, Res};
use crate::types::{BehindCreate, ExtentRec, Op, Reply, Splice};
use tessera_proto::pb::*;
use tonic::Status;

/// The write-behind create a request describes (its inode number is set).
fn behind(r: &CreateRequest) -> Option<BehindCreate> {
    (r.ino != 0).then(|| BehindCreate {
        cred: cred(r.cred.clone()),
        parent: r.parent,
        name: v(&r.name),
        mode: r.mode,
        ino: r.ino,
        at: r.at.as_ref().map(time).unwrap_or((0, 0)),
    })
}

fn rec(e: Extent) -> ExtentRec {
    ExtentRec { id: e.id.to_vec(), offset: e.offset, len: e.len }
}

impl MetaService {
    pub(crate) async fn create_file(&self, r: CreateRequest) -> Res<CreateReply> {
        let op = match behind(&r) {
            Some(_) if r.at.is_none() => return Err(Status::invalid_argument("a write-behind create needs its time")),
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
        match self.write_once(cred(r.cred), op, r.request_id.clone()).await? {
            Reply::Created { inode, created } => {
                ok(CreateReply { attr: Some(attr(&inode)), created, parent: self.post_op_attr(r.parent) })
            }
            _ => Err(Status::internal("create returned no inode")),
        }
    }

    pub(crate) async fn lease(&self, r: LeaseInosRequest) -> Res<LeaseInosReply> {
        match self.write_once(crate::types::Cred::root(), Op::LeaseInos { count: r.count }, r.request_id).await? {
            Reply::Inos(first) => ok(LeaseInosReply { first, count: r.count }),
            _ => Err(Status::internal("lease returned no inode numbers")),
        }
    }

    pub(crate) async fn commit_content(&self, r: CommitRequest) -> Res<AttrReply> {
        let create = match r.create.as_ref() {
            Some(c) if c.ino == 0 || c.at.is_none() => {
                return Err(Status::invalid_argument("a commit carries only a write-behind create"))
            }
            Some(c) => behind(c),
            None => None,
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
        };
        let reply = Self::attr_reply(self.write_once(cred(r.cred), op, r.request_id.clone()).await?)?;
        match parent {
            Some(p) => {
                let mut reply = reply;
                reply.get_mut().parent = self.post_op_attr(p);
                Ok(reply)
            }
            None => Ok(reply),
        }
    }
}
