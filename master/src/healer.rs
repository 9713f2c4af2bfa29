//! The leader's maintenance loop: chunkserver liveness on the ring,
//! re-replication, rebalancing, drain, and garbage collection.
//!
//! Each pass compares, for every referenced chunk, the owners the ring
//! assigns (live ring: state Alive) with the holders the chunk reports show.
//! Missing owners get a copy ordered from a healthy holder (fewest live
//! copies first, a bounded number of copies per chunkserver at once). A holder
//! that is not an owner loses its copy only once all owners confirm theirs.

use crate::cluster::{Cluster, Holders};
use crate::fsm::model::{decode, key, ChunkRefs, ChunkServerRec, CollectRec, ServerState};
use crate::fsm::unsealed::{self, Verdict};
use crate::fsm::{cf, read, CF_SM};
use crate::store::state_machine::Raft;
use crate::types::{Command, Cred, Op, Reply};
use bytes::Bytes;
use parking_lot::Mutex;
use rocksdb::{Direction, IteratorMode, DB};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_proto::pb::chunk_client::ChunkClient;
use tessera_proto::pb::{DeleteChunksRequest, RepairStatus, ReplicateRequest};
use tessera_proto::ring::{Ring, RingNode};
use tessera_proto::{ChunkId, REPLICATION};

#[derive(Clone, Debug)]
pub struct HealerConfig {
    pub interval: Duration,
    /// Copies at once per chunkserver (as source or target).
    pub copies_per_server: usize,
    /// Unreferenced chunks are deleted after this long.
    pub gc_grace: Duration,
    /// Files unlinked while open are freed after this long even if their
    /// mount never released them.
    pub orphan_file_max_age: Duration,
    /// Unsealed commits (fsm/unsealed.rs) are settled after this long.
    pub unsealed_grace: Duration,
}

/// Collection records pruned per Raft entry (the leader repeats).
const PRUNE_BATCH: u32 = 10_000;

/// A chunk lacking owners: (live copies, id, bytes, holders, owners missing it).
type Wanted = (usize, ChunkId, u64, Vec<String>, Vec<String>);

/// A copy the last pass wanted but had no free slot for: (id, bytes,
/// holders, target).
type Pending = (ChunkId, u64, Vec<String>, String);

/// What became of a copy the healer tried to order.
#[derive(PartialEq)]
enum Ordered {
    /// Sent, or already in flight.
    Yes,
    /// The source or target has no free slot: try again when one frees.
    NoSlot,
    /// A server it needs is unknown now: the next pass decides again.
    Never,
}

pub struct Healer {
    pub raft: Raft,
    pub db: Arc<DB>,
    pub cluster: Arc<Cluster>,
    pub cfg: HealerConfig,
    pub status: Arc<Mutex<RepairStatus>>,
    /// Copies in flight, by server address (source and target both count).
    busy: Arc<Mutex<HashMap<String, usize>>>,
    /// Chunk ids with a copy in flight.
    copying: Arc<Mutex<HashSet<ChunkId>>>,
    copied: Arc<Mutex<Vec<(Instant, u64)>>>,
    orphans_seen: HashMap<ChunkId, Instant>,
    /// Woken when a copy finishes, so repair keeps every slot busy instead
    /// of waiting for the next pass.
    wake: Arc<tokio::sync::Notify>,
    /// Copies the last pass could not order yet, fewest copies first, and
    /// the servers' addresses then. A finished copy frees slots for these
    /// at once, without a scan of every chunk.
    backlog: std::collections::VecDeque<Pending>,
    addrs: HashMap<String, String>,
    /// When garbage and unsealed commits were last looked at, and the
    /// garbage pending and collection records then (reported until the
    /// next look).
    housekept: Option<(Instant, u64, u64)>,
    /// This leader's applied index as time went by: which index was
    /// applied long enough ago for collection records to be pruned to it.
    applied_at: std::collections::VecDeque<(u64, Instant)>,
}

