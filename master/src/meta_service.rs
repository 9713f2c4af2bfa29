//! The client-facing metadata API. Writes become Raft commands (only the
//! leader accepts them; a follower answers with the leader's address).
//! Reads first confirm leadership with a read-index round (linearizable),
//! then read the applied state from RocksDB.

use crate::cluster::Cluster;
use crate::convert::{attr, cred, time};
use crate::error::MasterError;
use crate::fsm::model::KIND_DIR;
use crate::fsm::read;
use crate::raft::node_addr::service_of;
use crate::store::state_machine::Raft;
use crate::types::{Command, Cred, Op, Reply, TimeSet};
use bytes::Bytes;
use openraft::async_runtime::WatchReceiver;
use openraft::LinearizerOption;
use rocksdb::DB;
use std::sync::Arc;
use std::time::Duration;
use tessera_proto::pb::meta_server::Meta;
use tessera_proto::pb::*;
use tessera_proto::ChunkId;
use tessera_rpc::chunk_token;
use tonic::{Request, Response, Status};

/// A mount's Watch stream of lease events (meta_watch.rs serves it).
pub type WatchStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<tessera_proto::pb::WatchEvent, Status>> + Send>>;

pub struct MetaService {
    pub raft: Raft,
    pub db: Arc<DB>,
    pub cluster: Arc<Cluster>,
    /// How long a mount's locks outlive its last renewal (fsm/locks.rs).
    pub lock_lease: Duration,
    pub repair: Arc<parking_lot::Mutex<RepairStatus>>,
    pub node_id: u64,
    pub addr: String,
    /// This master's Raft listener as its peers reach it (None: on `addr`).
    pub raft_addr: Option<String>,
    pub min_replicas: u32,
    /// How long a chunk access token it grants is good for.
    pub chunk_token_ttl_s: u64,
    /// Mounts' cache leases (leases.rs): changes revoke them.
    pub leases: Arc<crate::leases::Leases>,
    /// Refuses changes that add to the namespace when the disk is nearly full.
    pub disk: Arc<crate::disk_guard::DiskGuard>,
}

const RAFT_TIMEOUT: Duration = Duration::from_secs(4);

pub(crate) type Res<T> = Result<Response<T>, Status>;

pub(crate) fn ok<T>(t: T) -> Res<T> {
    Ok(Response::new(t))
}

pub(crate) fn v(b: &Bytes) -> Vec<u8> {
    b.to_vec()
}

impl MetaService {
    pub(crate) fn leader_addr(&self) -> Option<String> {
        let m = self.raft.metrics().borrow_watched().clone();
        let leader = m.current_leader?;
        let addr = m.membership_config.membership().nodes().find(|(id, _)| **id == leader).map(|(_, n)| service_of(n));
        addr
    }

    fn forward<E: std::fmt::Display>(&self, e: E, fwd: Option<String>) -> MasterError {
        match fwd {
            Some(addr) => MasterError::NotLeader { leader: Some(addr) },
            None => MasterError::Unavailable(format!("raft: {e}")),
        }
    }

    /// Proposes a command and waits until it is applied.
    pub(crate) async fn write(&self, cred: Cred, op: Op) -> Result<Reply, MasterError> {
        self.write_once(cred, op, String::new()).await
    }

