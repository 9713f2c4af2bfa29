//! What the console shows, gathered from this master's own state: its Raft
//! metrics (on the leader, how far each member has replicated), the ring
//! and the chunkservers' last heartbeats, the healer's figures, and the
//! applied namespace. No call leaves the process: a follower shows what it
//! knows, and says it is one.

use crate::fsm::model::{Inode, KIND_DIR, KIND_SYMLINK};
use crate::fsm::read;
use crate::meta_service::MetaService;
use crate::types::Cred;
use openraft::async_runtime::WatchReceiver;
use serde::Serialize;
use tessera_proto::pb::{ChunkServerInfo, RepairStatus};
use tessera_proto::ChunkId;

/// The overview, as served to the page and to `/api/status`.
#[derive(Serialize, Clone, Default)]
pub struct Overview {
    pub node_id: u64,
    pub addr: String,
    pub role: String,
    pub leader_id: u64,
    pub leader_addr: String,
    pub term: u64,
    pub masters: Vec<MasterRow>,
    pub chunkservers: Vec<ServerRow>,
    pub repair: Option<RepairRow>,
    pub files: u64,
    pub chunks: u64,
    /// Samples of the last minutes, oldest first (history.rs).
    pub history: Vec<super::history::Sample>,
}

#[derive(Serialize, Clone, Default)]
pub struct MasterRow {
    pub id: u64,
    pub addr: String,
    pub role: String,
    pub voter: bool,
    /// The last log index known to be on it (the leader's view), or this
    /// master's own last index.
    pub matched: Option<u64>,
}

#[derive(Serialize, Clone, Default)]
pub struct ServerRow {
    pub id: String,
    pub addr: String,
    pub zone: String,
    pub state: String,
    pub alive: bool,
    pub capacity: u64,
    pub used: u64,
    pub free: u64,
    pub chunks: u64,
    pub heartbeat_ms_ago: u64,
    /// Share of new primaries the ring gives it (0..1; 0 off the ring).
    pub ring_share: f64,
}

#[derive(Serialize, Clone, Default)]
pub struct RepairRow {
    pub chunks: u64,
    pub under_replicated: u64,
    pub missing: u64,
    pub below_goal: u64,
    pub bytes_to_copy: u64,
    pub copies_in_flight: u64,
    pub copy_rate_bps: f64,
    pub copied_bytes_total: u64,
    pub garbage_pending: u64,
    pub settled: bool,
    /// Seconds left at the recent copy rate (None when idle or unknown).
    pub eta_s: Option<f64>,
}

impl From<RepairStatus> for RepairRow {
    fn from(r: RepairStatus) -> RepairRow {
        let eta_s = (r.bytes_to_copy > 0 && r.copy_rate_bps > 0.0).then(|| r.bytes_to_copy as f64 / r.copy_rate_bps);
        RepairRow {
            chunks: r.chunks,
            under_replicated: r.under_replicated,
            missing: r.missing,
            below_goal: r.below_goal,
            bytes_to_copy: r.bytes_to_copy,
            copies_in_flight: r.copies_in_flight,
            copy_rate_bps: r.copy_rate_bps,
            copied_bytes_total: r.copied_bytes_total,
            garbage_pending: r.garbage_pending,
            settled: r.settled,
            eta_s,
        }
    }
}

/// One entry of a directory listing.
pub struct Entry {
    pub name: String,
    pub inode: Inode,
}

/// A file's chunks: offset in the file, length, id, and who holds it.
pub struct ChunkRow {
    pub offset: u64,
    pub len: u64,
    pub id: String,
    pub holders: Vec<String>,
}

/// What a path names, for the namespace browser.
pub enum Node {
    Dir { inode: Inode, entries: Vec<Entry>, more: bool },
    File { inode: Inode, chunks: Vec<ChunkRow> },
    Other { inode: Inode },
}

/// Entries shown of one directory at most.
pub const LIST_LIMIT: usize = 1000;

impl MetaService {
    /// The chunkservers as the ring and their heartbeats show them.
    pub(crate) fn ring_servers(&self) -> Result<Vec<ChunkServerInfo>, crate::types::FsErr> {
        Ok(self.server_infos(read::servers(&self.db)?))
    }