fn now() -> (i64, u32) {
    let t = tessera_proto::time::now();
    (t.sec, t.nsec)
}

fn chunk_client(addr: &str) -> Option<ChunkClient<tonic::transport::Channel>> {
    let ch = tessera_rpc::pool().channel(addr, tessera_rpc::Profile::Control, tessera_rpc::Role::Chunkserver).ok()?;
    Some(ChunkClient::new(ch).max_decoding_message_size(tessera_proto::GRPC_MAX_MESSAGE))
}

impl Healer {
    pub fn new(
        raft: Raft,
        db: Arc<DB>,
        cluster: Arc<Cluster>,
        cfg: HealerConfig,
        status: Arc<Mutex<RepairStatus>>,
    ) -> Healer {
        Healer {
            raft,
            db,
            cluster,
            cfg,
            status,
            busy: Default::default(),
            copying: Default::default(),
            copied: Default::default(),
            orphans_seen: HashMap::new(),
            wake: Arc::new(tokio::sync::Notify::new()),
            backlog: Default::default(),
            addrs: HashMap::new(),
            housekept: None,
            applied_at: Default::default(),
        }
    }

    /// How often garbage and unsealed commits are looked at. Both wait out
    /// a grace of minutes, and their scans walk key ranges that deletions
    /// fill with tombstones: an eighth of the shorter grace is prompt
    /// enough, and spares the leader that walk on most repair passes.
    fn housekeeping_period(&self) -> Duration {
        (self.cfg.gc_grace.min(self.cfg.unsealed_grace) / 8).max(self.cfg.interval)
    }

    async fn propose(&self, op: Op) -> Option<Reply> {
        let cmd = Command { cred: Cred::root(), now: now(), op, request_id: String::new() };
        if let Err(e) = cmd.check_size() {
            tracing::error!(error = %e.msg, "healer command not proposed");
            return None;
        }
        match tokio::time::timeout(Duration::from_secs(5), self.raft.client_write(cmd)).await {
            Ok(Ok(r)) => r.data.ok(),
            _ => None,
        }
    }

