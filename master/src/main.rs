use clap::Parser;
use std::time::Duration;

/// Tessera master: one member of the Raft group holding the namespace.
#[derive(Parser, Debug)]
#[command(name = "tessera-master", version, args_override_self = true)]
struct Args {
    /// This master's Raft node id (1, 2, 3, ...).
    #[arg(long)]
    id: u64,
    /// Address to listen on: the metadata, operators' and chunkservers'
    /// services (and Raft, without --raft-listen).
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: std::net::SocketAddr,
    /// Address clients, chunkservers and operators use (default: --listen).
    #[arg(long)]
    advertise: Option<String>,
    /// Serve Raft on this address of its own, which admits master
    /// certificates only (as etcd's peer port): firewall it to the masters.
    /// Without it, Raft is served on --listen.
    #[arg(long)]
    raft_listen: Option<std::net::SocketAddr>,
    /// Address the peers send Raft messages to (default: --raft-listen).
    #[arg(long)]
    raft_advertise: Option<String>,
    /// Directory for the RocksDB log and state machine.
    #[arg(long)]
    data_dir: std::path::PathBuf,
    /// Initial voters as ID=ADDR,... (this node included); ID=ADDR/RAFT_ADDR
    /// for a master with a Raft listener (--raft-listen).
    #[arg(long)]
    peers: Option<String>,
    /// Declare a chunkserver dead after this many milliseconds of silence.
    #[arg(long, default_value_t = 5000)]
    dead_after_ms: u64,
    /// Raft election timeout (minimum) in milliseconds; the maximum is twice
    /// this, and so is openraft's leader lease: a follower starts an
    /// election once the lease and then its timeout have passed without a
    /// heartbeat (0.9-1.2 s by default, like etcd's 1 s).
    #[arg(long, default_value_t = 300)]
    election_timeout_ms: u64,
    /// Milliseconds between repair/rebalance/GC passes of the leader.
    #[arg(long, default_value_t = 2000)]
    repair_interval_ms: u64,
    /// Repair copies at once per chunkserver.
    #[arg(long, default_value_t = 12)]
    copies_per_server: usize,
    /// Seconds before an unreferenced chunk (deleted file, abandoned upload) is deleted.
    #[arg(long, default_value_t = 600)]
    gc_grace_s: u64,
    /// Seconds after which a file kept open without a name (unlinked while
    /// open) is freed even if its mount never released it (the mount died).
    #[arg(long, default_value_t = 86_400)]
    orphan_file_max_age_s: u64,
    /// Seconds after which a commit a mount sent before its chunks were
    /// durable is settled: kept if every chunk has a holder, else the file
    /// is emptied (its writer died mid-upload). At least 30: mounts give up
    /// on such an upload after 15.
    #[arg(long, default_value_t = 120)]
    unsealed_grace_s: u64,
    /// Join an existing group: start empty and wait for
    /// `tessera admin master add ID ADDR` (never forms a group of its own).
    #[arg(long)]
    join: bool,
    /// Take a snapshot (and compact the log) every this many entries. A
    /// snapshot writes the whole namespace, so it is spaced out (as etcd's
    /// 100,000) to keep its cost small per operation.
    #[arg(long, default_value_t = 100_000)]
    snapshot_logs: u64,
    /// RocksDB memory in MiB: block cache, with memtables and index blocks
    /// charged to it (bounds the master's footprint whatever the file count).
    #[arg(long, default_value_t = 128)]
    cache_mb: usize,
    /// How Raft appends are made durable: the segment journal (default), or
    /// RocksDB's WAL fsynced per append (kept for same-run comparisons:
    /// bench/raft_log_ab.sh).
    #[arg(long, value_enum, env = "TESSERA_RAFT_LOG_SYNC", default_value = "journal")]
    raft_log_sync: tessera_master::store::log_store::LogSync,
    /// Copies a chunk write needs durable before it is acknowledged when
    /// ring owners are down (the rest are topped up by repair). 1..=3.
    #[arg(long, default_value_t = tessera_proto::DEFAULT_MIN_REPLICAS as u32,
          value_parser = clap::value_parser!(u32).range(1..=tessera_proto::REPLICATION as i64))]
    min_replicas: u32,
    /// Milliseconds a mount's advisory locks outlive its last renewal (a
    /// live mount renews every 2 s; a dead one's locks go after this).
    #[arg(long, default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(6_000..))]
    lock_lease_ms: u64,
    /// Milliseconds a mount's cache lease runs past its last renewal (a
    /// mount renews every quarter of it). A change waits at most about this
    /// long on a mount that stopped answering, and a new leader holds
    /// changes' acknowledgements after its election only for what 0.9 x
    /// this + 100 ms exceeds twice the election timeout (see
    /// leases::hold_after_election): none with the defaults.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(200..=60_000))]
    cache_lease_ms: u64,
    /// Seconds a chunk access token is good for (a reader or writer gets a
    /// new one from the masters as it runs out).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    chunk_token_ttl_s: u64,
    /// Hours between new chunk token signing keys (the one before stays
    /// good until tokens signed with it expire).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..))]
    chunk_token_key_hours: u64,
    /// Below this many MiB free on the data directory's disk, the leader
    /// refuses changes that add to the namespace (ENOSPC; reads, unlinks,
    /// renames and locks go on).
    #[arg(long, default_value_t = 256)]
    min_free_mb: u64,
    /// Serve the web console (cluster overview, repair, namespace browser)
    /// on this address; read-only and unauthenticated: keep it on loopback
    /// or a trusted network.
    #[arg(long)]
    console_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    common: tessera_util::process::CommonArgs,
    #[command(flatten)]
    tls: tessera_rpc::tls::TlsArgs,
}

