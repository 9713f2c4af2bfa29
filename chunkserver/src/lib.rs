//! Tessera chunkserver: a content-addressed chunk store served over gRPC.

pub mod access;
pub mod error;
pub mod heartbeat;
pub mod journal;
pub mod peers;
pub mod scrub;
pub mod service;
pub mod store;
pub mod throttle;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct Config {
    pub id: String,
    pub listen: SocketAddr,
    /// Address the master and peers use to reach us (defaults to `listen`).
    pub advertise: String,
    pub data_dir: PathBuf,
    pub masters: Vec<String>,
    pub zone: String,
    pub reserve_bytes: u64,
    pub heartbeat: Duration,
    /// Chunk ids per page of a full chunk report.
    pub report_page_ids: usize,
    /// Repair copies sent from this server, bytes/s (0 = unlimited).
    pub repair_rate: u64,
    /// Scrub re-hash rate, bytes/s (0 = scrubbing off).
    pub scrub_rate: u64,
    pub scrub_pause: Duration,
    /// Interval of the small-chunk journal's checkpoint.
    pub journal_checkpoint: Duration,
}

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let (store, initial) = store::ChunkStore::open(&cfg.data_dir, cfg.reserve_bytes)?;
    let store = Arc::new(store);
    tokio::spawn(store.journal().clone().run(cfg.journal_checkpoint));
    tracing::info!(id = %cfg.id, dir = %cfg.data_dir.display(), chunks = initial.len(), "chunk store opened");
    let (stop_tx, stopping) = tokio::sync::watch::channel(false);
    let meta = tessera_rpc::meta::MetaClient::new(cfg.masters.clone(), Default::default());
    let peers = peers::Peers::default();
    let svc = service::ChunkService {
        peers: peers.clone(),
        keys: crate::access::KeyFetch::new(Some(meta.clone())),
        stopping,
        presence_slots: Arc::new(tokio::sync::Semaphore::new(service::PRESENCE_STREAMS)),
        store: store.clone(),
        id: cfg.id.clone(),
        addr: cfg.advertise.clone(),
        repair_limit: Arc::new(throttle::Throttle::new(cfg.repair_rate)),
    };
    if cfg.scrub_rate > 0 {
        tokio::spawn(scrub::Scrubber { store: store.clone(), rate: cfg.scrub_rate, pause: cfg.scrub_pause }.run());
    }
    let hb = heartbeat::Heartbeat {
        meta,
        store: store.clone(),
        id: cfg.id.clone(),
        addr: cfg.advertise.clone(),
        zone: cfg.zone.clone(),
        interval: cfg.heartbeat,
        page_ids: cfg.report_page_ids,
        peers,
    };
    tokio::spawn(hb.run());
    tokio::spawn(export_store_gauges(store.clone()));
    let server = tessera_proto::pb::chunk_server::ChunkServer::new(svc)
        .max_decoding_message_size(tessera_proto::GRPC_MAX_MESSAGE)
        .max_encoding_message_size(tessera_proto::GRPC_MAX_MESSAGE);
    let incoming = tessera_rpc::listen::incoming(cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {}: {e}", cfg.listen))?;
    tracing::info!(listen = %cfg.listen, "chunkserver serving");
    tessera_rpc::shutdown::serve_until_signal(|signal| {
        tessera_rpc::server::server()
            .layer(tessera_rpc::metrics::RpcMetricsLayer)
            .layer(tessera_rpc::authz::AuthzLayer)
            .add_service(server)
            .serve_with_incoming_shutdown(incoming, async move {
                signal.await;
                let _ = stop_tx.send(true);
            })
    })
    .await?;
    tracing::info!("chunkserver stopped");
    Ok(())
}

/// The store's figures for Prometheus, once a second.
async fn export_store_gauges(store: Arc<store::ChunkStore>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        metrics::gauge!("tessera_chunkserver_stored_bytes").set(store.used() as f64);
        metrics::gauge!("tessera_chunkserver_chunks").set(store.count() as f64);
        let (chunks, bytes) = store.journal().pending();
        metrics::gauge!("tessera_journal_pending_chunks").set(chunks as f64);
        metrics::gauge!("tessera_journal_pending_bytes").set(bytes as f64);
        if let Ok(d) = store.disk() {
            metrics::gauge!("tessera_chunkserver_disk_capacity_bytes").set(d.capacity as f64);
            metrics::gauge!("tessera_chunkserver_disk_free_bytes").set(d.free as f64);
        }
    }
}
