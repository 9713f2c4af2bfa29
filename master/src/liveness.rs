//! Fast failure detection. A chunkserver is declared dead after
//! `--dead-after-ms` of silence (5 s), which is what a stopped (hung) process
//! gets. A killed one is told apart sooner: its host refuses connections to
//! its port. The leader tries to connect to every server that missed a
//! heartbeat; a refusal takes it off the live ring at once and wakes the
//! healer. Sooner still, the leader holds a presence stream open to every
//! live server: a killed process's kernel closes that connection, and the
//! leader probes the moment it drops (MooseFS notices a dropped chunkserver
//! connection the same way, within milliseconds).

use crate::cluster::Cluster;
use crate::fsm::model::ServerState;
use crate::fsm::read;
use crate::store::state_machine::Raft;
use rocksdb::DB;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_proto::pb::chunk_client::ChunkClient;
use tessera_proto::pb::Empty;

/// How often silent servers are probed.
const EVERY: Duration = Duration::from_millis(250);
/// A probe's connect attempt gives up after this (a refusal is immediate).
const CONNECT_LIMIT: Duration = Duration::from_millis(500);

/// On the leader: probes servers silent for longer than `suspect_after`.
pub async fn probe_silent_servers(raft: Raft, db: Arc<DB>, cluster: Arc<Cluster>, suspect_after: Duration) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !raft.is_leader() {
            continue;
        }
        let Ok(servers) = read::servers(&db) else { continue };
        for s in servers.into_iter().filter(|s| s.state == ServerState::Alive) {
            let silent = cluster.silent_for(&s.id);
            if silent <= suspect_after || silent >= cluster.dead_after {
                continue;
            }
            let cluster = cluster.clone();
            tokio::spawn(async move {
                // Heard from meanwhile (a restart): alive after all.
                if refuses(&s.addr).await && cluster.silent_for(&s.id) > suspect_after {
                    tracing::warn!(server = %s.id, addr = %s.addr, "chunkserver refuses connections: dead");
                    cluster.refused(&s.id, &s.addr);
                }
            });
        }
    }
}

/// True if `addr`'s host refuses a connection to it (nothing listens there).
async fn refuses(addr: &str) -> bool {
    match tokio::time::timeout(CONNECT_LIMIT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

/// A presence stream that ended is not reopened sooner than this (a server
/// that refuses is dead by then; one that answers got a fresh stream).
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// On the leader: one presence stream per live server. When one ends (the
/// server's connection dropped), its address is probed at once; a refusal
/// takes the server off the ring. A hung server keeps its connection open
/// and is left to the heartbeat timeout.
pub async fn watch_presence(raft: Raft, db: Arc<DB>, cluster: Arc<Cluster>) {
    let mut watchers: HashMap<String, (String, tokio::task::JoinHandle<()>)> = HashMap::new();
    let mut ended: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let servers = match raft.is_leader().then(|| read::servers(&db)) {
            Some(Ok(s)) => s,
            _ => {
                watchers.drain().for_each(|(_, (_, h))| h.abort());
                continue;
            }
        };
        let live: HashMap<String, String> =
            servers.into_iter().filter(|s| s.state == ServerState::Alive).map(|s| (s.id, s.addr)).collect();
        // Streams of servers gone from the live ring (or moved) close.
        watchers.retain(|id, (addr, h)| {
            let keep = live.get(id) == Some(addr) && !h.is_finished();
            if !keep {
                if h.is_finished() {
                    ended.insert(id.clone(), Instant::now());
                }
                h.abort();
            }
            keep
        });
        ended.retain(|_, at| at.elapsed() < REOPEN_AFTER);
        for (id, addr) in live {
            if watchers.contains_key(&id) || ended.contains_key(&id) {
                continue;
            }
            let h = tokio::spawn(hold_presence(id.clone(), addr.clone(), raft.clone(), cluster.clone()));
            watchers.insert(id, (addr, h));
        }
    }
}

/// Holds one server's presence stream until it ends, then probes.
async fn hold_presence(id: String, addr: String, raft: Raft, cluster: Arc<Cluster>) {
    if let Ok(ch) = tessera_rpc::pool().channel(&addr, tessera_rpc::Profile::Control, tessera_rpc::Role::Chunkserver) {
        let mut c = ChunkClient::new(ch);
        if let Ok(Ok(r)) = tokio::time::timeout(CONNECT_LIMIT, c.presence(Empty {})).await {
            let mut stream = r.into_inner();
            while let Ok(Some(_)) = stream.message().await {}
        }
    }
    // Refusing now means nothing listens now; if it comes back, its next
    // heartbeat puts it on the ring again.
    if raft.is_leader() && refuses(&addr).await {
        tracing::warn!(server = %id, addr = %addr, "chunkserver's connection dropped and it refuses connections: dead");
        cluster.refused(&id, &addr);
    }
}