    /// `servers` (the ring's records) with what their heartbeats say.
    fn server_infos(&self, servers: Vec<crate::fsm::model::ChunkServerRec>) -> Vec<ChunkServerInfo> {
        servers
            .into_iter()
            .map(|s| {
                // Alive for placement: on the ring (Raft state) and heard from.
                let alive = s.state == crate::fsm::model::ServerState::Alive && self.cluster.is_alive(&s.id);
                let live = self
                    .cluster
                    .with(&s.id, |l| (l.used, l.free, l.chunk_count, l.last_seen.elapsed().as_millis() as u64));
                let (used, free, chunk_count, ago) = live.unwrap_or((0, 0, 0, u64::MAX));
                ChunkServerInfo {
                    id: s.id,
                    addr: s.addr,
                    capacity: s.capacity,
                    used,
                    chunk_count,
                    alive,
                    zone: s.zone,
                    free,
                    last_heartbeat_ms_ago: ago,
                    state: s.state.name().to_string(),
                }
            })
            .collect()
    }

    /// This master's Raft role, as the console's header shows it.
    pub(crate) fn console_role(&self) -> String {
        format!("{:?}", self.raft.metrics().borrow_watched().state)
    }

    pub(crate) fn console_overview(&self) -> Overview {
        let st = self.status_of_node();
        let me = st.master.clone().unwrap_or_default();
        let m = self.raft.metrics().borrow_watched().clone();
        let replication = m.replication.clone().unwrap_or_default();
        let masters = st
            .members
            .iter()
            .map(|n| {
                let is_me = n.id == self.node_id;
                let role = if is_me {
                    me.role.clone()
                } else if n.id == st.leader_id {
                    "Leader".to_string()
                } else if st.voter_ids.contains(&n.id) {
                    "Follower".to_string()
                } else {
                    "Learner".to_string()
                };
                let matched = if is_me {
                    m.last_log_index
                } else {
                    replication.get(&n.id).and_then(|l| l.as_ref().map(|l| l.index()))
                };
                MasterRow { id: n.id, addr: n.addr.clone(), role, voter: st.voter_ids.contains(&n.id), matched }
            })
            .collect();
        // One read of the ring's records for both the ring and the rows.
        let servers = read::servers(&self.db).unwrap_or_default();
        let ring = crate::healer::live_ring(&servers, &self.cluster);
        let infos = self.server_infos(servers);
        let shares = ring.primary_shares();
        let chunkservers = infos
            .into_iter()
            .map(|s| {
                let ring_share = shares.iter().find(|(n, _)| n.id == s.id).map_or(0.0, |(_, f)| *f);
                ServerRow {
                    id: s.id,
                    addr: s.addr,
                    zone: s.zone,
                    state: s.state,
                    alive: s.alive,
                    capacity: s.capacity,
                    used: s.used,
                    free: s.free,
                    chunks: s.chunk_count,
                    heartbeat_ms_ago: s.last_heartbeat_ms_ago,
                    ring_share,
                }
            })
            .collect();
        let counters = read::counters(&self.db).unwrap_or_default();
        Overview {
            node_id: self.node_id,
            addr: self.addr.clone(),
            role: me.role.clone(),
            leader_id: st.leader_id,
            leader_addr: st.leader_addr.clone(),
            term: me.term,
            masters,
            chunkservers,
            repair: st.repair.map(RepairRow::from),
            files: counters.inodes,
            chunks: counters.chunks,
            history: Vec::new(),
        }
    }

    /// What `path` names in the applied namespace (as root: the console is
    /// an operator's view).
    pub(crate) fn console_node(&self, path: &str) -> Result<Node, String> {
        let root = Cred::root();
        let mut ino = tessera_proto::ROOT_INO;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            ino = read::lookup(&self.db, &root, ino, part.as_bytes()).map_err(|e| format!("{path}: {}", e.msg))?.ino;
        }
        let inode = read::inode(&self.db, ino).map_err(|e| e.msg)?;
        if inode.kind == KIND_DIR {
            let page = read::readdir(&self.db, &root, ino, b"", LIST_LIMIT, true).map_err(|e| e.msg)?;
            let entries = page
                .entries
                .into_iter()
                .filter_map(|(name, _, i)| Some(Entry { name: String::from_utf8_lossy(&name).into_owned(), inode: i? }))
                .collect();
            return Ok(Node::Dir { inode, entries, more: page.more });
        }
        if inode.kind == KIND_SYMLINK || inode.kind != crate::fsm::model::KIND_REGULAR {
            return Ok(Node::Other { inode });
        }
        let mut chunks = Vec::new();
        let mut offset = 0;
        for e in read::extents(&self.db, ino).map_err(|e| e.msg)? {
            let (id, holders) = match ChunkId::from_slice(&e.id) {
                Ok(c) => (c.to_hex(), self.cluster.locations(&c)),
                Err(_) => ("(hole)".to_string(), Vec::new()),
            };
            chunks.push(ChunkRow { offset, len: e.len, id, holders });
            offset += e.len;
        }
        Ok(Node::File { inode, chunks })
    }
}
