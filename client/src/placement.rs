//! The client's view of the ring, fetched from the master and refreshed
//! periodically. Writes go to the owners on the ring of *live* chunkservers,
//! skipping servers this client just saw fail (the next live server
//! clockwise stands in, as HDFS replaces a failed pipeline datanode); reads
//! also try the owners on the full ring and, last, the locations the master
//! learned from chunk reports.

use crate::error::Result;
use crate::meta::MetaClient;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_proto::pb::Empty;
use tessera_proto::ring::{Ring, RingNode};
use tessera_proto::{ChunkId, DEFAULT_MIN_REPLICAS, REPLICATION};
use tessera_rpc::token_book::TokenBook;

const REFRESH: Duration = Duration::from_secs(3);

/// How long a server that failed a write is passed over by new writes. The
/// masters take it off the live ring within their dead timeout if it stays
/// silent; until then this keeps every chunk from waiting on it again.
const DOWN_FOR: Duration = Duration::from_secs(5);

/// Extra servers clockwise a read tries beyond the owners: where a write
/// put its copies while an owner was down.
const READ_SUBSTITUTES: usize = 2;

pub struct RingView {
    meta: MetaClient,
    /// Where the write token that comes with the ring goes.
    tokens: Arc<TokenBook>,
    state: Mutex<Option<Snapshot>>,
    /// Servers this client saw fail, and since when.
    down: Mutex<HashMap<String, Instant>>,
}

#[derive(Clone)]
struct Snapshot {
    all: Ring,
    live: Ring,
    min_replicas: usize,
    fetched: Instant,
}

/// Where a new chunk goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritePlan {
    /// Live servers in the order they should hold the chunk: the first
    /// `REPLICATION` are the targets, the rest stand in for failed ones.
    pub candidates: Vec<String>,
    /// Copies that must be durable before the write is acknowledged.
    pub min_replicas: usize,
    /// Live chunkservers the masters know of.
    pub live: usize,
}

impl RingView {
    pub fn new(meta: MetaClient, tokens: Arc<TokenBook>) -> RingView {
        RingView { meta, tokens, state: Mutex::new(None), down: Mutex::new(HashMap::new()) }
    }

    async fn snapshot(&self, force: bool) -> Result<Snapshot> {
        if !force {
            if let Some(s) = self.state.lock().as_ref() {
                if s.fetched.elapsed() < REFRESH {
                    return Ok(s.clone());
                }
            }
        }
        // The ring does not depend on this client's namespace changes: no need
        // to wait for its write-behind ones.
        let reply = self.meta.call_unordered("get_ring", |mut c| async move { c.get_ring(Empty {}).await }).await?;
        self.tokens.set_write(reply.write_token.clone());
        let node = |s: &tessera_proto::pb::ChunkServerInfo| RingNode {
            id: s.id.clone(),
            addr: s.addr.clone(),
            capacity: s.capacity,
            zone: s.zone.clone(),
        };
        let all = Ring::new(reply.servers.iter().map(node).collect());
        let live = Ring::new(reply.servers.iter().filter(|s| s.alive).map(node).collect());
        let min_replicas = match reply.min_replicas as usize {
            0 => DEFAULT_MIN_REPLICAS,
            n => n.min(REPLICATION),
        };
        let snap = Snapshot { all, live, min_replicas, fetched: Instant::now() };
        *self.state.lock() = Some(snap.clone());
        Ok(snap)
    }

    /// Forces the next lookup to fetch the ring again (after a failure).
    pub fn invalidate(&self) {
        *self.state.lock() = None;
    }

    /// Records that `addr` failed a write: new writes pass it over for a while.
    pub fn mark_down(&self, addr: &str) {
        self.down.lock().insert(addr.to_string(), Instant::now());
    }

    /// Records that `addr` answered: it is no longer passed over.
    pub fn mark_up(&self, addr: &str) {
        let mut d = self.down.lock();
        if !d.is_empty() {
            d.remove(addr);
        }
    }

    fn is_down(&self, addr: &str) -> bool {
        let mut d = self.down.lock();
        match d.get(addr) {
            Some(t) if t.elapsed() < DOWN_FOR => true,
            Some(_) => {
                d.remove(addr);
                false
            }
            None => false,
        }
    }

    /// Where a new chunk goes; `fresh` fetches the ring first.
    pub async fn write_plan(&self, id: &ChunkId, fresh: bool) -> Result<WritePlan> {
        let s = self.snapshot(fresh).await?;
        let ordered: Vec<String> = s.live.owners(id, s.live.nodes().len()).iter().map(|n| n.addr.clone()).collect();
        Ok(plan_from(ordered, s.min_replicas, |a| self.is_down(a)))
    }

    /// Addresses worth trying for a read, best first, without duplicates.
    pub async fn read_candidates(&self, id: &ChunkId) -> Result<Vec<String>> {
        let s = self.snapshot(false).await?;
        let mut out: Vec<String> = Vec::new();
        let live = s.live.owners(id, REPLICATION + READ_SUBSTITUTES);
        for n in live.into_iter().chain(s.all.owners(id, REPLICATION)) {
            if !out.contains(&n.addr) {
                out.push(n.addr.clone());
            }
        }
        // Servers that just failed go last (stable: ring order otherwise).
        out.sort_by_key(|a| self.is_down(a));
        Ok(out)
    }
}

/// Orders the live servers clockwise from a chunk for a write: servers not
/// seen failing first, in ring order, then the ones seen failing (a last
/// resort: they may be back).
fn plan_from(ordered: Vec<String>, min_replicas: usize, is_down: impl Fn(&str) -> bool) -> WritePlan {
    let live = ordered.len();
    let (up, down): (Vec<String>, Vec<String>) = ordered.into_iter().partition(|a| !is_down(a));
    let mut candidates = up;
    candidates.extend(down);
    WritePlan { candidates, min_replicas, live }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_server_seen_failing_goes_behind_the_next_one_clockwise() {
        let p = plan_from(addrs(&["a", "b", "c", "d"]), 2, |a| a == "b");
        assert_eq!(p.candidates, addrs(&["a", "c", "d", "b"]));
        assert_eq!(p.live, 4);
        assert_eq!(p.min_replicas, 2);
    }

    #[test]
    fn nothing_down_keeps_ring_order() {
        let p = plan_from(addrs(&["c", "a", "b"]), 2, |_| false);
        assert_eq!(p.candidates, addrs(&["c", "a", "b"]));
    }
}
