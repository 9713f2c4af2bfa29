//! What the leader knows about chunkservers from their heartbeats: liveness,
//! space, and where each chunk actually is. This is soft state, rebuilt from
//! full chunk reports whenever a master becomes leader (chunkservers send a
//! full report to a master that does not know them).

use parking_lot::Mutex;
use smallvec::SmallVec;
use std::collections::{HashMap, HashSet};
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
    /// A paged full report on its way: the chunks so far, the next page.
    staging: Option<(HashSet<ChunkId>, u32)>,
    /// A full report has arrived whole (`chunks` is the server's content).
    complete: bool,
}

/// Chunk -> the live servers reporting it, as indices into `servers`, and
/// whether the namespace references it: the leader's repair pass builds
/// this for every chunk of the cluster, so a chunk costs one map entry with
/// an inline list, not a vector of copied server names and a second set.
#[derive(Default)]
pub struct Holders {
    pub servers: Vec<String>,
    index: HashMap<String, u32>,
    by_chunk: HashMap<ChunkId, Held>,
}

#[derive(Default)]
struct Held {
    servers: SmallVec<[u32; 4]>,
    referenced: bool,
}

impl Holders {
    /// Indices (into `servers`) of the servers holding `id`.
    pub fn of(&self, id: &ChunkId) -> &[u32] {
        self.by_chunk.get(id).map(|h| h.servers.as_slice()).unwrap_or(&[])
    }

    /// `of`, noting that the namespace references `id`.
    pub fn mark_referenced(&mut self, id: &ChunkId) -> SmallVec<[u32; 4]> {
        match self.by_chunk.get_mut(id) {
            Some(h) => {
                h.referenced = true;
                h.servers.clone()
            }
            None => SmallVec::new(),
        }
    }

    pub fn names(&self, ixs: &[u32]) -> Vec<String> {
        ixs.iter().filter_map(|&i| self.servers.get(i as usize).cloned()).collect()
    }

    pub fn index_of(&self, server: &str) -> Option<u32> {
        self.index.get(server).copied()
    }

    /// Server `ix`'s id.
    pub fn name(&self, ix: u32) -> &str {
        self.servers.get(ix as usize).map(String::as_str).unwrap_or("")
    }

    pub fn is_held(&self, id: &ChunkId) -> bool {
        !self.of(id).is_empty()
    }

    /// Chunks some live server holds that no `mark_referenced` named.
    pub fn unreferenced(&self) -> impl Iterator<Item = &ChunkId> {
        self.by_chunk.iter().filter(|(_, h)| !h.referenced).map(|(id, _)| id)
    }

    /// Whether `server` holds a chunk marked referenced.
    pub fn holds_referenced(&self, server: &str) -> bool {
        let Some(ix) = self.index_of(server) else {
            return false;
        };
        self.by_chunk.values().any(|h| h.referenced && h.servers.contains(&ix))
    }
}

pub struct Cluster {
    servers: Mutex<HashMap<String, Live>>,
    pub dead_after: Duration,
    started: Mutex<Instant>,
    /// Woken when a server is found dead before its timeout (liveness.rs),
    /// so that repair starts at once.
    pub changed: tokio::sync::Notify,
}

impl Cluster {
    pub fn new(dead_after: Duration) -> Cluster {
        Cluster {
            servers: Mutex::new(HashMap::new()),
            dead_after,
            started: Mutex::new(Instant::now()),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<String, Live>> {
        self.servers.lock()
    }

    /// Records a heartbeat; returns true when a full report is needed.
    pub fn heartbeat(&self, hb: &HeartbeatRequest) -> bool {
        let mut m = self.lock();
        let parse = |v: &[bytes::Bytes]| v.iter().filter_map(|b| ChunkId::from_slice(b).ok()).collect::<Vec<_>>();
        if !hb.full && !m.get(&hb.id).is_some_and(|l| l.complete) {
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
            staging: None,
            complete: false,
        });
        e.addr = hb.addr.clone();
        e.capacity = hb.capacity;
        e.used = hb.used;
        e.free = hb.free;
        e.chunk_count = hb.chunk_count;
        e.last_seen = Instant::now();
        if hb.full {
            // Pages: the report replaces what was known only once whole.
            let ids = parse(&hb.added);
            match (&mut e.staging, hb.page) {
                (_, 0) => e.staging = Some((ids.into_iter().collect(), 1)),
                (Some((set, next)), p) if *next == p => {
                    set.extend(ids);
                    *next += 1;
                }
                _ => {
                    // A page out of order (a lost or repeated one): start over.
                    e.staging = None;
                    return true;
                }
            }
            if !hb.more {
                if let Some((set, _)) = e.staging.take() {
                    e.chunks = set;
                    e.complete = true;
                }
            }
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
            None => self.started.lock().elapsed() < self.dead_after,
        }
    }

    /// How long since the server was last heard from, or since this
    /// master started looking (a new leader has heard from nobody yet).
    pub fn silent_for(&self, id: &str) -> Duration {
        match self.lock().get(id) {
            Some(l) => l.last_seen.elapsed(),
            None => self.started.lock().elapsed(),
        }
    }

    /// The server's host refused a connection to it: its process is gone,
    /// so it is dead now rather than after the timeout. A heartbeat (it was
    /// restarted) makes it alive again.
    pub fn refused(&self, id: &str, addr: &str) {
        let Some(long_ago) = Instant::now().checked_sub(self.dead_after) else { return };
        let mut m = self.lock();
        let e = m.entry(id.to_string()).or_insert_with(|| Live {
            addr: addr.to_string(),
            capacity: 0,
            used: 0,
            free: 0,
            chunk_count: 0,
            last_seen: long_ago,
            chunks: HashSet::new(),
            staging: None,
            complete: false,
        });
        e.last_seen = long_ago;
        drop(m);
        self.changed.notify_one();
    }

    /// Forgets everything (a new leadership term starts from fresh reports).
    pub fn reset(&self) {
        self.lock().clear();
        *self.started.lock() = Instant::now();
    }

    /// True once the server's full chunk report has arrived.
    pub fn knows(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|l| l.complete)
    }

