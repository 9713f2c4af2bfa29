//! The master's gauges for Prometheus (see tessera_util::metrics), sampled
//! once a second: its Raft state (term, role, log, commit, applied,
//! snapshot, leader changes seen), the chunkservers it knows, the
//! namespace's size, and (on the leader) the healer's repair and garbage
//! figures.

use crate::fsm::model::ServerState;
use crate::fsm::read;
use crate::store::state_machine::Raft;
use metrics::{counter, gauge};
use openraft::async_runtime::WatchReceiver;
use parking_lot::Mutex;
use rocksdb::DB;
use std::sync::Arc;
use std::time::Duration;
use tessera_proto::pb::RepairStatus;

pub async fn sample(raft: Raft, db: Arc<DB>, cluster: Arc<crate::cluster::Cluster>, repair: Arc<Mutex<RepairStatus>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut leader = None;
    loop {
        tick.tick().await;
        let m = raft.metrics().borrow_watched().clone();
        gauge!("tessera_raft_term").set(m.current_term as f64);
        gauge!("tessera_raft_is_leader").set(if m.state.is_leader() { 1.0 } else { 0.0 });
        let index = |l: Option<u64>| l.unwrap_or(0) as f64;
        gauge!("tessera_raft_last_log_index").set(index(m.last_log_index));
        gauge!("tessera_raft_commit_index").set(index(m.cluster_committed.or(m.local_committed).map(|l| l.index())));
        gauge!("tessera_raft_applied_index").set(index(m.last_applied.map(|l| l.index())));
        gauge!("tessera_raft_snapshot_index").set(index(m.snapshot.map(|l| l.index())));
        gauge!("tessera_raft_purged_index").set(index(m.purged.map(|l| l.index())));
        if m.current_leader != leader {
            if leader.is_some() || m.current_leader.is_some() {
                counter!("tessera_raft_leader_changes_total").increment(1);
            }
            leader = m.current_leader;
        }
        if let Ok(servers) = read::servers(&db) {
            for state in [ServerState::Alive, ServerState::Dead, ServerState::Draining, ServerState::Drained] {
                let n = servers.iter().filter(|s| s.state == state).count();
                gauge!("tessera_chunkservers", "state" => state.name()).set(n as f64);
            }
            let live = servers.iter().filter(|s| cluster.is_alive(&s.id)).count();
            gauge!("tessera_chunkservers_heard_from").set(live as f64);
        }
        if m.state.is_leader() {
            let r = *repair.lock();
            gauge!("tessera_repair_chunks").set(r.chunks as f64);
            gauge!("tessera_repair_under_replicated").set(r.under_replicated as f64);
            gauge!("tessera_repair_missing").set(r.missing as f64);
            gauge!("tessera_repair_bytes_to_copy").set(r.bytes_to_copy as f64);
            gauge!("tessera_repair_copies_in_flight").set(r.copies_in_flight as f64);
            gauge!("tessera_repair_copy_bytes_per_second").set(r.copy_rate_bps);
            gauge!("tessera_gc_pending_chunks").set(r.garbage_pending as f64);
            counter!("tessera_repair_copied_bytes_total").absolute(r.copied_bytes_total);
        }
        if let Ok(c) = read::counters(&db) {
            gauge!("tessera_namespace_inodes").set(c.inodes as f64);
            gauge!("tessera_namespace_chunks").set(c.chunks as f64);
            gauge!("tessera_namespace_chunk_bytes").set(c.chunk_bytes as f64);
        }
    }
}