#[tokio::main]
async fn main() {
    let a: Args = tessera_util::config::parse();
    a.common.start("tessera-master", "info,openraft=warn", &a);
    if let Err(e) = a.tls.install(&[tessera_rpc::Role::Master]) {
        eprintln!("tessera-master: {e}");
        std::process::exit(2);
    }
    let advertise = a.advertise.unwrap_or_else(|| a.listen.to_string());
    if a.raft_advertise.is_some() && a.raft_listen.is_none() {
        eprintln!("tessera-master: --raft-advertise needs --raft-listen");
        std::process::exit(2);
    }
    let raft_advertise = a.raft_advertise.or_else(|| a.raft_listen.map(|r| r.to_string()));
    let own = tessera_master::raft::node_addr::NodeAddr { service: advertise.clone(), raft: raft_advertise };
    let peers = match a.peers.as_deref() {
        Some(p) => match tessera_master::parse_peers(p) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("tessera-master: --peers: {e}");
                std::process::exit(2);
            }
        },
        None => [(a.id, own.encode())].into_iter().collect(),
    };
    if !peers.contains_key(&a.id) {
        eprintln!("tessera-master: --peers must include this node's id {}", a.id);
        std::process::exit(2);
    }
    // Peers send Raft where --peers says: to a Raft listener exactly when
    // this master has one.
    let listed = tessera_master::raft::node_addr::NodeAddr::parse(&peers[&a.id]);
    if listed.raft.is_some() != a.raft_listen.is_some() {
        eprintln!(
            "tessera-master: --peers lists this node as {:?}: {} with --raft-listen",
            peers[&a.id],
            if a.raft_listen.is_some() { "give its Raft address (ID=ADDR/RAFT_ADDR)" } else { "a Raft address needs" }
        );
        std::process::exit(2);
    }
    let cfg = tessera_master::Config {
        id: a.id,
        listen: a.listen,
        raft_listen: a.raft_listen,
        raft_advertise: own.raft.clone(),
        advertise,
        data_dir: a.data_dir,
        peers,
        dead_after: Duration::from_millis(a.dead_after_ms),
        election_timeout_ms: a.election_timeout_ms,
        snapshot_logs: a.snapshot_logs,
        cache_bytes: a.cache_mb.max(8) << 20,
        log_sync: a.raft_log_sync,
        join: a.join,
        min_replicas: a.min_replicas,
        chunk_token_ttl: Duration::from_secs(a.chunk_token_ttl_s),
        chunk_token_key_rotation: Duration::from_secs(a.chunk_token_key_hours * 3600),
        lock_lease: Duration::from_millis(a.lock_lease_ms),
        cache_lease: Duration::from_millis(a.cache_lease_ms),
        min_free: a.min_free_mb << 20,
        console_listen: a.console_listen,
        healer: tessera_master::healer::HealerConfig {
            interval: Duration::from_millis(a.repair_interval_ms),
            copies_per_server: a.copies_per_server.max(1),
            gc_grace: Duration::from_secs(a.gc_grace_s),
            orphan_file_max_age: Duration::from_secs(a.orphan_file_max_age_s),
            unsealed_grace: Duration::from_secs(a.unsealed_grace_s).max(2 * tessera_proto::UNSEALED_UPLOAD_LIMIT),
        },
    };
    if let Err(e) = tessera_master::run(cfg).await {
        eprintln!("tessera-master: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    /// Every flag can come from `--config FILE` (deploy/ has an example).
    #[test]
    fn every_flag_can_be_set_in_a_config_file() {
        use tessera_util::config::{assert_every_flag_settable, SAMPLE_VALUES};
        assert_every_flag_settable::<super::Args>(&[], SAMPLE_VALUES);
    }
}