    /// Like `write`, deduplicated by the client's request id.
    pub(crate) async fn write_once(&self, cred: Cred, op: Op, request_id: String) -> Result<Reply, MasterError> {
        if op.adds() && self.disk.refuses() {
            let msg = self.disk.refusal();
            tracing::debug!("{msg}");
            return Err(MasterError::fs(libc::ENOSPC, msg));
        }
        let touched = crate::lease_scope::touched(&self.db, &op);
        // A directory another mount holds exclusively may have its unlinks
        // still on their way: they land first.
        let origin = crate::lease_scope::current_session();
        let keys: Vec<u64> = touched.inos.iter().copied().chain(touched.entries.iter().map(|(p, _)| *p)).collect();
        // Marked in flight before the recall: a read that makes its caller
        // an exclusive holder after the recall looked sees the change and
        // is not granted (see `Leases::grant_core`).
        let change = (!touched.is_empty()).then(|| self.leases.begin_change(&keys));
        self.leases.recall(&keys, origin.as_deref()).await;
        self.leases.hold(origin.as_deref(), &keys);
        // A file another mount holds may be open there: when this removes
        // its last name it is kept as an orphan until that mount's close.
        let mut op = op;
        let mut own_open = Vec::new();
        if let Op::Unlink { open, .. }
        | Op::UnlinkMany { open, .. }
        | Op::Rename { open, .. }
        | Op::RenameSeen { open, .. } = &mut op
        {
            own_open = open.clone();
            open.extend(self.leases.held_by_others(&touched.inos, origin.as_deref()));
        }
        // An orphan kept for several mounts is freed at the last one's close.
        if let Op::ReleaseOrphans { inos } = &mut op {
            *inos = self.leases.released(inos, origin.as_deref());
            if inos.is_empty() {
                return Ok(Reply::None);
            }
        }
        let now = tessera_proto::time::now();
        let cmd = Command { cred, now: (now.sec, now.nsec), op, request_id };
        cmd.check_size()?;
        let r = tokio::time::timeout(RAFT_TIMEOUT, self.raft.client_write(cmd)).await;
        // Applied, refused, or unknown (timed out): other mounts drop what
        // it may have changed before the caller hears of it.
        if change.is_some() {
            let orphaned: &[u64] = match &r {
                Ok(Ok(resp)) => match &resp.data {
                    Ok(Reply::Orphaned(o)) | Ok(Reply::Outcomes(_, o)) => o,
                    _ => &[],
                },
                _ => &[],
            };
            self.leases.kept_orphans(orphaned, origin.as_deref(), &own_open);
            self.leases.revoke_orphaning(&touched, origin.as_deref(), orphaned).await;
        }
        drop(change);
        let r = r.map_err(|_| MasterError::Unavailable("raft write timed out (no quorum?)".into()))?;
        match r {
            Ok(resp) => Ok(resp.data?),
            Err(e) => {
                let fwd = e.forward_to_leader().map(|f| f.leader_node.as_ref().map(service_of));
                match fwd {
                    Some(leader) => Err(MasterError::NotLeader { leader }),
                    None => Err(MasterError::Unavailable(format!("raft: {e}"))),
                }
            }
        }
    }

