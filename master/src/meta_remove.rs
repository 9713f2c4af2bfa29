//! The metadata RPCs that remove names (unlink, a mount's batch of
//! write-behind unlinks, rmdir, rename over a target), kept apart from
//! meta_service.rs for size. Each reports which of the caller's open files
//! it left without a name (orphans, freed by ReleaseOrphans).

use crate::convert::cred;
use crate::error::MasterError;
use crate::meta_service::{ok, v, MetaService, Res};
use crate::types::{Cred, Op, Reply, UnlinkItem};
use tessera_proto::pb::*;

/// The orphans kept for the caller's own open files (`open`); the others
/// were kept for other mounts, which hear of them with the revoke.
fn orphans_of(r: Reply, open: &[u64]) -> Vec<u64> {
    match r {
        Reply::Orphaned(o) => mine(o, open),
        _ => Vec::new(),
    }
}

fn mine(orphaned: Vec<u64>, open: &[u64]) -> Vec<u64> {
    orphaned.into_iter().filter(|i| open.contains(i)).collect()
}

impl MetaService {
    pub(crate) async fn remove_name(&self, r: UnlinkRequest, dir: bool) -> Res<DirChangeReply> {
        let op = if dir {
            Op::Rmdir { parent: r.parent, name: v(&r.name) }
        } else {
            Op::Unlink { parent: r.parent, name: v(&r.name), open: r.open.clone() }
        };
        let reply = self.write_once(cred(r.cred), op, r.request_id).await?;
        ok(DirChangeReply {
            parent: self.post_op_attr(r.parent),
            new_parent: None,
            orphaned: orphans_of(reply, &r.open),
        })
    }

    pub(crate) async fn remove_names(&self, r: UnlinkManyRequest) -> Res<UnlinkManyReply> {
        let items: Vec<UnlinkItem> = r
            .unlinks
            .iter()
            .map(|u| UnlinkItem { cred: cred(u.cred.clone()), parent: u.parent, name: v(&u.name), ino: u.ino })
            .collect();
        let mut dirs: Vec<u64> = items.iter().map(|i| i.parent).collect();
        dirs.sort_unstable();
        dirs.dedup();
        let (outcomes, orphaned) =
            match self.write_once(Cred::root(), Op::UnlinkMany { items, open: r.open.clone() }, r.request_id).await? {
                Reply::Outcomes(o, orphaned) => (o, mine(orphaned, &r.open)),
                _ => return Err(MasterError::internal("unlink_many returned no outcomes").into()),
            };
        let outcomes = outcomes
            .into_iter()
            .map(|o| match o {
                None => UnlinkOutcome { errno: 0, message: String::new() },
                Some(e) => UnlinkOutcome { errno: e.errno, message: e.msg },
            })
            .collect();
        let dirs = dirs.into_iter().filter_map(|d| self.post_op_attr(d)).collect();
        ok(UnlinkManyReply { outcomes, dirs, orphaned })
    }

    pub(crate) async fn rename_name(&self, r: RenameRequest) -> Res<DirChangeReply> {
        let op = Op::Rename {
            parent: r.parent,
            name: v(&r.name),
            new_parent: r.new_parent,
            new_name: v(&r.new_name),
            flags: r.flags,
            open: r.open.clone(),
        };
        // Sent behind by a mount: applied only as it saw the names.
        let op = match (r.seen, op) {
            (true, Op::Rename { parent, name, new_parent, new_name, flags, open }) => {
                Op::RenameSeen { parent, name, new_parent, new_name, flags, open, ino: r.ino, replaces: r.replaces }
            }
            (_, op) => op,
        };
        let reply = self.write_once(cred(r.cred), op, r.request_id).await?;
        ok(DirChangeReply {
            parent: self.post_op_attr(r.parent),
            new_parent: self.post_op_attr(r.new_parent),
            orphaned: orphans_of(reply, &r.open),
        })
    }
}