    /// Where each chunk is, as reported by the live servers.
    pub fn holders(&self) -> Holders {
        let m = self.lock();
        // Sized for the largest report up front: growing a map of millions
        // of entries rehashes each one several times.
        let most = m.values().map(|l| l.chunks.len()).max().unwrap_or(0);
        let mut h = Holders { by_chunk: HashMap::with_capacity(most), ..Default::default() };
        for (sid, l) in m.iter().filter(|(_, l)| l.last_seen.elapsed() < self.dead_after) {
            let ix = h.servers.len() as u32;
            h.servers.push(sid.clone());
            h.index.insert(sid.clone(), ix);
            for c in &l.chunks {
                h.by_chunk.entry(*c).or_default().servers.push(ix);
            }
        }
        h
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn report(c: &Cluster, id: &str, chunks: &[ChunkId]) {
        let hb = HeartbeatRequest {
            id: id.into(),
            addr: format!("{id}:1"),
            full: true,
            added: chunks.iter().map(|c| Bytes::copy_from_slice(c.as_bytes())).collect(),
            ..Default::default()
        };
        c.heartbeat(&hb);
    }

    #[test]
    fn holders_index_the_live_servers_of_each_chunk() {
        let c = Cluster::new(Duration::from_secs(60));
        let (a, b, orphan) = (ChunkId::of(b"a"), ChunkId::of(b"b"), ChunkId::of(b"o"));
        report(&c, "cs-1", &[a, b]);
        report(&c, "cs-2", &[a]);
        report(&c, "cs-3", &[orphan]);
        let mut h = c.holders();
        let mut of_a = h.names(h.of(&a));
        of_a.sort();
        assert_eq!(of_a, ["cs-1", "cs-2"]);
        assert_eq!(h.names(h.of(&b)), ["cs-1"]);
        assert!(h.of(&ChunkId::of(b"none")).is_empty() && !h.is_held(&ChunkId::of(b"none")));
        assert_eq!(h.unreferenced().count(), 3);
        assert_eq!(h.mark_referenced(&b).as_slice(), h.of(&b));
        assert!(h.mark_referenced(&ChunkId::of(b"missing")).is_empty());
        assert!(h.holds_referenced("cs-1") && !h.holds_referenced("cs-2") && !h.holds_referenced("cs-9"));
        h.mark_referenced(&a);
        assert_eq!(h.unreferenced().collect::<Vec<_>>(), [&orphan]);
        assert!(h.holds_referenced("cs-2") && !h.holds_referenced("cs-3"));
        assert_eq!(h.index_of("cs-2").map(|i| h.name(i)), Some("cs-2"));
        assert_eq!(h.index_of("cs-9"), None);
    }

    #[test]
    fn silent_servers_hold_nothing() {
        let c = Cluster::new(Duration::from_millis(1));
        let a = ChunkId::of(b"a");
        report(&c, "cs-1", &[a]);
        std::thread::sleep(Duration::from_millis(5));
        let h = c.holders();
        assert!(!h.is_held(&a) && h.servers.is_empty());
    }

    fn page(c: &Cluster, id: &str, chunks: &[ChunkId], page: u32, more: bool) -> bool {
        let hb = HeartbeatRequest {
            id: id.into(),
            addr: format!("{id}:1"),
            full: true,
            added: chunks.iter().map(|c| Bytes::copy_from_slice(c.as_bytes())).collect(),
            page,
            more,
            ..Default::default()
        };
        c.heartbeat(&hb)
    }

    #[test]
    fn a_report_in_pages_counts_only_once_whole() {
        // 600,000 ids: more than one 16 MiB message could carry (~490,000).
        let ids: Vec<ChunkId> = (0..600_000u32).map(|i| ChunkId::of(&i.to_le_bytes())).collect();
        let c = Cluster::new(Duration::from_secs(60));
        let pages: Vec<&[ChunkId]> = ids.chunks(100_000).collect();
        for (i, p) in pages.iter().enumerate() {
            assert!(!c.knows("cs-1"), "known before its last page");
            assert!(!page(&c, "cs-1", p, i as u32, i + 1 < pages.len()));
        }
        assert!(c.knows("cs-1"));
        let h = c.holders();
        assert!(ids.iter().all(|id| h.is_held(id)));
        assert_eq!(c.with("cs-1", |l| l.chunks.len()), Some(600_000));

        // A new report replaces the old one only when it is whole; a page
        // out of order asks for a new report and changes nothing.
        let fresh = [ChunkId::of(b"x")];
        assert!(!page(&c, "cs-1", &fresh, 0, true));
        assert!(page(&c, "cs-1", &fresh, 2, false), "a skipped page must ask for a full report");
        assert_eq!(c.with("cs-1", |l| l.chunks.len()), Some(600_000));
        assert!(page(&c, "cs-1", &fresh, 1, false), "no report is under way after the skip");
        assert!(!page(&c, "cs-1", &fresh, 0, false));
        assert_eq!(c.with("cs-1", |l| l.chunks.len()), Some(1));
    }
}