    /// Linearizable read barrier: this node is leader and has applied
    /// everything committed before the read began. A quorum acknowledgement
    /// younger than the leader lease is reused (no network round trip); an
    /// older one triggers a heartbeat round first, as read-index does.
    pub(crate) async fn barrier(&self) -> Result<(), MasterError> {
        let opt = LinearizerOption::new(None, true);
        let r = tokio::time::timeout(RAFT_TIMEOUT, self.raft.ensure_linearizable(opt))
            .await
            .map_err(|_| MasterError::Unavailable("read barrier timed out (no quorum?)".into()))?;
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                let fwd = e.forward_to_leader().map(|f| f.leader_node.as_ref().map(service_of));
                match fwd {
                    Some(leader) => Err(MasterError::NotLeader { leader }),
                    None => Err(self.forward(e, self.leader_addr())),
                }
            }
        }
    }

    /// Registers what a read returned under the caller's cache lease;
    /// true if the caller may keep it until revoked.
    pub(crate) fn grant(&self, inos: &[u64], token: crate::leases::ReadToken) -> bool {
        self.grant_in(inos, None, token).lease
    }

    /// `grant` for a read of directory `dir` (see `Leases::grant_in`).
    fn grant_in(&self, inos: &[u64], dir: Option<u64>, token: crate::leases::ReadToken) -> crate::leases::Grant {
        let session = crate::lease_scope::current_session();
        self.leases.grant_in(session.as_deref(), inos, dir, token)
    }

    /// Before a read of `keys`: another session's exclusive hold on them
    /// is recalled (its queued unlinks land first). Returns whether
    /// anything was.
    async fn recall_for_read(&self, keys: &[u64]) -> bool {
        let session = crate::lease_scope::current_session();
        self.leases.recall(keys, session.as_deref()).await
    }

    /// A RocksDB integer property summed over the column families (for
    /// per-family figures: memtables, table readers).
    pub(crate) fn db_property(&self, name: &str) -> u64 {
        [crate::store::CF_LOGS, crate::store::CF_RAFT_META, crate::fsm::CF_SM, crate::fsm::CF_SM_META]
            .iter()
            .filter_map(|c| self.db.cf_handle(c))
            .filter_map(|cf| self.db.property_int_value_cf(cf, name).ok().flatten())
            .sum()
    }

    /// The barrier for reads: skipped when the client opted into a stale
    /// read (any master, even one without a quorum, answers from what it
    /// has applied), kept otherwise.
    pub(crate) async fn read_barrier(&self, md: &tonic::metadata::MetadataMap) -> Result<(), MasterError> {
        let stale = md.get(tessera_proto::status::READ_MODE_HEADER).is_some_and(|v| v == "stale");
        if stale && self.raft.metrics().borrow_watched().last_applied.is_some() {
            return Ok(());
        }
        self.barrier().await
    }

    pub(crate) fn membership_err(
        &self,
        e: openraft::error::RaftError<
            crate::types::TypeConfig,
            openraft::error::ClientWriteError<crate::types::TypeConfig>,
        >,
    ) -> MasterError {
        match e.forward_to_leader() {
            Some(f) => MasterError::NotLeader { leader: f.leader_node.as_ref().map(service_of) },
            None => MasterError::Refused(format!("membership change: {e}")),
        }
    }

    /// Soft state that lives on the leader only (locks, heartbeats).
    pub(crate) fn leader_only(&self) -> Result<(), MasterError> {
        if self.raft.is_leader() {
            Ok(())
        } else {
            Err(MasterError::NotLeader { leader: self.leader_addr() })
        }
    }

    /// A directory's attributes right after this leader applied a change
    /// to it (and perhaps later ones): what a stat would now return.
    pub(crate) fn post_op_attr(&self, dir: u64) -> Option<tessera_proto::pb::Attr> {
        read::inode(&self.db, dir).ok().map(|i| attr(&i))
    }

    pub(crate) fn with_parent(&self, r: Res<AttrReply>, parent: u64) -> Res<AttrReply> {
        let mut r = r?;
        r.get_mut().parent = self.post_op_attr(parent);
        Ok(r)
    }

    pub(crate) fn attr_reply(r: Reply) -> Res<AttrReply> {
        match r {
            Reply::Attr(i) | Reply::Created { inode: i, .. } => {
                ok(AttrReply { attr: Some(attr(&i)), lease: false, ..Default::default() })
            }
            _ => Err(MasterError::internal("command returned no attributes").into()),
        }
    }

    pub(crate) fn time_set_of(t: Option<Timespec>, now: bool) -> Option<TimeSet> {
        Self::time_set(t, now)
    }

    fn time_set(t: Option<Timespec>, now: bool) -> Option<TimeSet> {
        if now {
            Some(TimeSet::Now)
        } else {
            t.as_ref().map(|t| TimeSet::At(time(t)))
        }
    }
}

#[tonic::async_trait]
impl Meta for MetaService {
    #[tracing::instrument(skip_all, fields(parent = req.get_ref().parent))]
    async fn lookup(&self, req: Request<LookupRequest>) -> Res<AttrReply> {
        self.read_barrier(req.metadata()).await?;
        let r = req.into_inner();
        self.recall_for_read(&[r.parent]).await;
        let mut token = self.leases.begin_read();
        let mut i = read::lookup(&self.db, &cred(r.cred.clone()), r.parent, &r.name)?;
        // A directory another mount holds may have attribute changes on
        // their way (its owner's mode and times, set behind): they land
        // before its attributes are answered.
        if self.recall_for_read(&[i.ino]).await {
            token = self.leases.begin_read();
            i = read::lookup(&self.db, &cred(r.cred), r.parent, &r.name)?;
        }
        let session = crate::lease_scope::current_session();
        let g = self.leases.grant_lookup(session.as_deref(), r.parent, i.ino, token);
        ok(AttrReply {
            attr: Some(attr(&i)),
            parent: None,
            lease: g.lease,
            exclusive: g.exclusive,
            attr_lease: g.attrs,
        })
    }

