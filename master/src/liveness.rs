//! Fast failure detection. A chunkserver is declared dead after
//! `--dead-after-ms` of silence (5 s), which is what a stopped (hung) process
//! gets. A killed one is told apart sooner: its host refuses connections to
//! its port. The leader tries to connect to every server that missed a
//! heartbeat; a refusal takes it off the live ring at once and wakes the
//! healer (MooseFS notices a dropped chunkserver connection the same way).

use crate::cluster::Cluster;
use crate::fsm::model::ServerState;
use crate::fsm::read;
use crate::store::state_machine::Raft;
use rocksdb::DB;
use std::sync::Arc;
use std::time::Duration;

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
                let refused = match tokio::time::timeout(CONNECT_LIMIT, tokio::net::TcpStream::connect(&s.addr)).await {
                    Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
                    _ => false,
                };
                // Heard from meanwhile (a restart): alive after all.
                if refused && cluster.silent_for(&s.id) > suspect_after {
                    tracing::warn!(server = %s.id, addr = %s.addr, "chunkserver refuses connections: dead");
                    cluster.refused(&s.id, &s.addr);
                }
            });
        }
    }
}
