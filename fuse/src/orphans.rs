//! Files unlinked while open. POSIX keeps such a file until its last
//! close; the master keeps it as an orphan (no name, link count 0, content
//! and chunks intact) when the request that removed its last name listed it
//! as open on the caller's mount. That mount releases it after its last
//! close here, and while it stays open renews it every `OrphanRenewal::every` (open_files.rs);
//! the master frees orphans not renewed for a day (their mount died).

use crate::fs::Mount;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tessera_client::Fs;

impl Mount {
    /// Regular files open on this mount, for requests that may remove a
    /// last name (unlink, rename over a target).
    pub fn open_inos(&self) -> Vec<u64> {
        self.open.files.lock().keys().copied().collect()
    }

    /// The master kept these files as orphans. Those closed meanwhile are
    /// released at once; the others at their last close.
    pub fn orphaned(self: &Arc<Self>, inos: &[u64]) {
        if inos.is_empty() {
            return;
        }
        // Their link count is 0 now (an fstat of an open one shows it).
        for &ino in inos {
            self.attrs_changed(ino);
        }
        let closed: Vec<u64> = {
            let files = self.open.files.lock();
            inos.iter()
                .copied()
                .filter(|ino| match files.get(ino) {
                    Some(f) => {
                        f.orphaned.store(true, Ordering::SeqCst);
                        false
                    }
                    None => true,
                })
                .collect()
        };
        let kept_open = closed.len() < inos.len();
        if !closed.is_empty() {
            self.release_orphans(closed);
        }
        if kept_open && !self.orphans.running.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.clone().renew_orphans());
        }
    }

    /// While this mount keeps orphans open, tells the master so every
    /// `orphan_renew`; exits when none is left.
    async fn renew_orphans(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.orphans.every).await;
            let inos: Vec<u64> = {
                let files = self.open.files.lock();
                let inos: Vec<u64> =
                    files.iter().filter(|(_, f)| f.orphaned.load(Ordering::SeqCst)).map(|(i, _)| *i).collect();
                if inos.is_empty() {
                    // Under the lock `orphaned` marks files with, so a new
                    // orphan either is seen above or starts a new renewer.
                    self.orphans.running.store(false, Ordering::SeqCst);
                    return;
                }
                inos
            };
            tell_master(&self.fs, Tell::Renew, inos).await;
        }
    }

    /// Tells the master these orphans are closed here (in the background;
    /// ordered after this mount's write-behind unlinks like any call).
    pub fn release_orphans(&self, inos: Vec<u64>) {
        let fs = self.fs.clone();
        tokio::spawn(async move { tell_master(&fs, Tell::Release, inos).await });
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Tell {
    Release,
    Renew,
}

/// One release or renewal request; a failure is logged, as the master frees
/// what is neither released nor renewed after its age limit anyway.
async fn tell_master(fs: &Fs, what: Tell, inos: Vec<u64>) {
    let name = if what == Tell::Renew { "renew_orphans" } else { "release_orphans" };
    if let Err(e) = fs.tell_orphans(inos.clone(), what == Tell::Release).await {
        tracing::warn!(files = ?inos, error = %e, rpc = name, "telling the master about files unlinked while open failed");
    }
}