    #[tracing::instrument(skip_all, fields(ino = req.get_ref().ino))]
    async fn get_attr(&self, req: Request<GetAttrRequest>) -> Res<AttrReply> {
        if !req.get_ref().stale_ok {
            self.read_barrier(req.metadata()).await?;
            self.recall_for_read(&[req.get_ref().ino]).await;
        }
        let token = self.leases.begin_read();
        let i = read::inode(&self.db, req.get_ref().ino)?;
        let lease = !req.get_ref().stale_ok && self.grant(&[i.ino], token);
        ok(AttrReply { attr: Some(attr(&i)), lease, ..Default::default() })
    }

    #[tracing::instrument(skip_all, fields(ino = req.get_ref().ino))]
    async fn set_attr(&self, req: Request<SetAttrRequest>) -> Res<AttrReply> {
        let r = req.into_inner();
        if r.read_access {
            self.write_once(cred(r.cred), Op::TouchAtimes { inos: vec![r.ino] }, r.request_id.clone()).await?;
            let i = read::inode(&self.db, r.ino)?;
            return ok(AttrReply { attr: Some(attr(&i)), lease: false, ..Default::default() });
        }
        let op = Op::SetAttr {
            ino: r.ino,
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            size: r.size,
            atime: Self::time_set(r.atime, r.atime_now),
            mtime: Self::time_set(r.mtime, r.mtime_now),
            by_handle: r.by_handle && r.size.is_some(),
        };
        Self::attr_reply(self.write_once(cred(r.cred), op, r.request_id.clone()).await?)
    }

    #[tracing::instrument(skip_all, fields(parent = req.get_ref().parent))]
    async fn mkdir(&self, req: Request<MkdirRequest>) -> Res<AttrReply> {
        let r = req.into_inner();
        let token = self.leases.begin_read();
        let reply = self
            .write_once(
                cred(r.cred),
                Op::Mkdir { parent: r.parent, name: v(&r.name), mode: r.mode },
                r.request_id.clone(),
            )
            .await?;
        let mut out = self.with_parent(Self::attr_reply(reply), r.parent)?;
        // The maker holds the new directory, empty, exclusively if no
        // other session found it since (as after a listing of it).
        if let Some(ino) = out.get_ref().attr.as_ref().map(|a| a.ino) {
            let g = self.grant_in(&[ino], Some(ino), token);
            let o = out.get_mut();
            (o.lease, o.exclusive, o.attr_lease) = (g.lease, g.exclusive, g.attrs);
        }
        Ok(out)
    }

    #[tracing::instrument(skip_all, fields(parent = req.get_ref().parent))]
    async fn create(&self, req: Request<CreateRequest>) -> Res<CreateReply> {
        self.create_file(req.into_inner()).await
    }

    #[tracing::instrument(skip_all)]
    async fn lease_inos(&self, req: Request<LeaseInosRequest>) -> Res<LeaseInosReply> {
        self.lease(req.into_inner()).await
    }

    #[tracing::instrument(skip_all)]
    async fn symlink(&self, req: Request<SymlinkRequest>) -> Res<AttrReply> {
        let r = req.into_inner();
        let reply = self
            .write_once(
                cred(r.cred),
                Op::Symlink { parent: r.parent, name: v(&r.name), target: v(&r.target) },
                r.request_id.clone(),
            )
            .await?;
        self.with_parent(Self::attr_reply(reply), r.parent)
    }

    #[tracing::instrument(skip_all)]
    async fn link(&self, req: Request<LinkRequest>) -> Res<AttrReply> {
        let r = req.into_inner();
        let reply = self
            .write_once(
                cred(r.cred),
                Op::Link { ino: r.ino, new_parent: r.new_parent, new_name: v(&r.new_name) },
                r.request_id.clone(),
            )
            .await?;
        self.with_parent(Self::attr_reply(reply), r.new_parent)
    }

    #[tracing::instrument(skip_all)]
    async fn unlink(&self, req: Request<UnlinkRequest>) -> Res<DirChangeReply> {
        self.remove_name(req.into_inner(), false).await
    }

