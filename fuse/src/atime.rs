//! atime as relatime, batched: reads are many, so the mount gathers the
//! files read and sends them in one request a quarter second later.

use crate::fs::Mount;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Mount {
    /// relatime: the first read through a handle asks for an atime update.
    /// Reads are many, so updates are batched: a background task sends the
    /// files read in the last quarter second in one request, and the master
    /// applies the relatime rule (atime not after mtime/ctime, or a day old).
    pub(crate) fn relatime(&self, ino: u64) {
        self.atime_queue.lock().insert(ino);
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
                let inos: Vec<u64> = queue.lock().drain().collect();
                for batch in inos.chunks(2000) {
                    let r = fs.touch_atimes(batch.to_vec()).await;
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
