//! atime as relatime, batched: reads are many, so the mount gathers the
//! files read and sends them in one request a quarter second later. Holds
//! its own state (the mount keeps one `Atimes`), so it needs nothing of
//! the mount but the client.

use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tessera_client::Fs;

#[derive(Default)]
pub struct Atimes {
    /// Handles that have not read yet: only a handle's first read counts.
    pending: Mutex<HashSet<u64>>,
    /// Files read since the last batch was sent.
    queue: Arc<Mutex<HashSet<u64>>>,
    /// The sender task runs.
    flusher: AtomicBool,
    wake: Arc<tokio::sync::Notify>,
}

impl Atimes {
    pub fn opened(&self, fh: u64) {
        self.pending.lock().insert(fh);
    }

    pub fn closed(&self, fh: u64) {
        self.pending.lock().remove(&fh);
    }

    /// True for the first read through `fh`.
    pub fn first_read(&self, fh: u64) -> bool {
        self.pending.lock().remove(&fh)
    }

    /// relatime: the first read through a handle asks for an atime update.
    /// A background task sends the files read in the last quarter second in
    /// one request, and the master applies the relatime rule (atime not
    /// after mtime/ctime, or a day old). Call inside the mount's runtime.
    pub fn read(&self, fs: &Fs, ino: u64) {
        self.queue.lock().insert(ino);
        self.wake.notify_one();
        if self.flusher.swap(true, Ordering::SeqCst) {
            return;
        }
        let (fs, queue, wake) = (fs.clone(), self.queue.clone(), self.wake.clone());
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
