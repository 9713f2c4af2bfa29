//! What one master reports about itself (`tessera cluster status`): Raft
//! role and indexes, memory, membership and, on the leader, repair status.

use crate::meta_service::MetaService;
use openraft::async_runtime::WatchReceiver;
use tessera_proto::pb::*;

impl MetaService {
    pub(crate) fn status_of_node(&self) -> NodeStatusReply {
        let m = self.raft.metrics().borrow_watched().clone();
        let role = format!("{:?}", m.state);
        let master = MasterInfo {
            id: self.node_id,
            addr: self.addr.clone(),
            role,
            term: m.current_term,
            commit_index: m.local_committed.as_ref().map(|l| l.index()).unwrap_or(0),
            applied_index: m.last_applied.as_ref().map(|l| l.index()).unwrap_or(0),
            snapshot_index: m.snapshot.as_ref().map(|l| l.index()).unwrap_or(0),
            reachable: true,
            error: String::new(),
            rss_bytes: rss_bytes(),
            // One cache serves every column family: ask the database once.
            block_cache_bytes: self.db.property_int_value("rocksdb.block-cache-usage").ok().flatten().unwrap_or(0),
            memtable_bytes: self.db_property("rocksdb.cur-size-all-mem-tables"),
            table_readers_bytes: self.db_property("rocksdb.estimate-table-readers-mem"),
            disk_free_bytes: self.disk.free(),
            disk_full: self.disk.full(),
            insecure: tessera_rpc::tls::insecure(),
            // Its own, not the membership's: a master waiting to be added
            // tells the leader where to send Raft (admin_service::add_master).
            raft_addr: self.raft_addr.clone().unwrap_or_default(),
        };
        let members = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| {
                let a = crate::raft::node_addr::NodeAddr::parse(&n.addr);
                MasterInfo { id: *id, addr: a.service, raft_addr: a.raft.unwrap_or_default(), ..Default::default() }
            })
            .collect();
        let voter_ids: Vec<u64> = m.membership_config.membership().voter_ids().collect();
        // Only the leader tracks replication; a voter it has no matched
        // log id for has never acknowledged anything (see lib.rs, probe).
        let never_acked_ids = match &m.replication {
            Some(r) => voter_ids
                .iter()
                .copied()
                .filter(|id| *id != self.node_id && r.get(id).is_none_or(|l| l.is_none()))
                .collect(),
            None => Vec::new(),
        };
        NodeStatusReply {
            voter_ids,
            never_acked_ids,
            master: Some(master),
            leader_id: m.current_leader.unwrap_or(0),
            leader_addr: self.leader_addr().unwrap_or_default(),
            members,
            repair: self.raft.is_leader().then(|| *self.repair.lock()),
        }
    }
}

/// Resident set size of this process (0 where /proc is not available).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        // SAFETY: sysconf has no preconditions.
        .map(|pages| pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64)
        .unwrap_or(0)
}
