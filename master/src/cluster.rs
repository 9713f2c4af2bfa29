//! What the leader knows about chunkservers from their heartbeats: liveness,
//! space, and where each chunk actually is. This is soft state, rebuilt from
//! full chunk reports whenever a master becomes leader (chunkservers send a
//! full report to a master that does not know them).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tessera_proto::pb::HeartbeatRequest;
use tessera_proto::ChunkId;

pub struct Live {
    pub addr: String,
    pub capacity: u64,
    pub used: u64,
    pub free: u64,
    pub chunk_count: u64,
    pub last_seen: Instant,
    pub chunks: HashSet<ChunkId>,
}

pub struct Cluster {
    servers: Mutex<HashMap<String, Live>>,
    pub dead_after: Duration,
    started: Mutex<Instant>,
}

impl Cluster {
    pub fn new(dead_after: Duration) -> Cluster {
        Cluster { servers: Mutex::new(HashMap::new()), dead_after, started: Mutex::new(Instant::now()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.servers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a heartbeat; returns true when a full report is needed.
    pub fn heartbeat(&self, hb: &HeartbeatRequest) -> bool {
        let mut m = self.lock();
        let parse = |v: &[bytes::Bytes]| v.iter().filter_map(|b| ChunkId::from_slice(b).ok()).collect::<Vec<_>>();
        if !hb.full && !m.contains_key(&hb.id) {
            return true;
        }
        let e = m.entry(hb.id.clone()).or_insert_with(|| Live {
            addr: hb.addr.clone(),
            capacity: 0,
            used: 0,
            free: 0,
            chunk_count: 0,
            last_seen: Instant::now(),
            chunks: HashSet::new(),
        });
        e.addr = hb.addr.clone();
        e.capacity = hb.capacity;
        e.used = hb.used;
        e.free = hb.free;
        e.chunk_count = hb.chunk_count;
        e.last_seen = Instant::now();
        if hb.full {
            e.chunks = parse(&hb.added).into_iter().collect();
        } else {
            for id in parse(&hb.added) {
                e.chunks.insert(id);
            }
            for id in parse(&hb.removed) {
                e.chunks.remove(&id);
            }
        }
        false
    }

    /// Alive = heard from within `dead_after`. Right after this master
    /// starts, servers it has not heard from yet get the benefit of the doubt.
    pub fn is_alive(&self, id: &str) -> bool {
        match self.lock().get(id) {
            Some(l) => l.last_seen.elapsed() < self.dead_after,
            None => self.started.lock().unwrap_or_else(|p| p.into_inner()).elapsed() < self.dead_after,
        }
    }

    /// Forgets everything (a new leadership term starts from fresh reports).
    pub fn reset(&self) {
        self.lock().clear();
        *self.started.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// True once the server's full chunk report has arrived.
    pub fn knows(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// Chunk -> ids of the live servers reporting it.
    pub fn holders(&self) -> HashMap<ChunkId, Vec<String>> {
        let m = self.lock();
        let mut out: HashMap<ChunkId, Vec<String>> = HashMap::new();
        for (sid, l) in m.iter().filter(|(_, l)| l.last_seen.elapsed() < self.dead_after) {
            for c in &l.chunks {
                out.entry(*c).or_default().push(sid.clone());
            }
        }
        out
    }

    /// A copy was confirmed by the target: count it before its next report.
    pub fn note_copy(&self, server: &str, id: ChunkId) {
        if let Some(l) = self.lock().get_mut(server) {
            l.chunks.insert(id);
        }
    }

    pub fn forget(&self, server: &str, id: &ChunkId) {
        if let Some(l) = self.lock().get_mut(server) {
            l.chunks.remove(id);
        }
    }

    pub fn with<T>(&self, id: &str, f: impl FnOnce(&Live) -> T) -> Option<T> {
        self.lock().get(id).map(f)
    }

    pub fn locations(&self, id: &ChunkId) -> Vec<String> {
        self.lock()
            .values()
            .filter(|l| l.last_seen.elapsed() < self.dead_after && l.chunks.contains(id))
            .map(|l| l.addr.clone())
            .collect()
    }
}
