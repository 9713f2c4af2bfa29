//! `tessera admin ...` and `tessera fsck`.

use anyhow::{bail, Result};
use bytes::Bytes;
use tessera_client::path::join;
use tessera_client::{connect, ClientConfig, Fs};
use tessera_proto::pb::{ChunkLocationsRequest, ChunkserverStateRequest, Empty, FileKind};

#[derive(clap::Subcommand)]
pub enum AdminCmd {
    /// Chunkserver membership.
    Chunkserver {
        #[command(subcommand)]
        cmd: ChunkserverCmd,
    },
    /// Master (Raft group) membership.
    Master {
        #[command(subcommand)]
        cmd: MasterCmd,
    },
    /// The cluster CA and certificates (works on files; connects to nothing).
    Cert {
        #[command(subcommand)]
        cmd: crate::cert::CertCmd,
    },
    /// Revoke a certificate: every master and chunkserver refuses its
    /// holder from then on (within a second or two), open connections too.
    Revoke {
        /// The certificate: its cert.pem, or the directory holding it.
        #[arg(required_unless_present = "serial")]
        cert: Option<std::path::PathBuf>,
        /// Or its serial number (lowercase hex, as `revoked` lists it).
        #[arg(long, conflicts_with = "cert")]
        serial: Option<String>,
    },
    /// The revoked certificates.
    Revoked {
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
}

async fn revoke(fs: &Fs, cert: Option<std::path::PathBuf>, serial: Option<String>) -> Result<()> {
    use tessera_proto::pb::RevokeCertificateRequest;
    let (serial, name) = match (cert, serial) {
        (Some(path), _) => {
            let id = tessera_rpc::certs::identity_of_pem_file(&path)?;
            (id.serial, format!("{}/{}", id.name, id.role))
        }
        (None, Some(s)) => (s.to_ascii_lowercase(), String::new()),
        (None, None) => bail!("name a certificate file or --serial"),
    };
    let req = RevokeCertificateRequest { serial: serial.clone(), name: name.clone() };
    fs.meta
        .admin("revoke_certificate", |mut c| {
            let r = req.clone();
            async move { c.revoke_certificate(r).await }
        })
        .await?;
    outln!("certificate {serial} {name} revoked");
    Ok(())
}

async fn revoked(fs: &Fs, json: bool) -> Result<()> {
    let r = fs.meta.admin("list_revoked", |mut c| async move { c.list_revoked(Empty {}).await }).await?;
    if json {
        let v: Vec<_> = r
            .certificates
            .iter()
            .map(|c| serde_json::json!({"serial": c.serial, "name": c.name, "at": c.at.as_ref().map(|t| t.sec)}))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    outln!("{:<42} {:<26} REVOKED AT (unix s)", "SERIAL", "NAME");
    for c in r.certificates {
        outln!("{:<42} {:<26} {}", c.serial, c.name, c.at.map_or(0, |t| t.sec));
    }
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum MasterCmd {
    /// Members of the group, as the leader sees them.
    List,
    /// Add a master (started with --join): learner first, then voter.
    Add {
        id: u64,
        /// Its service address (its --advertise, or --listen).
        addr: String,
        /// Its Raft address, when it serves Raft on a listener of its own
        /// (its --raft-advertise, or --raft-listen).
        #[arg(long)]
        raft_addr: Option<String>,
    },
    /// Remove a master from the group.
    Remove { id: u64 },
}

async fn master(cfg: &ClientConfig, fs: &Fs, cmd: MasterCmd) -> Result<()> {
    use tessera_proto::pb::{AddMasterRequest, RemoveMasterRequest};
    match cmd {
        MasterCmd::List => {
            // The master asked may not know the leader yet (just elected,
            // or just added): ask again, within the client's timeout.
            let deadline = tokio::time::Instant::now() + cfg.meta.total_timeout;
            let r = loop {
                let r = fs.meta.call("node_status", |mut c| async move { c.node_status(Empty {}).await }).await?;
                if !r.leader_addr.is_empty() || tokio::time::Instant::now() >= deadline {
                    break r;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            };
            if r.leader_addr.is_empty() {
                bail!("no master knows a leader");
            }
            let mut c = fs.meta.client_for(&r.leader_addr)?;
            let leader = c.node_status(Empty {}).await?.into_inner();
            outln!("{:<4} {:<22} {:<22} ROLE", "ID", "ADDRESS", "RAFT");
            for m in leader.members {
                let role = if m.id == leader.leader_id {
                    "leader"
                } else if leader.voter_ids.contains(&m.id) {
                    "voter"
                } else {
                    "learner"
                };
                let raft = if m.raft_addr.is_empty() { "(same)" } else { &m.raft_addr };
                outln!("{:<4} {:<22} {:<22} {role}", m.id, m.addr, raft);
            }
        }
        MasterCmd::Add { id, addr, raft_addr } => {
            let req = AddMasterRequest { id, addr, raft_addr: raft_addr.unwrap_or_default() };
            fs.meta
                .admin("add_master", |mut c| {
                    let r = req.clone();
                    async move { c.add_master(r).await }
                })
                .await?;
            outln!("master {id} added");
        }
        MasterCmd::Remove { id } => {
            let req = RemoveMasterRequest { id };
            fs.meta.admin("remove_master", |mut c| async move { c.remove_master(req).await }).await?;
            outln!("master {id} removed");
        }
    }
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum ChunkserverCmd {
    /// Every registered chunkserver with its ring state.
    List {
        /// One JSON array, exact numbers.
        #[arg(long)]
        json: bool,
    },
    /// Move a chunkserver's data to the other servers before it leaves.
    Drain { id: String },
    /// Put a drained (or draining) chunkserver back on the ring.
    Undrain { id: String },
}

pub async fn admin(cfg: &ClientConfig, cmd: AdminCmd) -> Result<()> {
    let fs = connect(cfg.clone());
    let cmd = match cmd {
        AdminCmd::Master { cmd } => return master(cfg, &fs, cmd).await,
        AdminCmd::Cert { cmd } => return crate::cert::run(cmd),
        AdminCmd::Revoke { cert, serial } => return revoke(&fs, cert, serial).await,
        AdminCmd::Revoked { json } => return revoked(&fs, json).await,
        AdminCmd::Chunkserver { cmd } => cmd,
    };
    let set = |id: String, state: &str| {
        let req = ChunkserverStateRequest { id, state: state.to_string() };
        let meta = fs.meta.clone();
        async move {
            meta.admin("set_chunkserver_state", |mut c| {
                let r = req.clone();
                async move { c.set_chunkserver_state(r).await }
            })
            .await
        }
    };
    match cmd {
        ChunkserverCmd::List { json } => {
            let ring = fs.meta.call("get_ring", |mut c| async move { c.get_ring(Empty {}).await }).await?;
            if json {
                let v: Vec<_> = ring
                    .servers
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "id": s.id, "addr": s.addr, "state": s.state, "alive": s.alive, "zone": s.zone,
                            "capacity": s.capacity, "used": s.used, "free": s.free, "chunk_count": s.chunk_count,
                        })
                    })
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            outln!("{:<10} {:<22} {:<9} {:<6} {:>14} {:>8}", "ID", "ADDRESS", "STATE", "ALIVE", "USED", "CHUNKS");
            for s in ring.servers {
                outln!(
                    "{:<10} {:<22} {:<9} {:<6} {:>14} {:>8}",
                    s.id,
                    s.addr,
                    s.state,
                    s.alive,
                    crate::out::size(s.used),
                    s.chunk_count
                );
            }
        }
        ChunkserverCmd::Drain { id } => {
            set(id.clone(), "draining").await?;
            outln!("{id}: draining; `tessera admin chunkserver list` shows \"drained\" when it holds nothing the ring needs");
        }
        ChunkserverCmd::Undrain { id } => {
            set(id.clone(), "alive").await?;
            outln!("{id}: back on the ring");
        }
    }
    Ok(())
}

/// (files, unreadable files)
async fn fsck_tree(fs: &Fs, path: &str, live: &std::collections::HashSet<String>, out: &mut (u64, u64)) -> Result<()> {
    let a = fs.resolve(path).await?;
    if a.kind == FileKind::Directory as i32 {
        for e in fs.readdir(a.ino, false).await? {
            let child = join(path, &String::from_utf8_lossy(&e.name));
            Box::pin(fsck_tree(fs, &child, live, out)).await?;
        }
        return Ok(());
    }
    if a.kind != FileKind::Regular as i32 {
        return Ok(());
    }
    let ext = fs.extents(a.ino).await?;
    let ids: Vec<Bytes> = ext.extents.iter().filter(|e| !e.id.is_empty()).map(|e| e.id.clone()).collect();
    let mut min = 3usize;
    let mut missing = 0;
    for batch in ids.chunks(1000) {
        let req = ChunkLocationsRequest { ids: batch.to_vec() };
        let r = fs
            .meta
            .call("chunk_locations", |mut c| {
                let r = req.clone();
                async move { c.chunk_locations(r).await }
            })
            .await?;
        for l in r.locations {
            let n = l.addrs.iter().filter(|a| live.contains(*a)).count();
            min = min.min(n);
            missing += (n == 0) as u64;
        }
    }
    out.0 += 1;
    let state = if ids.is_empty() {
        "OK".to_string()
    } else if missing > 0 {
        out.1 += 1;
        format!("UNREADABLE ({missing} chunks with no replica)")
    } else if min < 3 {
        format!("UNDER-REPLICATED (min {min}/3)")
    } else {
        "OK".to_string()
    };
    outln!("{path}: {} chunks, replicas {}/3: {state}", ids.len(), if ids.is_empty() { 3 } else { min });
    Ok(())
}

pub async fn fsck(cfg: &ClientConfig, path: &str) -> Result<()> {
    let fs = connect(cfg.clone());
    let ring = fs.meta.call("get_ring", |mut c| async move { c.get_ring(Empty {}).await }).await?;
    let live = ring.servers.iter().filter(|s| s.last_heartbeat_ms_ago < 10_000).map(|s| s.addr.clone()).collect();
    let mut counts = (0, 0);
    fsck_tree(&fs, path, &live, &mut counts).await?;
    if let Some(r) = crate::cluster::repair_status(&fs).await {
        outln!(
            "repair: {} chunks, {} under-replicated, {} missing, {} bytes to copy, {:.1} MB/s, ETA {}",
            r.chunks,
            r.under_replicated,
            r.missing,
            r.bytes_to_copy,
            r.copy_rate_bps / 1e6,
            crate::cluster::eta(&r)
        );
    }
    outln!("{} files, {} unreadable", counts.0, counts.1);
    if counts.1 > 0 {
        bail!("{} files cannot be read", counts.1);
    }
    Ok(())
}
