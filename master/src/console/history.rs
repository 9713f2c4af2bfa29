//! The console's short history: every `EVERY` this master samples its
//! applied index, the requests it answered, the bytes its chunkservers store and the healer's
//! figures, and keeps the rates of the last `KEEP` samples (10 minutes),
//! which the page plots live.

use crate::meta_service::MetaService;
use openraft::async_runtime::WatchReceiver;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const EVERY: Duration = Duration::from_secs(2);
const KEEP: usize = 300;

#[derive(Serialize, Clone, Copy, Default, Debug, PartialEq)]
pub struct Sample {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// Namespace changes applied per second (Raft entries).
    pub changes_per_s: f64,
    /// Requests this master answered per second (reads, writes, Raft,
    /// heartbeats: every RPC).
    pub rpcs_per_s: f64,
    /// Growth of the bytes stored on chunkservers per second (negative
    /// while garbage is collected).
    pub stored_bytes_per_s: f64,
    /// Repair copy rate, bytes per second.
    pub repair_bytes_per_s: f64,
    pub under_replicated: u64,
    pub live_chunkservers: u64,
}

/// Raw figures at one instant, from which rates are taken.
#[derive(Clone, Copy)]
struct Point {
    at: Instant,
    applied: u64,
    stored: u64,
    rpcs: u64,
    live: u64,
}

#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().iter().copied().collect()
    }

    fn push(&self, s: Sample) {
        let mut q = self.samples.lock();
        if q.len() == KEEP {
            q.pop_front();
        }
        q.push_back(s);
    }
}

fn point(meta: &MetaService) -> Point {
    let applied = meta.raft.metrics().borrow_watched().last_applied.as_ref().map_or(0, |l| l.index());
    let servers = meta.ring_servers().unwrap_or_default();
    let stored = servers.iter().map(|s| s.used).sum();
    let live = servers.iter().filter(|s| s.alive).count() as u64;
    Point { at: Instant::now(), applied, stored, rpcs: tessera_rpc::metrics::requests_served(), live }
}

/// Samples for as long as the master runs.
pub async fn sample(meta: Arc<MetaService>, history: Arc<History>) {
    let mut last = point(&meta);
    let mut tick = tokio::time::interval(EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = point(&meta);
        let secs = now.at.duration_since(last.at).as_secs_f64().max(1e-3);
        // The healer's figures are the leader's; a follower's are stale.
        let repair = if meta.raft.is_leader() { *meta.repair.lock() } else { Default::default() };
        history.push(Sample {
            at_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            changes_per_s: now.applied.saturating_sub(last.applied) as f64 / secs,
            rpcs_per_s: now.rpcs.saturating_sub(last.rpcs) as f64 / secs,
            stored_bytes_per_s: (now.stored as f64 - last.stored as f64) / secs,
            repair_bytes_per_s: repair.copy_rate_bps,
            under_replicated: repair.under_replicated,
            live_chunkservers: now.live,
        });
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_samples_oldest_first() {
        let h = History::default();
        for i in 0..(KEEP as u64 + 5) {
            h.push(Sample { at_ms: i, ..Default::default() });
        }
        let s = h.samples();
        assert_eq!(s.len(), KEEP);
        assert_eq!((s[0].at_ms, s[KEEP - 1].at_ms), (5, KEEP as u64 + 4));
    }
}
