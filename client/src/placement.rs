//! The client's view of the ring, fetched from the master and refreshed
//! periodically. Writes go to the owners on the ring of *live* chunkservers;
//! reads also try the owners on the full ring and, last, the locations the
//! master learned from chunk reports.

use crate::error::Result;
use crate::meta::MetaClient;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tessera_proto::pb::Empty;
use tessera_proto::ring::{Ring, RingNode};
use tessera_proto::{ChunkId, REPLICATION};

const REFRESH: Duration = Duration::from_secs(3);

pub struct RingView {
    meta: MetaClient,
    state: Mutex<Option<Snapshot>>,
}

#[derive(Clone)]
struct Snapshot {
    all: Ring,
    live: Ring,
    fetched: Instant,
}

impl RingView {
    pub fn new(meta: MetaClient) -> RingView {
        RingView { meta, state: Mutex::new(None) }
    }

    async fn snapshot(&self, force: bool) -> Result<Snapshot> {
        if !force {
            if let Some(s) = self.state.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                if s.fetched.elapsed() < REFRESH {
                    return Ok(s.clone());
                }
            }
        }
        // The ring does not depend on this client's namespace changes: no need
        // to wait for its write-behind ones.
        let reply = self.meta.call_unordered("get_ring", |mut c| async move { c.get_ring(Empty {}).await }).await?;
        let node = |s: &tessera_proto::pb::ChunkServerInfo| RingNode {
            id: s.id.clone(),
            addr: s.addr.clone(),
            capacity: s.capacity,
            zone: s.zone.clone(),
        };
        let all = Ring::new(reply.servers.iter().map(node).collect());
        let live = Ring::new(reply.servers.iter().filter(|s| s.alive).map(node).collect());
        let snap = Snapshot { all, live, fetched: Instant::now() };
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(snap.clone());
        Ok(snap)
    }

    /// Forces the next lookup to fetch the ring again (after a failure).
    pub fn invalidate(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Addresses that must hold a new chunk, primary first.
    pub async fn write_owners(&self, id: &ChunkId) -> Result<Vec<String>> {
        let s = self.snapshot(false).await?;
        Ok(s.live.owners(id, REPLICATION).iter().map(|n| n.addr.clone()).collect())
    }

    /// Addresses worth trying for a read, best first, without duplicates.
    pub async fn read_candidates(&self, id: &ChunkId) -> Result<Vec<String>> {
        let s = self.snapshot(false).await?;
        let mut out: Vec<String> = Vec::new();
        for n in s.live.owners(id, REPLICATION).into_iter().chain(s.all.owners(id, REPLICATION)) {
            if !out.contains(&n.addr) {
                out.push(n.addr.clone());
            }
        }
        Ok(out)
    }
}
