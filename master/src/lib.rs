//! Tessera master: the Raft-replicated metadata service.

pub mod admin_service;
pub mod chunk_tokens;
pub mod chunkserver_service;
pub mod cluster;
pub mod codec;
pub mod console;
pub mod convert;
#[cfg(test)]
mod decoder_fuzz;
pub mod disk_guard;
pub mod error;
mod exported;
pub mod fsm;
pub mod healer;
pub mod lease_scope;
pub mod leases;
pub mod liveness;
mod meta_create;
mod meta_locks;
mod meta_remove;
pub mod meta_service;
mod meta_status;
mod meta_watch;
pub mod raft;
pub mod store;
pub mod types;
pub mod values;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use error::MasterError;

pub struct Config {
    pub id: u64,
    pub listen: SocketAddr,
    pub advertise: String,
    /// Raft's own listener, which admits master certificates only; None:
    /// Raft is served on `listen` (how masters ran before it existed).
    pub raft_listen: Option<SocketAddr>,
    /// Where the peers reach `raft_listen`.
    pub raft_advertise: Option<String>,
    pub data_dir: PathBuf,
    /// The initial voters: id -> address (this node included).
    pub peers: BTreeMap<u64, String>,
    pub dead_after: Duration,
    pub election_timeout_ms: u64,
    pub snapshot_logs: u64,
    /// RocksDB memory (block cache, with memtables and index blocks in it).
    pub cache_bytes: usize,
    /// How Raft appends are made durable (the journal unless measuring).
    pub log_sync: store::log_store::LogSync,
    /// Start empty and wait to be added (`tessera admin master add`).
    pub join: bool,
    pub healer: healer::HealerConfig,
    /// Copies a chunk write needs durable before it is acknowledged while
    /// ring owners are down (clients learn it with the ring).
    pub min_replicas: u32,
    /// How long a chunk access token is good for.
    pub chunk_token_ttl: Duration,
    /// How often the leader makes a new chunk token signing key.
    pub chunk_token_key_rotation: Duration,
    /// How long a mount's locks outlive its last renewal.
    pub lock_lease: Duration,
    /// How long a mount's cache lease runs past its last renewal (and so
    /// the longest a change waits on a mount that stopped answering).
    pub cache_lease: Duration,
    /// Free bytes on the data directory's disk under which changes that
    /// add to the namespace are refused.
    pub min_free: u64,
    /// Where to serve the web console (none: not served).
    pub console_listen: Option<SocketAddr>,
}

pub fn parse_peers(s: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut m = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').ok_or_else(|| format!("peer {part:?} is not ID=ADDR"))?;
        let id: u64 = id.parse().map_err(|_| format!("peer id {id:?} is not a number"))?;
        if id == 0 {
            return Err("peer ids start at 1".into());
        }
        m.insert(id, addr.to_string());
    }
    Ok(m)
}

/// What an empty master learns from its peers about an existing group.
struct ExistingGroup {
    peer: String,
    i_am_voter: bool,
}

/// Asks the peers whether a group already runs. A master whose data
/// directory is empty must not vote in a group it belonged to (it forgot
/// its votes and its log) nor found a second group beside it.
///
/// One exception: in the first term of a brand-new group whose leader has
/// never seen this master acknowledge an append, it holds nothing to lose.
/// That is a cluster whose first master formed the group before this one
/// started (every master of `tessera up` starting at once). Later terms do
/// not count: a new leader has not heard from anyone yet.
async fn probe_existing_group(cfg: &Config) -> Option<ExistingGroup> {
    // A voter waits a little for a leader's answer: a group just formed
    // may still be electing.
    let mut found = None;
    for attempt in 0..10 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let replies = peer_statuses(cfg).await;
        let (peer, _) = replies.iter().find(|(_, r)| !r.members.is_empty())?;
        let leader = replies.iter().find(|(_, r)| r.master.as_ref().is_some_and(|m| m.id == r.leader_id));
        let voter = replies.iter().any(|(_, r)| r.voter_ids.contains(&cfg.id));
        found = Some(ExistingGroup { peer: peer.clone(), i_am_voter: voter });
        match leader {
            Some((peer, r)) => {
                let first_term = r.master.as_ref().is_some_and(|m| m.term == 1);
                let new_member = first_term && r.never_acked_ids.contains(&cfg.id);
                return Some(ExistingGroup { peer: peer.clone(), i_am_voter: voter && !new_member });
            }
            None if !voter => return found,
            None => {}
        }
    }
    found
}

