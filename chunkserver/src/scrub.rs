//! Background scrubbing: re-hash every stored chunk at a throttled rate;
//! a mismatch is quarantined and reported (the master then re-replicates
//! from a good copy).

use crate::store::ChunkStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Scrubber {
    pub store: Arc<ChunkStore>,
    /// Bytes per second to re-hash at most.
    pub rate: u64,
    /// Pause between full passes.
    pub pause: Duration,
}

impl Scrubber {
    pub async fn run(self) {
        // Served from the start (at zero), not from the first corruption.
        metrics::counter!("tessera_scrub_corrupt_chunks_total").increment(0);
        loop {
            let started = Instant::now();
            let ids = match ChunkStore::scan(self.store.root()) {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(error = %e, "scrub: scan failed");
                    Vec::new()
                }
            };
            let (mut bytes, mut bad) = (0u64, 0u64);
            for (done, id) in ids.iter().enumerate() {
                metrics::gauge!("tessera_scrub_pass_progress").set(done as f64 / ids.len() as f64);
                let len = std::fs::metadata(self.store.chunk_path(id)).map(|m| m.len()).unwrap_or(0);
                match self.store.verify(id).await {
                    Ok(true) => {}
                    Ok(false) => {
                        bad += 1;
                        metrics::counter!("tessera_scrub_corrupt_chunks_total").increment(1);
                        if let Err(e) = self.store.quarantine(id).await {
                            tracing::warn!(chunk = %id, error = %e, "scrub: quarantine failed");
                        }
                    }
                    Err(_) => {} // deleted meanwhile
                }
                bytes += len;
                metrics::counter!("tessera_scrub_bytes_total").increment(len);
                // Throttle: never faster than `rate` bytes/s on average.
                if self.rate > 0 {
                    let due = Duration::from_secs_f64(bytes as f64 / self.rate as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            tracing::info!(chunks = ids.len(), bytes, bad, secs = started.elapsed().as_secs_f64(), "scrub pass done");
            metrics::gauge!("tessera_scrub_pass_progress").set(1.0);
            metrics::counter!("tessera_scrub_passes_total").increment(1);
            tokio::time::sleep(self.pause).await;
        }
    }
}
