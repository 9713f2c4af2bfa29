//! This mount's cache lease, as the mount's caches consult it: whether it
//! runs, and a generation every revoke and loss bumps (leases.rs keeps it
//! renewed and applies revokes).

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct LeaseState {
    /// The lease runs until then (None: no lease).
    until: Mutex<Option<Instant>>,
    /// Bumped by every revoke and every loss: an answer fetched across a
    /// bump is not cached.
    gen: AtomicU64,
    notifier: OnceLock<fuser::Notifier>,
}

impl LeaseState {
    /// What is left of the lease, if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        let until = (*self.until.lock())?;
        until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    pub fn gen(&self) -> u64 {
        self.gen.load(Ordering::SeqCst)
    }

    /// True if an answer fetched since `gen` was read may be cached.
    pub fn still(&self, gen: u64) -> bool {
        self.gen() == gen && self.remaining().is_some()
    }

    /// Marks answers fetched before now as not to be cached (a revoke or
    /// the loss of the lease).
    pub(crate) fn bump(&self) {
        self.gen.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn notifier(&self) -> Option<fuser::Notifier> {
        self.notifier.get().cloned()
    }

    pub fn set_notifier(&self, n: fuser::Notifier) {
        let _ = self.notifier.set(n);
    }

    pub(crate) fn set_until(&self, until: Option<Instant>) {
        *self.until.lock() = until;
    }
}