    #[tracing::instrument(skip_all, fields(n = req.get_ref().unlinks.len()))]
    async fn unlink_many(&self, req: Request<UnlinkManyRequest>) -> Res<UnlinkManyReply> {
        self.remove_names(req.into_inner()).await
    }

    #[tracing::instrument(skip_all)]
    async fn rmdir(&self, req: Request<UnlinkRequest>) -> Res<DirChangeReply> {
        self.remove_name(req.into_inner(), true).await
    }

    #[tracing::instrument(skip_all)]
    async fn rename(&self, req: Request<RenameRequest>) -> Res<DirChangeReply> {
        self.rename_name(req.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(n = req.get_ref().inos.len()))]
    async fn release_orphans(&self, req: Request<OrphansRequest>) -> Res<Empty> {
        let r = req.into_inner();
        self.write_once(Cred::root(), Op::ReleaseOrphans { inos: r.inos }, r.request_id).await?;
        ok(Empty {})
    }

    #[tracing::instrument(skip_all, fields(n = req.get_ref().inos.len()))]
    async fn renew_orphans(&self, req: Request<OrphansRequest>) -> Res<Empty> {
        let r = req.into_inner();
        self.write_once(Cred::root(), Op::RenewOrphans { inos: r.inos }, r.request_id).await?;
        ok(Empty {})
    }

    #[tracing::instrument(skip_all, fields(ino = req.get_ref().ino))]
    async fn read_dir(&self, req: Request<ReadDirRequest>) -> Res<ReadDirReply> {
        self.read_barrier(req.metadata()).await?;
        let r = req.into_inner();
        let limit = if r.limit == 0 { 1000 } else { r.limit.min(10_000) } as usize;
        self.recall_for_read(&[r.ino]).await;
        let mut token = self.leases.begin_read();
        let mut page = read::readdir(&self.db, &cred(r.cred.clone()), r.ino, &r.after, limit, r.plus)?;
        // Attributes of directories another mount holds (see `lookup`).
        let dirs: Vec<u64> =
            page.entries.iter().filter(|(_, d, _)| d.kind == KIND_DIR).map(|(_, d, _)| d.ino).collect();
        if r.plus && self.recall_for_read(&dirs).await {
            token = self.leases.begin_read();
            page = read::readdir(&self.db, &cred(r.cred), r.ino, &r.after, limit, r.plus)?;
        }
        let inos: Vec<u64> = std::iter::once(r.ino).chain(page.entries.iter().map(|(_, d, _)| d.ino)).collect();
        let g = self.grant_in(&inos, Some(r.ino), token);
        let entries = page
            .entries
            .into_iter()
            .map(|(name, d, a)| DirEntry {
                name: Bytes::from(name),
                ino: d.ino,
                kind: d.kind,
                attr: a.as_ref().map(attr),
            })
            .collect();
        ok(ReadDirReply { entries, more: page.more, lease: g.lease, exclusive: g.exclusive })
    }

    async fn read_link(&self, req: Request<ReadLinkRequest>) -> Res<ReadLinkReply> {
        self.read_barrier(req.metadata()).await?;
        let i = read::inode(&self.db, req.get_ref().ino)?;
        if i.kind != crate::fsm::model::KIND_SYMLINK {
            return Err(MasterError::fs(libc::EINVAL, "not a symlink").into());
        }
        ok(ReadLinkReply { target: Bytes::from(i.target) })
    }

    async fn set_xattr(&self, req: Request<SetXattrRequest>) -> Res<Empty> {
        let r = req.into_inner();
        self.write_once(
            cred(r.cred),
            Op::SetXattr { ino: r.ino, name: v(&r.name), value: v(&r.value), flags: r.flags },
            r.request_id.clone(),
        )
        .await?;
        ok(Empty {})
    }

    async fn get_xattr(&self, req: Request<GetXattrRequest>) -> Res<GetXattrReply> {
        self.read_barrier(req.metadata()).await?;
        let r = req.into_inner();
        let value = read::xattr_get(&self.db, &cred(r.cred), r.ino, &r.name)?;
        ok(GetXattrReply { value: Bytes::from(value) })
    }

