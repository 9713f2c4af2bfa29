//! Registration and heartbeats to the master leader: capacity, usage, a full
//! chunk report first (and whenever the master asks), incremental reports after.

use crate::store::ChunkStore;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tessera_proto::pb::{HeartbeatRequest, RegisterRequest};
use tessera_proto::ChunkId;
use tessera_rpc::meta::MetaClient;

pub struct Heartbeat {
    pub meta: MetaClient,
    pub store: Arc<ChunkStore>,
    pub id: String,
    pub addr: String,
    pub zone: String,
    pub interval: Duration,
    /// Chunk ids per page of a full report.
    pub page_ids: usize,
    /// The cluster's chunkservers, as each reply lists them.
    pub peers: crate::peers::Peers,
}

fn ids(v: &[ChunkId]) -> Vec<Bytes> {
    v.iter().map(|id| Bytes::copy_from_slice(id.as_bytes())).collect()
}

impl Heartbeat {
    pub async fn run(self) {
        // Register (a Raft write that puts us on the ring); retry until a leader takes it.
        loop {
            let capacity = self.store.disk().map(|d| d.capacity).unwrap_or(0);
            let req =
                RegisterRequest { id: self.id.clone(), addr: self.addr.clone(), capacity, zone: self.zone.clone() };
            match self
                .meta
                .control("register", |mut c| {
                    let r = req.clone();
                    async move { c.register(r).await }
                })
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "register failed; retrying");
                    tokio::time::sleep(self.interval).await;
                }
            }
        }
        tracing::info!(id = %self.id, addr = %self.addr, "registered with master");
        // A full report is a scan taken *after* draining the change log, so
        // nothing added or removed meanwhile is lost (it shows up in the scan,
        // the next incremental report, or both; both are idempotent).
        let mut need_full = true;
        loop {
            let disk = self.store.disk().unwrap_or(crate::store::DiskStats { capacity: 0, free: 0 });
            let (added, removed) = if need_full {
                let _ = self.store.take_changes();
                match self.current_chunks().await {
                    Some(all) => (all, Vec::new()),
                    None => {
                        tokio::time::sleep(self.interval).await;
                        continue;
                    }
                }
            } else {
                self.store.take_changes()
            };
            // A full report goes in pages, back to back; a small one (and
            // every incremental report) in one message.
            let pages: Vec<&[ChunkId]> =
                if need_full { added.chunks(self.page_ids.max(1)).collect() } else { vec![&added[..]] };
            let pages = if pages.is_empty() { vec![&added[..]] } else { pages };
            let last = pages.len() - 1;
            let full = need_full;
            for (page, part) in pages.into_iter().enumerate() {
                let req = HeartbeatRequest {
                    id: self.id.clone(),
                    addr: self.addr.clone(),
                    capacity: disk.capacity,
                    used: self.store.used(),
                    free: disk.free,
                    chunk_count: self.store.count(),
                    full,
                    added: ids(part),
                    removed: if page == 0 { ids(&removed) } else { Vec::new() },
                    page: page as u32,
                    more: full && page < last,
                };
                match self
                    .meta
                    .control("heartbeat", |mut c| {
                        let r = req.clone();
                        async move { c.heartbeat(r).await }
                    })
                    .await
                {
                    Ok(reply) => {
                        need_full = reply.need_full_report;
                        if !reply.chunkservers.is_empty() {
                            self.peers.set(reply.chunkservers);
                        }
                        // The masters' list of revoked certificates: this
                        // server refuses their holders too.
                        tessera_rpc::revoked::set(reply.revoked.into_iter().collect());
                        // The keys chunk access tokens are signed with.
                        if !reply.token_keys.is_empty() {
                            tessera_rpc::chunk_token::set_keys(tessera_rpc::chunk_token::from_pb(&reply.token_keys));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "heartbeat failed");
                        // The changes in this report may be lost, and a new
                        // leader knows nothing of us: report everything next.
                        need_full = true;
                    }
                }
                if need_full && page < last {
                    break; // a page went missing: a whole new report next
                }
            }
            tokio::time::sleep(self.interval).await;
        }
    }

    /// Scans the store off the async runtime (it can be large). None when
    /// the scan fails: an empty "full" report would claim every chunk lost.
    async fn current_chunks(&self) -> Option<Vec<ChunkId>> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.list()).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "scanning chunk store failed");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "chunk store scan task failed");
                None
            }
        }
    }
}