    pub async fn run(mut self) {
        let mut was_leader = false;
        let mut leader_since = Instant::now();
        loop {
            let mut full_pass = true;
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.interval) => {}
                // A copy finished: its slots go to the backlog (batched a
                // little); once nothing is left or in flight, a pass
                // confirms the repair is done.
                _ = self.wake.notified() => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    full_pass = self.backlog.is_empty() && self.copying.lock().is_empty();
                }
                // A server was found dead before its timeout: repair now.
                _ = self.cluster.changed.notified() => {}
            }
            let leader = self.raft.is_leader();
            if leader && !was_leader {
                // What a previous term learned is stale (the liveness and
                // chunk reports were reset at the election, lib.rs).
                self.housekept = None;
                self.applied_at.clear();
                leader_since = Instant::now();
                self.orphans_seen.clear();
            }
            was_leader = leader;
            if !leader || leader_since.elapsed() < self.cluster.dead_after {
                self.backlog.clear();
                continue;
            }
            if !full_pass {
                self.order_backlog();
                continue;
            }
            let began = Instant::now();
            match self.pass().await {
                Ok(()) => tracing::debug!(took_ms = began.elapsed().as_millis() as u64, "healer pass"),
                Err(e) => tracing::warn!(error = %e, "healer pass failed"),
            }
        }
    }

    async fn pass(&mut self) -> crate::error::Result<()> {
        let servers = read::servers(&self.db)?;
        // 1. Liveness: silent servers leave the ring, returning ones rejoin.
        for s in &servers {
            let alive = self.cluster.is_alive(&s.id);
            let next = match (s.state, alive) {
                (ServerState::Alive, false) => Some(ServerState::Dead),
                (ServerState::Dead, true) => Some(ServerState::Alive),
                _ => None,
            };
            if let Some(state) = next {
                tracing::warn!(server = %s.id, from = s.state.name(), to = state.name(), "chunkserver state change");
                self.propose(Op::SetServerState { id: s.id.clone(), state }).await;
            }
        }
        let servers = read::servers(&self.db)?;
        let live: Vec<&ChunkServerRec> =
            servers.iter().filter(|s| self.cluster.is_alive(&s.id) && self.cluster.knows(&s.id)).collect();
        if servers
            .iter()
            .any(|s| s.state != ServerState::Dead && self.cluster.is_alive(&s.id) && !self.cluster.knows(&s.id))
        {
            return Ok(()); // wait for every live server's full report
        }
        let ring = live_ring(&servers, &self.cluster);
        self.addrs = servers.iter().map(|s| (s.id.clone(), s.addr.clone())).collect();
        let addr_of = &self.addrs;
        let mut holders = self.cluster.holders();

        // 2. Every referenced chunk: copies for missing owners, surplus removal.
        let mut st = RepairStatus::default();
        let mut wanted: Vec<Wanted> = Vec::new();
        let sm = cf(&self.db, CF_SM)?;
        for item in self.db.iterator_cf(sm, IteratorMode::From(&[key::CHUNK], Direction::Forward)) {
            let (k, v) = item?;
            if k.first() != Some(&key::CHUNK) {
                break;
            }
            let Ok(id) = ChunkId::from_slice(&k[1..]) else {
                continue;
            };
            let refs: ChunkRefs = decode(&v)?;
            st.chunks += 1;
            let have = holders.mark_referenced(&id);
            if have.is_empty() {
                st.missing += 1;
                continue;
            }
            st.below_goal += (have.len() < REPLICATION) as u64;
            let owners = ring.owners(&id, REPLICATION);
            let holds = |n: &RingNode| holders.index_of(&n.id).is_some_and(|i| have.contains(&i));
            let missing = owners.iter().filter(|n| !holds(n)).count();
            if missing > 0 {
                st.under_replicated += (have.len() < REPLICATION) as u64;
                st.bytes_to_copy += refs.len * missing as u64;
                let missing = owners.iter().filter(|n| !holds(n)).map(|n| n.id.clone()).collect();
                wanted.push((have.len(), id, refs.len, holders.names(&have), missing));
            } else {
                for &h in &have {
                    let name = holders.name(h);
                    if owners.iter().any(|n| n.id == name) {
                        continue;
                    }
                    st.surplus += 1;
                    if let Some(addr) = addr_of.get(name).cloned() {
                        self.delete_on(&addr, &[id]).await;
                        self.cluster.forget(name, &id);
                    }
                }
            }
        }
        // Fewest live copies first.
        wanted.sort_by_key(|w| w.0);
        self.backlog = wanted
            .into_iter()
            .flat_map(|(_, id, len, have, missing)| missing.into_iter().map(move |t| (id, len, have.clone(), t)))
            .collect();
        self.order_backlog();

        // 3. Draining servers that hold nothing referenced are drained.
        for s in servers.iter().filter(|s| s.state == ServerState::Draining && self.cluster.knows(&s.id)) {
            let holds = holders.holds_referenced(&s.id);
            if !holds {
                self.propose(Op::SetServerState { id: s.id.clone(), state: ServerState::Drained }).await;
            }
        }

        let due = self.housekept.is_none_or(|(at, ..)| at.elapsed() >= self.housekeeping_period());
        if due {
            // 4. Garbage: past grace, and orphans (uploaded, never committed).
            self.collect(&holders, &mut st).await?;
            // 5. Commits sent before their chunks were durable.
            let all_reported = servers.iter().all(|s| {
                matches!(s.state, ServerState::Drained) || (self.cluster.is_alive(&s.id) && self.cluster.knows(&s.id))
            });
            self.settle_unsealed(&holders, all_reported).await?;
            st.collection_records = self.finish_deletions(&live).await?;
            self.housekept = Some((Instant::now(), st.garbage_pending, st.collection_records));
        } else if let Some((_, pending, records)) = self.housekept {
            st.garbage_pending = pending;
            st.collection_records = records;
        }

        let copies_in_flight = self.copying.lock().len() as u64;
        let (total, rate) = self.copy_rate();
        st.copies_in_flight = copies_in_flight;
        st.copied_bytes_total = total;
        st.copy_rate_bps = rate;
        st.settled = st.under_replicated == 0
            && st.missing == 0
            && st.bytes_to_copy == 0
            && st.surplus == 0
            && copies_in_flight == 0;
        *self.status.lock() = st;
        Ok(())
    }

    fn copy_rate(&self) -> (u64, f64) {
        let mut c = self.copied.lock();
        let total = c.iter().map(|x| x.1).sum::<u64>();
        c.retain(|(t, _)| t.elapsed() < Duration::from_secs(10));
        let recent: u64 = c.iter().map(|x| x.1).sum();
        (total, recent as f64 / 10.0)
    }

    /// Orders what the backlog's free slots allow, in its order; keeps the
    /// copies still waiting for a slot.
    fn order_backlog(&mut self) {
        let backlog = std::mem::take(&mut self.backlog);
        for p in backlog {
            if self.order_copy(p.0, p.1, &p.2, &p.3) == Ordered::NoSlot {
                self.backlog.push_back(p);
            }
        }
    }

    /// Orders `source -> target` for one chunk if both have a free slot.
    fn order_copy(&self, id: ChunkId, len: u64, have: &[String], target: &str) -> Ordered {
        // Copied since the pass (a chunk lacking two owners gets one copy
        // at a time, the second when the first is done).
        if self.cluster.with(target, |l| l.chunks.contains(&id)).unwrap_or(false) {
            return Ordered::Yes;
        }
        if self.copying.lock().contains(&id) {
            return Ordered::NoSlot;
        }
        let addr_of = &self.addrs;
        let Some(target_addr) = addr_of.get(target).cloned() else {
            return Ordered::Never;
        };
        let (source, source_addr) = {
            let busy = self.busy.lock();
            if busy.get(&target_addr).copied().unwrap_or(0) >= self.cfg.copies_per_server {
                return Ordered::NoSlot;
            }
            let best = have
                .iter()
                .filter_map(|h| addr_of.get(h.as_str()).map(|a| (h.clone(), a.clone())))
                .min_by_key(|(_, a)| busy.get(a).copied().unwrap_or(0));
            match best {
                Some((h, a)) if busy.get(&a).copied().unwrap_or(0) < self.cfg.copies_per_server => (h, a),
                Some(_) => return Ordered::NoSlot,
                None => return Ordered::Never,
            }
        };
        let (busy, copying, copied, cluster) =
            (self.busy.clone(), self.copying.clone(), self.copied.clone(), self.cluster.clone());
        let wake = self.wake.clone();
        copying.lock().insert(id);
        for a in [&source_addr, &target_addr] {
            *busy.lock().entry(a.clone()).or_default() += 1;
        }
        let target = target.to_string();
        tokio::spawn(async move {
            let req = ReplicateRequest { id: Bytes::copy_from_slice(id.as_bytes()), target: target_addr.clone() };
            let res = match chunk_client(&source_addr) {
                Some(mut c) => tokio::time::timeout(Duration::from_secs(120), c.replicate(req))
                    .await
                    .ok()
                    .map(|r| r.map(|x| x.into_inner())),
                None => None,
            };
            match res {
                Some(Ok(r)) => {
                    tracing::info!(chunk = %id, from = %source, to = %target, bytes = r.bytes, "replicated");
                    cluster.note_copy(&target, id);
                    copied.lock().push((Instant::now(), len));
                }
                Some(Err(e)) => {
                    tracing::warn!(chunk = %id, from = %source, to = %target, error = %e.message(), "copy failed")
                }
                None => tracing::warn!(chunk = %id, from = %source, to = %target, "copy timed out"),
            }
            copying.lock().remove(&id);
            wake.notify_one();
            for a in [&source_addr, &target_addr] {
                if let Some(n) = busy.lock().get_mut(a) {
                    *n = n.saturating_sub(1);
                }
            }
        });
        Ordered::Yes
    }

    async fn delete_on(&self, addr: &str, ids: &[ChunkId]) -> bool {
        let Some(mut c) = chunk_client(addr) else {
            return false;
        };
        let req = DeleteChunksRequest { ids: ids.iter().map(|i| Bytes::copy_from_slice(i.as_bytes())).collect() };
        matches!(tokio::time::timeout(Duration::from_secs(10), c.delete_chunks(req)).await, Ok(Ok(_)))
    }

    async fn collect(&mut self, holders: &Holders, st: &mut RepairStatus) -> crate::error::Result<()> {
        let grace = self.cfg.gc_grace;
        let cutoff = {
            let t = tessera_proto::time::from_system_time(std::time::SystemTime::now() - grace);
            (t.sec, t.nsec)
        };
        // Garbage whose count fell to zero.
        let mut garbage = Vec::new();
        let sm = cf(&self.db, CF_SM)?;
        for item in self.db.iterator_cf(sm, IteratorMode::From(&[key::GARBAGE], Direction::Forward)) {
            let (k, v) = item?;
            if k.first() != Some(&key::GARBAGE) {
                break;
            }
            st.garbage_pending += 1;
            let t: (i64, u32) = decode(&v)?;
            if t <= cutoff {
                garbage.push(k[1..].to_vec());
            }
        }
        if !garbage.is_empty() {
            self.propose(Op::CollectGarbage { ids: garbage, older_than: cutoff, orphans: false }).await;
        }
        // Orphans: held somewhere, never referenced, not already garbage.
        let mut orphans = Vec::new();
        let seen_now: HashSet<ChunkId> = holders.unreferenced().copied().collect();
        self.orphans_seen.retain(|id, _| seen_now.contains(id));
        for id in seen_now {
            let first = *self.orphans_seen.entry(id).or_insert_with(Instant::now);
            if first.elapsed() >= grace {
                let known_garbage = self.db.get_cf(sm, key::bytes(key::GARBAGE, id.as_bytes()))?.is_some();
                if !known_garbage {
                    orphans.push(id.as_bytes().to_vec());
                }
            }
        }
        if !orphans.is_empty() {
            self.propose(Op::CollectGarbage { ids: orphans, older_than: cutoff, orphans: true }).await;
        }
        // Files unlinked while open whose mount died before releasing them.
        let abandoned = {
            let t = tessera_proto::time::from_system_time(std::time::SystemTime::now() - self.cfg.orphan_file_max_age);
            read::orphan_files(&self.db, (t.sec, t.nsec))?
        };
        if !abandoned.is_empty() {
            tracing::warn!(files = abandoned.len(), "freeing files unlinked while open and never released");
            self.propose(Op::ReleaseOrphans { inos: abandoned }).await;
        }
        Ok(())
    }

    /// Seals old unsealed commits whose chunks all have a holder; reverts
    /// those missing one (a new file's content is emptied, a patch
    /// undone). A chunk may only be judged missing when every chunkserver
    /// that could hold it has reported: with one silent, the markers wait
    /// (a restarting server may hold the only copy so far).
    async fn settle_unsealed(&self, holders: &Holders, all_reported: bool) -> crate::error::Result<()> {
        let before = tessera_proto::time::from_system_time(std::time::SystemTime::now() - self.cfg.unsealed_grace);
        let old = unsealed::old_markers(&self.db, (before.sec, before.nsec))?;
        let (mut seal, mut revert) = (Vec::new(), Vec::new());
        let held = |id: &[u8]| ChunkId::from_slice(id).is_ok_and(|id| holders.is_held(&id));
        for (ino, rec) in old {
            match unsealed::verdict(&self.db, ino, &rec, held)? {
                Verdict::Seal => seal.push((ino, rec.version)),
                Verdict::Revert if all_reported => revert.push((ino, rec.version)),
                Verdict::Revert => {}
            }
        }
        for (ino, rec) in unsealed::old_patch_markers(&self.db, (before.sec, before.nsec))? {
            match unsealed::patch_verdict(&self.db, ino, &rec, held)? {
                Verdict::Seal => seal.push((ino, rec.version)),
                Verdict::Revert if all_reported => revert.push((ino, rec.version)),
                Verdict::Revert => {}
            }
        }
        if !revert.is_empty() {
            tracing::warn!(files = revert.len(), "unsealed commits whose writer never finished the upload: reverting");
        }
        if !seal.is_empty() || !revert.is_empty() {
            self.propose(Op::SettleUnsealed { seal, revert }).await;
        }
        Ok(())
    }

    /// The newest index this leader applied at least twice the GC grace
    /// ago (fsm/gc.rs: records of deletions finished by then may go).
    fn prunable_floor(&mut self) -> Option<u64> {
        use openraft::async_runtime::WatchReceiver;
        let applied = self.raft.metrics().borrow_watched().last_applied.as_ref().map(|l| l.index)?;
        self.applied_at.push_back((applied, Instant::now()));
        let age = self.cfg.gc_grace * 2;
        // Keep only the newest sample old enough, and the younger ones.
        while self.applied_at.get(1).is_some_and(|(_, at)| at.elapsed() >= age) {
            self.applied_at.pop_front();
        }
        self.applied_at.front().filter(|(_, at)| at.elapsed() >= age).map(|(i, _)| *i)
    }

    /// Deletes every replica of chunks marked for collection, then records
    /// it; prunes records of deletions finished long ago. The number of
    /// collection records.
    async fn finish_deletions(&mut self, live: &[&ChunkServerRec]) -> crate::error::Result<u64> {
        let floor = self.prunable_floor();
        let sm = cf(&self.db, CF_SM)?;
        let mut pending = Vec::new();
        let (mut records, mut prunable) = (0u64, 0u64);
        for item in self.db.iterator_cf(sm, IteratorMode::From(&[key::COLLECT], Direction::Forward)) {
            let (k, v) = item?;
            if k.first() != Some(&key::COLLECT) {
                break;
            }
            records += 1;
            let rec: CollectRec = decode(&v)?;
            match rec.done {
                None => {
                    if let Ok(id) = ChunkId::from_slice(&k[1..]) {
                        pending.push(id);
                    }
                }
                Some(d) if floor.is_some_and(|f| d <= f) => prunable += 1,
                Some(_) => {}
            }
        }
        if let (Some(floor), true) = (floor, prunable > 0) {
            if let Some(Reply::Count(n)) = self.propose(Op::PruneCollected { floor, limit: PRUNE_BATCH }).await {
                tracing::info!(records = n, floor, "pruned collection records");
                records = records.saturating_sub(n);
            }
        }
        if pending.is_empty() {
            return Ok(records);
        }
        for batch in pending.chunks(500) {
            let mut all = true;
            for s in live {
                all &= self.delete_on(&s.addr, batch).await;
                for id in batch {
                    self.cluster.forget(&s.id, id);
                }
            }
            if all {
                tracing::info!(chunks = batch.len(), "garbage deleted");
                self.propose(Op::GarbageDeleted { ids: batch.iter().map(|i| i.as_bytes().to_vec()).collect() }).await;
            }
        }
        Ok(records)
    }
}

/// The placement ring of the servers on it (Raft state alive) and heard
/// from: where chunks belong now.
pub(crate) fn live_ring(servers: &[ChunkServerRec], cluster: &crate::cluster::Cluster) -> Ring {
    Ring::new(
        servers
            .iter()
            .filter(|s| s.state == ServerState::Alive && cluster.is_alive(&s.id))
            .map(|s| RingNode { id: s.id.clone(), addr: s.addr.clone(), capacity: s.capacity, zone: s.zone.clone() })
            .collect(),
    )
}