    async fn list_xattr(&self, req: Request<ListXattrRequest>) -> Res<ListXattrReply> {
        self.read_barrier(req.metadata()).await?;
        let names = read::xattr_list(&self.db, &cred(req.get_ref().cred.clone()), req.get_ref().ino)?;
        ok(ListXattrReply { names: names.into_iter().map(Bytes::from).collect() })
    }

    async fn remove_xattr(&self, req: Request<RemoveXattrRequest>) -> Res<Empty> {
        let r = req.into_inner();
        self.write_once(cred(r.cred), Op::RemoveXattr { ino: r.ino, name: v(&r.name) }, r.request_id.clone()).await?;
        ok(Empty {})
    }

    #[tracing::instrument(skip_all, fields(ino = req.get_ref().ino))]
    async fn get_extents(&self, req: Request<GetExtentsRequest>) -> Res<GetExtentsReply> {
        self.read_barrier(req.metadata()).await?;
        let ino = req.get_ref().ino;
        let token = self.leases.begin_read();
        let i = read::inode(&self.db, ino)?;
        read::may_read_content(&i, &cred(req.get_ref().cred.clone()))?;
        let ext = read::extents(&self.db, ino)?;
        let lease = self.grant(&[ino], token);
        // A read token per chunk, for this caller (chunk_token.rs).
        let holder = tessera_rpc::authz::peer_of(&req).map(|p| p.serial.clone());
        let token = |id: &[u8]| match (&holder, ChunkId::from_slice(id)) {
            (Some(h), Ok(c)) => {
                chunk_token::mint(chunk_token::Access::Read, Some(&c), h, self.chunk_token_ttl_s).unwrap_or_default()
            }
            _ => Bytes::new(),
        };
        let extents = ext
            .into_iter()
            .map(|e| Extent { token: token(&e.id), id: Bytes::from(e.id), len: e.len, offset: e.offset })
            .collect();
        ok(GetExtentsReply { attr: Some(attr(&i)), extents, lease })
    }

    #[tracing::instrument(skip_all, fields(ino = req.get_ref().ino, size = req.get_ref().size))]
    async fn commit(&self, req: Request<CommitRequest>) -> Res<AttrReply> {
        self.commit_content(req.into_inner()).await
    }

    async fn stat_fs(&self, req: Request<Empty>) -> Res<StatFsReply> {
        self.read_barrier(req.metadata()).await?;
        let c = read::counters(&self.db)?;
        // Capacity of the servers on the ring, from the registry (durable);
        // free and used from their latest heartbeats, when known.
        let (mut capacity, mut free, mut used) = (0u64, 0u64, 0u64);
        for s in read::servers(&self.db)? {
            if s.state != crate::fsm::model::ServerState::Alive {
                continue;
            }
            let live = self.cluster.with(&s.id, |l| (l.capacity, l.free, l.used));
            let (cap, f, u) = live.unwrap_or((s.capacity, s.capacity, 0));
            capacity += cap;
            free += f;
            used += u;
        }
        ok(StatFsReply {
            capacity_bytes: capacity,
            free_bytes: free,
            used_bytes: used,
            files: c.inodes,
            chunks: c.chunks,
        })
    }

    async fn get_ring(&self, req: Request<Empty>) -> Res<RingReply> {
        self.barrier().await?;
        // A new cluster's leader makes the first token key within a second
        // of its election: a writer asking before then waits for it rather
        // than leave without a write token (and be refused by every server).
        let deadline = tokio::time::Instant::now() + RAFT_TIMEOUT;
        while chunk_token::keys().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let servers = self.ring_servers()?;
        let write_token = tessera_rpc::authz::peer_of(&req)
            .and_then(|p| chunk_token::mint(chunk_token::Access::Write, None, &p.serial, self.chunk_token_ttl_s))
            .unwrap_or_default();
        ok(RingReply {
            servers,
            replication: tessera_proto::REPLICATION as u32,
            version: 0,
            min_replicas: self.min_replicas,
            write_token,
        })
    }