/// NodeStatus of every other peer that answers within 2 s, asked at once
/// (a down peer costs its timeout once, not once per peer).
async fn peer_statuses(cfg: &Config) -> Vec<(String, tessera_proto::pb::NodeStatusReply)> {
    use tessera_proto::pb::{meta_client::MetaClient, Empty};
    let asks = cfg.peers.iter().filter(|(id, _)| **id != cfg.id).map(|(_, addr)| async move {
        let addr = raft::node_addr::NodeAddr::parse(addr).service;
        let ch = tessera_rpc::pool().channel(&addr, tessera_rpc::Profile::Control, tessera_rpc::Role::Master).ok()?;
        let r = tokio::time::timeout(Duration::from_secs(2), MetaClient::new(ch).node_status(Empty {})).await;
        Some((addr, r.ok()?.ok()?.into_inner()))
    });
    futures::future::join_all(asks).await.into_iter().flatten().collect()
}

pub async fn run(cfg: Config) -> Result<(), MasterError> {
    let fresh = !cfg.data_dir.join("db").exists();
    let existing = if fresh { probe_existing_group(&cfg).await } else { None };
    if let Some(g) = &existing {
        if g.i_am_voter {
            return Err(MasterError::Config(format!(
                "data directory {} is empty, but master {} is a voter of the group at {}: its state was lost. \
                 Remove it (`tessera admin master remove {}`), then start it with --join and add it back \
                 (`tessera admin master add {} {}{}`); it is rebuilt from its peers.",
                cfg.data_dir.display(),
                cfg.id,
                g.peer,
                cfg.id,
                cfg.id,
                cfg.advertise,
                cfg.peers
                    .get(&cfg.id)
                    .and_then(|p| raft::node_addr::NodeAddr::parse(p).raft)
                    .map_or(String::new(), |r| format!(" --raft-addr {r}"))
            )));
        }
        tracing::warn!(peer = %g.peer, "a group already exists: joining it (or waiting to be added) instead of forming one");
    }
    let started = std::time::Instant::now();
    std::fs::create_dir_all(&cfg.data_dir)?;
    let wal = cfg.log_sync == store::log_store::LogSync::RocksdbWal;
    let db = store::open_db_tuned(&cfg.data_dir.join("db"), cfg.cache_bytes, wal)?;
    let log_store =
        store::log_store::LogStore::open_with(db.clone(), &cfg.data_dir.join("raft-journal"), cfg.log_sync)?;
    let sm = store::state_machine::StateMachine::new(db.clone(), cfg.data_dir.join("snapshots"))?;
    let raft_cfg = openraft::Config {
        cluster_name: "tessera".into(),
        heartbeat_interval: (cfg.election_timeout_ms / 5).max(50),
        election_timeout_min: cfg.election_timeout_ms,
        election_timeout_max: cfg.election_timeout_ms * 2,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.snapshot_logs),
        max_in_snapshot_log_to_keep: 1000,
        ..Default::default()
    };
    let raft_cfg = Arc::new(raft_cfg.validate().map_err(|e| MasterError::Config(e.to_string()))?);
    if !fresh {
        // Restarted: a vote this master gave before may be what keeps a
        // new leader from ending a lease a mount still trusts, and that
        // vote's lease was lost with the process (leases::hold_after_election).
        let wait = leases::restart_quarantine(cfg.cache_lease).saturating_sub(started.elapsed());
        if !wait.is_zero() {
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "restarted: waiting out mounts' cache leases before joining Raft"
            );
            tokio::time::sleep(wait).await;
        }
    }
    let raft = openraft::Raft::new(cfg.id, raft_cfg, raft::network::Network, log_store, sm)
        .await
        .map_err(|e| MasterError::Raft(e.to_string()))?;

    // The lowest-numbered peer forms the group on first boot; everyone else
    // (and every later boot) just joins what is already in the log.
    if !cfg.join
        && existing.is_none()
        && !raft.is_initialized().await.map_err(|e| MasterError::Raft(e.to_string()))?
        && cfg.peers.keys().next() == Some(&cfg.id)
    {
        let members: BTreeMap<u64, openraft::BasicNode> =
            cfg.peers.iter().map(|(id, a)| (*id, openraft::BasicNode { addr: a.clone() })).collect();
        match raft.initialize(members).await {
            Ok(()) => tracing::info!(peers = ?cfg.peers, "initialized raft group"),
            Err(e) => tracing::warn!(error = %e, "initialize skipped"),
        }
    }

    tokio::spawn(return_freed_memory());
    let cluster = Arc::new(cluster::Cluster::new(cfg.dead_after));
    let repair = Arc::new(parking_lot::Mutex::new(Default::default()));
    tokio::spawn(exported::sample(raft.clone(), db.clone(), cluster.clone(), repair.clone()));
    tokio::spawn(
        healer::Healer::new(raft.clone(), db.clone(), cluster.clone(), cfg.healer.clone(), repair.clone()).run(),
    );
    tokio::spawn(expire_lock_sessions(raft.clone(), db.clone()));
    tokio::spawn(admin_service::load_revocations(db.clone()));
    let leader_lease = Duration::from_millis(cfg.election_timeout_ms * 2);
    let leases = Arc::new(leases::Leases::new(cfg.cache_lease, leader_lease));
    tokio::spawn(on_leadership_change(raft.clone(), cluster.clone(), leases.clone(), cfg.id));
    // A heartbeat is 1 s apart by default: one and a half missed is a
    // reason to look, not a verdict.
    let suspect_after = (cfg.dead_after / 4).clamp(Duration::from_millis(600), Duration::from_millis(1500));
    tokio::spawn(liveness::probe_silent_servers(raft.clone(), db.clone(), cluster.clone(), suspect_after));
    tokio::spawn(liveness::watch_presence(raft.clone(), db.clone(), cluster.clone()));
    let disk = Arc::new(disk_guard::DiskGuard::new(cfg.data_dir.clone(), cfg.min_free));
    tokio::spawn(disk_guard::watch_peers(raft.clone(), disk.clone(), cfg.id));
    let meta = meta_service::MetaService {
        raft: raft.clone(),
        db: db.clone(),
        cluster,
        lock_lease: cfg.lock_lease,
        repair,
        node_id: cfg.id,
        addr: cfg.advertise.clone(),
        raft_addr: cfg.raft_advertise.clone(),
        min_replicas: cfg.min_replicas,
        chunk_token_ttl_s: cfg.chunk_token_ttl.as_secs().max(1),
        leases,
        disk: disk.clone(),
    };
    let meta = Arc::new(meta);
    tokio::spawn(chunk_tokens::keep_keys(meta.clone(), cfg.chunk_token_key_rotation));
    if let Some(addr) = cfg.console_listen {
        let m = meta.clone();
        tokio::spawn(async move {
            if let Err(e) = console::serve(addr, m).await {
                tracing::error!(%addr, error = %e, "web console not served");
            }
        });
    }
    let admin = tessera_proto::pb::admin_server::AdminServer::new(admin_service::AdminService { meta: meta.clone() });
    let control = tessera_proto::pb::chunkserver_control_server::ChunkserverControlServer::new(
        chunkserver_service::ChunkserverControlService { meta: meta.clone() },
    )
    .max_decoding_message_size(tessera_proto::GRPC_MAX_MESSAGE);
    let meta = tessera_proto::pb::meta_server::MetaServer::from_arc(meta)
        .max_decoding_message_size(tessera_proto::GRPC_MAX_MESSAGE)
        .max_encoding_message_size(tessera_proto::GRPC_MAX_MESSAGE);
    let raft_svc = tessera_proto::pb::raft_server::RaftServer::new(raft::service::RaftService {
        raft: raft.clone(),
        snapshot_dir: cfg.data_dir.join("snapshots"),
    })
    .max_decoding_message_size(1 << 30)
    .max_encoding_message_size(1 << 30);
    let incoming = tessera_rpc::listen::incoming(cfg.listen)
        .await
        .map_err(|e| MasterError::Config(format!("listening on {}: {e}", cfg.listen)))?;
    let raft_incoming = match cfg.raft_listen {
        Some(a) => Some(
            tessera_rpc::listen::incoming_admitting(a, Some(tessera_rpc::Role::Master))
                .await
                .map_err(|e| MasterError::Config(format!("listening for Raft on {a}: {e}")))?,
        ),
        None => None,
    };
    tracing::info!(id = cfg.id, listen = %cfg.listen, raft_listen = ?cfg.raft_listen, "master serving");
    let (raft_svc, raft_server) = match raft_incoming {
        // Raft on its own listener: the service port does not serve it.
        Some(incoming) => (None, Some((raft_svc, incoming))),
        None => (Some(raft_svc), None),
    };
    let raft_server = raft_server.map(|(svc, incoming)| {
        tokio::spawn(tessera_rpc::shutdown::serve_until_signal(move |signal| {
            tessera_rpc::server::server()
                .layer(tessera_rpc::metrics::RpcMetricsLayer)
                .layer(tessera_rpc::authz::AuthzLayer)
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, signal)
        }))
    });
    tessera_rpc::shutdown::serve_until_signal(|signal| {
        tessera_rpc::server::server()
            .layer(tessera_rpc::metrics::RpcMetricsLayer)
            .layer(tessera_rpc::authz::AuthzLayer)
            .layer(lease_scope::SessionLayer)
            .add_service(meta)
            .add_service(admin)
            .add_service(control)
            .add_optional_service(raft_svc)
            .serve_with_incoming_shutdown(incoming, signal)
    })
    .await?;
    if let Some(s) = raft_server {
        s.abort();
    }
    tracing::info!("master stopping");
    let _ = raft.shutdown().await;
    db.flush_wal(true)?;
    Ok(())
}

