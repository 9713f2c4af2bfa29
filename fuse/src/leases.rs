//! This mount's cache lease (the masters' side is master/src/leases.rs).
//!
//! The mount keeps one Watch stream to the leader and renews its lease on
//! it every quarter lease. While the lease runs, answers the leader marked
//! as leased (lookups, listings, attributes) are served from this mount's
//! caches with no round trip, and the kernel is allowed to keep entries
//! and attributes for no longer than the lease has left. Another mount's
//! change arrives as a revoke: the named inodes and names are dropped from
//! this mount's caches and from the kernel's (notify-invalidate), then the
//! revoke is acknowledged and the change completes. When the stream breaks
//! or a renewal is late, the lease is over: every cache is dropped and,
//! until a new lease, every lookup asks the master.

use crate::fs::Mount;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_proto::pb::{WatchEvent, WatchRequest};

/// Renewals before the first answer says how long a lease is.
const FIRST_RENEW: Duration = Duration::from_millis(200);
/// How long a revoke waits for the kernel's invalidation before it is
/// acknowledged anyway (an invalidation of a name waits for the
/// directory's lock, which a request of this mount may hold while it
/// waits for the masters, who wait for this acknowledgement).
const KERNEL_WAIT: Duration = Duration::from_millis(100);

impl Mount {
    /// How long the kernel may keep an entry or attributes given now.
    pub fn kernel_ttl(&self) -> Duration {
        self.leases.remaining().map_or(Duration::ZERO, |left| left.min(self.ttl))
    }

    /// The lease is over: nothing cached may be trusted.
    fn lease_lost(&self) {
        self.leases.bump();
        self.leases.set_until(None);
        self.drop_caches();
        self.exclusive_lost();
    }

    /// Applies a revoke from the masters, then returns (acknowledge it).
    async fn revoked(self: &Arc<Self>, ev: &WatchEvent) {
        tracing::debug!(all = ev.all, inos = ?ev.inos, attrs_only = ev.attrs_only, entries = ev.entries.len(), "revoke");
        if !ev.recall_locks.is_empty() {
            // Another mount asks for locks this one keeps.
            for &ino in &ev.recall_locks {
                self.give_back_locks(ino).await;
            }
            return;
        }
        self.leases.bump();
        // Files another mount's unlink left without a name, kept for this
        // mount: released at their last close here (at once if not open).
        self.orphaned(&ev.orphaned);
        // Queued unlinks in a recalled directory land before the ack (an
        // atime change, this mount's own read, recalls nothing).
        if !ev.attrs_only {
            let dirs: Vec<u64> = ev.inos.iter().copied().chain(ev.entries.iter().map(|e| e.parent)).collect();
            self.recalled(&dirs, ev.all).await;
        }
        if ev.all {
            self.drop_caches();
            return;
        }
        for &ino in &ev.inos {
            if ev.attrs_only {
                // An atime: names stand, attributes are asked for again.
                self.atime_changed(ino);
                continue;
            }
            self.attrs_changed(ino);
            self.caches.dir.unsure(ino);
            self.forget_pages(ino);
            if let Some(f) = self.open_file(ino) {
                f.revoked.store(true, Ordering::SeqCst);
            }
        }
        for e in &ev.entries {
            self.caches.dir.unsure(e.parent);
            self.attrs_changed(e.parent);
        }
        let Some(n) = self.leases.notifier() else { return };
        let (inos, attrs_only) = (ev.inos.clone(), ev.attrs_only);
        let entries: Vec<(u64, Vec<u8>)> = ev.entries.iter().map(|e| (e.parent, e.name.to_vec())).collect();
        let kernel = tokio::task::spawn_blocking(move || {
            for (parent, name) in entries {
                let _ = n.inval_entry(fuser::INodeNo(parent), OsStr::from_bytes(&name));
            }
            // Attributes, and every cached page unless only attributes changed.
            let offset = if attrs_only { -1 } else { 0 };
            for ino in inos {
                let _ = n.inval_inode(fuser::INodeNo(ino), offset, 0);
            }
        });
        let _ = tokio::time::timeout(KERNEL_WAIT, kernel).await;
    }

    /// Keeps this mount's lease for as long as the mount runs.
    pub async fn watch_leases(self: Arc<Self>) {
        loop {
            if let Err(e) = self.clone().watch_once().await {
                tracing::debug!(error = %e, "cache lease stream ended");
            }
            self.lease_lost();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn watch_once(self: Arc<Self>) -> Result<(), String> {
        let (tx, mut events) = self.fs.watch(&self.id).await.map_err(|e| e.to_string())?;
        let mut every = FIRST_RENEW;
        let mut lease = Duration::ZERO;
        let mut seq = 0u64;
        let mut asked: std::collections::BTreeMap<u64, Instant> = Default::default();
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    // A renewal not answered in time ends the lease (a leader
                    // that lost its quorum answers none).
                    if !lease.is_zero() && self.leases.remaining().is_none() {
                        return Err("lease ran out".into());
                    }
                    seq += 1;
                    asked.insert(seq, Instant::now());
                    while asked.len() > 64 {
                        asked.pop_first();
                    }
                    let renew = WatchRequest { session: String::new(), renew: seq, ack: 0 };
                    tx.send(renew).await.map_err(|_| "request stream closed")?;
                }
                ev = events.message() => {
                    let ev = ev.map_err(|e| e.message().to_string())?.ok_or("closed by the master")?;
                    if ev.renewed > 0 {
                        if let Some(at) = asked.remove(&ev.renewed) {
                            asked.retain(|s, _| *s > ev.renewed);
                            lease = Duration::from_millis(ev.lease_ms as u64);
                            // Counted from before the request left, so it ends
                            // here no later than the leader thinks; less a
                            // margin for clock rates.
                            self.leases.set_until(Some(at + tessera_proto::lease_trusted_for(lease)));
                            if every != lease / 4 && !lease.is_zero() {
                                every = lease / 4;
                                tick = tokio::time::interval(every);
                                tick.reset();
                            }
                        }
                    }
                    if ev.revoke > 0 {
                        self.revoked(&ev).await;
                        let ack = WatchRequest { session: String::new(), renew: 0, ack: ev.revoke };
                        tx.send(ack).await.map_err(|_| "request stream closed")?;
                    }
                }
            }
        }
    }
}
