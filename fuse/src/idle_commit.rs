//! Commits open files whose uploaded chunks have waited too long. A chunk
//! uploaded but not yet referenced is an orphan to the masters' GC, which
//! takes it after its grace; a writer that fills a chunk and then pauses
//! with the file open would find its commit refused (EAGAIN) at close.

use crate::fs::Mount;
use std::sync::Arc;

impl Mount {
    /// Runs for the life of the mount.
    pub async fn commit_idle_files(self: Arc<Self>) {
        let every = (self.commit_idle / 4).max(std::time::Duration::from_millis(50));
        loop {
            tokio::time::sleep(every).await;
            let files: Vec<_> = self.open.files.lock().values().cloned().collect();
            for f in files {
                // A file busy with a write or flush commits on its own.
                let Ok(mut d) = f.data.try_lock() else { continue };
                if !d.commit_due(self.commit_idle) {
                    continue;
                }
                let ino = d.ino;
                let r = d.flush(&self.fs).await;
                drop(d);
                if let Err(e) = self.committed(ino, r) {
                    tracing::warn!(ino, error = %e, "commit of a file left open failed; its next flush retries");
                }
            }
        }
    }
}
