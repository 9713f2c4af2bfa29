//! atime as relatime, batched: reads are many, so the mount gathers the
//! files read and sends them in one request a quarter second later.

use crate::fs::Mount;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tessera_proto::pb;

impl Mount {
    /// relatime: the first read through a handle asks for an atime update.
    /// Reads are many, so updates are batched: a background task sends the
    /// files read in the last quarter second in one request, and the master
    /// applies the relatime rule (atime not after mtime/ctime, or a day old).
    pub(crate) fn relatime(&self, ino: u64) {
        self.atime_queue.lock().unwrap_or_else(|p| p.into_inner()).insert(ino);
        self.atime_wake.notify_one();
        if self.atime_flusher.swap(true, Ordering::SeqCst) {
            return;
        }
        let (fs, queue, wake) = (self.fs.clone(), self.atime_queue.clone(), self.atime_wake.clone());
        tokio::spawn(async move {
            loop {
                // Idle until a read, then gather a quarter second's worth.
                wake.notified().await;
                tokio::time::sleep(Duration::from_millis(250)).await;
                let inos: Vec<u64> = queue.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
                for batch in inos.chunks(2000) {
                    let req =
                        pb::TouchAtimesRequest { inos: batch.to_vec(), request_id: tessera_client::fs::request_id() };
                    let r = fs
                        .meta
                        .call("touch_atimes", |mut c| {
                            let r = req.clone();
                            async move { c.touch_atimes(r).await }
                        })
                        .await;
                    // atime is best effort (as with lazytime): a batch that
                    // finds no master is dropped, never retried forever.
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "atime update failed");
                    }
                }
            }
        });
    }
}