/// The moment this master becomes leader, what it knew of chunkserver
/// liveness is stale (heartbeats go to the leader only): it starts afresh,
/// giving every server the benefit of the doubt for one dead timeout, so
/// writers never see "0 live chunkservers" right after an election. Cache
/// leases start afresh on every change of leader or term (leases.rs).
async fn on_leadership_change(
    raft: store::state_machine::Raft,
    cluster: Arc<cluster::Cluster>,
    leases: Arc<leases::Leases>,
    me: u64,
) {
    use openraft::async_runtime::WatchReceiver;
    let mut metrics = raft.metrics();
    let mut was: Option<u64> = None;
    loop {
        let (leader, term) = {
            let m = metrics.borrow_and_update();
            (m.current_leader == Some(me), m.current_term)
        };
        let now = leader.then_some(term);
        if now != was {
            if leader && was.is_none() {
                cluster.reset();
            }
            leases.leadership(leader);
        }
        was = now;
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// On the leader, every second: ends lock sessions whose lease ran out
/// (their mount died or was cut off), which releases their locks.
async fn expire_lock_sessions(raft: store::state_machine::Raft, db: Arc<rocksdb::DB>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if !raft.is_leader() {
            continue;
        }
        let now = tessera_proto::time::now();
        let sessions = match fsm::read::expired_sessions(&db, (now.sec, now.nsec)) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reading lock sessions failed");
                continue;
            }
        };
        tracing::info!(?sessions, "lock sessions expired: releasing their locks");
        let cmd = types::Command {
            cred: types::Cred::root(),
            now: (now.sec, now.nsec),
            op: types::Op::ExpireSessions { sessions },
            request_id: String::new(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), raft.client_write(cmd)).await;
    }
}

/// glibc keeps memory freed by bursts (a snapshot build, a flood of
/// requests) in its arenas, so RSS ratchets up to the largest burst seen
/// (measured: 336 MiB resident, 191 MiB after a trim, at 600,000 files).
/// Handing it back now and then keeps RSS at what the master really uses.
async fn return_freed_memory() {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free heap pages; it has no
        // preconditions and is thread-safe.
        let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
    }
}