    async fn chunk_locations(&self, req: Request<ChunkLocationsRequest>) -> Res<ChunkLocationsReply> {
        let mut locations = Vec::new();
        for raw in &req.get_ref().ids {
            let id = ChunkId::from_slice(raw).map_err(|e| MasterError::fs(libc::EINVAL, e.to_string()))?;
            locations.push(ChunkLocation { id: raw.clone(), addrs: self.cluster.locations(&id) });
        }
        ok(ChunkLocationsReply { locations })
    }

    async fn report_bad_chunk(&self, req: Request<ReportBadChunkRequest>) -> Res<Empty> {
        let r = req.get_ref();
        let id = ChunkId::from_slice(&r.id).map(|c| c.to_hex()).unwrap_or_else(|_| "?".into());
        tracing::warn!(chunk = %id, server = %r.server_addr, reason = %r.reason, "client reported a corrupt replica");
        // Have the server re-hash it now: a bad copy is quarantined there and
        // the healer re-replicates from a good one.
        let (addr, raw) = (r.server_addr.clone(), r.id.clone());
        tokio::spawn(async move {
            if let Ok(ch) =
                tessera_rpc::pool().channel(&addr, tessera_rpc::Profile::Control, tessera_rpc::Role::Chunkserver)
            {
                let mut c = tessera_proto::pb::chunk_client::ChunkClient::new(ch);
                let _ = tokio::time::timeout(Duration::from_secs(30), c.verify(VerifyRequest { ids: vec![raw] })).await;
            }
        });
        ok(Empty {})
    }

    #[tracing::instrument(skip_all, fields(ino = req.get_ref().ino))]
    async fn set_lock(&self, req: Request<LockRequest>) -> Res<LockReply> {
        self.set_lock_rpc(req.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(ino = req.get_ref().ino))]
    async fn get_lock(&self, req: Request<LockRequest>) -> Res<LockReply> {
        self.read_barrier(req.metadata()).await?;
        self.get_lock_rpc(req.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(ino = req.get_ref().ino))]
    async fn return_locks(&self, req: Request<ReturnLocksRequest>) -> Res<Empty> {
        self.return_locks_rpc(req.into_inner()).await
    }

    #[tracing::instrument(skip_all, fields(n = req.get_ref().inos.len()))]
    async fn touch_atimes(&self, req: Request<TouchAtimesRequest>) -> Res<Empty> {
        self.barrier().await?;
        let r = req.into_inner();
        let now = tessera_proto::time::now();
        // Only files whose atime is due make a log entry; usually none do
        // on a second read.
        let inos: Vec<u64> = r
            .inos
            .into_iter()
            .filter(|ino| {
                read::inode(&self.db, *ino).is_ok_and(|i| crate::fsm::model::relatime_due(&i, (now.sec, now.nsec)))
            })
            .collect();
        if !inos.is_empty() {
            self.write_once(Cred::root(), Op::TouchAtimes { inos }, r.request_id).await?;
        }
        ok(Empty {})
    }

    async fn epoch(&self, _req: Request<Empty>) -> Res<EpochReply> {
        self.barrier().await?;
        let m = self.raft.metrics().borrow_watched().clone();
        ok(EpochReply { epoch: m.last_applied.map(|l| l.index()).unwrap_or(0) })
    }

    async fn release_locks(&self, req: Request<ReleaseLocksRequest>) -> Res<Empty> {
        let r = req.into_inner();
        self.write(Cred::root(), Op::ReleaseLocks { ino: r.ino, owner: r.owner }).await?;
        ok(Empty {})
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<tonic::Streaming<WatchRequest>>) -> Res<Self::WatchStream> {
        self.open_watch(req).await
    }

    async fn renew_lock_session(&self, req: Request<RenewLockSessionRequest>) -> Res<Empty> {
        let r = req.into_inner();
        if r.session.is_empty() || r.session.len() > 256 {
            return Err(MasterError::fs(libc::EINVAL, "bad lock session").into());
        }
        let lease_ms = self.lock_lease.as_millis() as u64;
        self.write(Cred::root(), Op::RenewSession { session: r.session, lease_ms }).await?;
        ok(Empty {})
    }

    async fn node_status(&self, _req: Request<Empty>) -> Res<NodeStatusReply> {
        ok(self.status_of_node())
    }
}
