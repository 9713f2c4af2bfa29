//! A bounded cache of verified chunks, shared by all readers of a mount.
//! Concurrent requests for the same chunk (a demand read racing a prefetch)
//! share one fetch.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tessera_proto::ChunkId;
use tokio::sync::OnceCell;

type Slot = Arc<OnceCell<Result<Bytes, String>>>;

pub struct ChunkCache {
    capacity: u64,
    inner: Mutex<Inner>,
    stats: Stats,
}

/// How reads fared, for the mount's metrics.
#[derive(Default)]
struct Stats {
    hits: AtomicU64,
    /// Served by a fetch another reader had begun.
    joined: AtomicU64,
    misses: AtomicU64,
}

/// A snapshot of the cache for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub joined: u64,
    pub misses: u64,
    pub bytes: u64,
    pub chunks: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<ChunkId, (Bytes, u64)>,
    lru: BTreeMap<u64, ChunkId>,
    bytes: u64,
    tick: u64,
    inflight: HashMap<ChunkId, Slot>,
}

impl ChunkCache {
    pub fn new(capacity: u64) -> ChunkCache {
        ChunkCache { capacity, inner: Mutex::new(Inner::default()), stats: Stats::default() }
    }

    pub fn stats(&self) -> CacheStats {
        let (bytes, chunks) = {
            let g = self.lock();
            (g.bytes, g.map.len() as u64)
        };
        CacheStats {
            hits: self.stats.hits.load(Ordering::Relaxed),
            joined: self.stats.joined.load(Ordering::Relaxed),
            misses: self.stats.misses.load(Ordering::Relaxed),
            bytes,
            chunks,
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    pub fn get(&self, id: &ChunkId) -> Option<Bytes> {
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        let (b, old) = {
            let e = g.map.get_mut(id)?;
            let old = e.1;
            e.1 = tick;
            (e.0.clone(), old)
        };
        g.lru.remove(&old);
        g.lru.insert(tick, *id);
        Some(b)
    }

    pub fn insert(&self, id: ChunkId, b: Bytes) {
        if b.len() as u64 > self.capacity {
            return;
        }
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        if let Some((old, t)) = g.map.insert(id, (b.clone(), tick)) {
            g.bytes -= old.len() as u64;
            g.lru.remove(&t);
        }
        g.bytes += b.len() as u64;
        g.lru.insert(tick, id);
        while g.bytes > self.capacity {
            let Some((_, victim)) = g.lru.pop_first() else {
                break;
            };
            if let Some((old, _)) = g.map.remove(&victim) {
                g.bytes -= old.len() as u64;
            }
        }
    }

    /// Returns the cached chunk or runs `fetch` once for all concurrent callers.
    pub async fn get_or_fetch<F, Fut>(&self, id: ChunkId, fetch: F) -> Result<Bytes, String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Bytes, String>>,
    {
        if let Some(b) = self.get(&id) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(b);
        }
        let slot = self.lock().inflight.entry(id).or_default().clone();
        let mut fetched = false;
        let r = slot
            .get_or_init(|| {
                fetched = true;
                fetch()
            })
            .await
            .clone();
        let counter = if fetched { &self.stats.misses } else { &self.stats.joined };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut g = self.lock();
        if g.inflight.get(&id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
            g.inflight.remove(&id);
            drop(g);
            if let Ok(b) = &r {
                self.insert(id, b.clone());
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let c = ChunkCache::new(250);
        let ids: Vec<ChunkId> = (0..3u8).map(|i| ChunkId::of(&[i])).collect();
        c.insert(ids[0], Bytes::from(vec![0; 100]));
        c.insert(ids[1], Bytes::from(vec![1; 100]));
        assert!(c.get(&ids[0]).is_some()); // 0 is now more recent than 1
        c.insert(ids[2], Bytes::from(vec![2; 100]));
        assert!(c.get(&ids[1]).is_none());
        assert!(c.get(&ids[0]).is_some() && c.get(&ids[2]).is_some());
    }

    #[tokio::test]
    async fn concurrent_fetches_share_one() {
        let c = Arc::new(ChunkCache::new(1 << 20));
        let id = ChunkId::of(b"x");
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut hs = Vec::new();
        for _ in 0..8 {
            let (c, calls) = (c.clone(), calls.clone());
            hs.push(tokio::spawn(async move {
                c.get_or_fetch(id, || async {
                    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    Ok(Bytes::from_static(b"x"))
                })
                .await
            }));
        }
        for h in hs {
            assert_eq!(h.await.unwrap().unwrap(), Bytes::from_static(b"x"));
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        let s = c.stats();
        assert_eq!((s.misses, s.joined, s.hits, s.chunks, s.bytes), (1, 7, 0, 1, 1));
        c.get_or_fetch(id, || async { Err("not called".to_string()) }).await.unwrap();
        assert_eq!(c.stats().hits, 1);
    }
}
