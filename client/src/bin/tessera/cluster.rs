//! `tessera cluster status`: every master's view, and the chunkservers.

use anyhow::Result;
use tessera_client::{connect, ClientConfig};
use tessera_proto::pb::{Empty, MasterInfo};

#[derive(clap::Subcommand)]
pub enum ClusterCmd {
    /// Masters (role, term, commit index) and chunkservers (liveness, space).
    Status {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cfg: &ClientConfig, cmd: ClusterCmd) -> Result<()> {
    let ClusterCmd::Status { json } = cmd;
    let fs = connect(cfg.clone());
    let mut masters = Vec::new();
    for addr in fs.meta.addrs() {
        let mut c = fs.meta.client_for(addr)?;
        let r = tokio::time::timeout(std::time::Duration::from_secs(3), c.node_status(Empty {})).await;
        masters.push(match r {
            Ok(Ok(r)) => r.into_inner().master.unwrap_or_default(),
            Ok(Err(e)) => MasterInfo { addr: addr.clone(), error: e.message().to_string(), ..Default::default() },
            Err(_) => MasterInfo { addr: addr.clone(), error: "timed out".into(), ..Default::default() },
        });
    }
    let ring = fs.meta.call("get_ring", |mut c| async move { c.get_ring(Empty {}).await }).await?;
    if json {
        let ms: Vec<_> = masters
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.id, "addr": m.addr, "role": m.role, "term": m.term,
                    "commit_index": m.commit_index, "applied_index": m.applied_index,
                    "snapshot_index": m.snapshot_index, "reachable": m.error.is_empty(), "error": m.error,
                    "rss_bytes": m.rss_bytes, "block_cache_bytes": m.block_cache_bytes,
                    "memtable_bytes": m.memtable_bytes, "table_readers_bytes": m.table_readers_bytes,
                    "disk_free_bytes": m.disk_free_bytes, "disk_full": m.disk_full,
                    "insecure": m.insecure,
                })
            })
            .collect();
        let cs: Vec<_> = ring
            .servers
            .iter()
            .map(|s| {
                serde_json::json!({
                    "id": s.id, "addr": s.addr, "alive": s.alive, "capacity": s.capacity,
                    "used": s.used, "free": s.free, "chunk_count": s.chunk_count, "zone": s.zone, "state": s.state,
                })
            })
            .collect();
        let repair = repair_status(&fs).await.map(|r| {
            serde_json::json!({
                "chunks": r.chunks, "under_replicated": r.under_replicated, "missing": r.missing,
                "bytes_to_copy": r.bytes_to_copy, "copies_in_flight": r.copies_in_flight,
                "copy_rate_bps": r.copy_rate_bps, "surplus": r.surplus, "garbage_pending": r.garbage_pending,
                "settled": r.settled, "below_goal": r.below_goal,
                "collection_records": r.collection_records,
            })
        });
        let all = serde_json::json!({
            "masters": ms, "chunkservers": cs, "repair": repair,
            "replication": ring.replication, "min_replicas": ring.min_replicas,
        });
        outln!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    outln!("MASTERS");
    outln!(
        "{:<4} {:<22} {:<10} {:>6} {:>10} {:>10} {:>10} {:>8} {:>10}",
        "ID",
        "ADDRESS",
        "ROLE",
        "TERM",
        "COMMIT",
        "APPLIED",
        "SNAPSHOT",
        "RSS",
        "DISK FREE"
    );
    for m in &masters {
        if m.error.is_empty() {
            outln!(
                "{:<4} {:<22} {:<10} {:>6} {:>10} {:>10} {:>10} {:>8} {:>10}{}",
                m.id,
                m.addr,
                m.role,
                m.term,
                m.commit_index,
                m.applied_index,
                m.snapshot_index,
                crate::out::size(m.rss_bytes),
                crate::out::size(m.disk_free_bytes),
                if m.disk_full { "  DISK NEARLY FULL: refusing creates and writes" } else { "" },
            );
            if m.insecure {
                outln!("     INSECURE: master {} runs --insecure (plaintext, no authentication)", m.id);
            }
        } else {
            outln!("{:<4} {:<22} unreachable: {}", "-", m.addr, m.error);
        }
    }
    outln!(
        "CHUNKSERVERS (replication {}, writes acknowledged at {} copies when servers are down)",
        ring.replication,
        ring.min_replicas
    );
    outln!("{:<10} {:<22} {:<6} {:>14} {:>14} {:>8}", "ID", "ADDRESS", "ALIVE", "CAPACITY", "USED", "CHUNKS");
    for s in &ring.servers {
        outln!(
            "{:<10} {:<22} {:<6} {:>14} {:>14} {:>8}",
            s.id,
            s.addr,
            s.alive,
            crate::out::size(s.capacity),
            crate::out::size(s.used),
            s.chunk_count
        );
    }
    if let Some(r) = repair_status(&fs).await {
        outln!("REPAIR");
        outln!(
            "{} chunks, {} below {} copies, {} under-replicated, {} missing, {} to copy, {} copies in flight, {:.1} MB/s, ETA {}, {} surplus, {} garbage pending",
            r.chunks,
            r.below_goal,
            ring.replication,
            r.under_replicated,
            r.missing,
            crate::out::size(r.bytes_to_copy),
            r.copies_in_flight,
            r.copy_rate_bps / 1e6,
            eta(&r),
            r.surplus,
            r.garbage_pending
        );
    }
    Ok(())
}

/// The leader's repair progress, if a leader answers.
pub async fn repair_status(fs: &tessera_client::Fs) -> Option<tessera_proto::pb::RepairStatus> {
    let r = fs.meta.call("node_status", |mut c| async move { c.node_status(Empty {}).await }).await.ok()?;
    if r.repair.is_some() {
        return r.repair;
    }
    // Not the leader: ask the leader directly.
    let mut c = fs.meta.client_for(&r.leader_addr).ok()?;
    c.node_status(Empty {}).await.ok()?.into_inner().repair
}

pub fn eta(r: &tessera_proto::pb::RepairStatus) -> String {
    if r.bytes_to_copy == 0 {
        "done".into()
    } else if r.copy_rate_bps <= 0.0 {
        "unknown".into()
    } else {
        format!("{:.0}s", r.bytes_to_copy as f64 / r.copy_rate_bps)
    }
}
