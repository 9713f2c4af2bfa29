//! Advisory locks (flock and fcntl byte-range locks) held in the masters'
//! replicated state so that they exclude across mounts and survive a leader
//! change; a lock owner is this mount's id (its lock session) plus the
//! kernel's owner, so owners on different mounts never collide. While it has
//! locked anything, the mount renews its session so its locks outlive the
//! masters' lock lease; if the mount dies, they go when the lease ends.
//!
//! Delegation: when only this mount uses a file's locks, the masters may
//! hand them to it (`LockReply.delegated`, master/src/fsm/locks.rs). It then
//! takes, drops and tests them here with the same rules, with no round trip
//! (SQLite takes about nine per transaction), until the masters recall them
//! for another mount or its last close of the file gives them back; either
//! way its queued changes land first and its locks are written back
//! (`ReturnLocks`), so a mount that takes a lock next sees what this one did
//! under it. A file's lock calls pass one gate here, so none overtakes a
//! hand-over or a give-back.

use crate::delegated_locks::Tables;
use crate::fs::Mount;
use std::sync::Arc;
use std::time::Duration;
use tessera_client::{ClientError, Result};
use tessera_proto::locks::{conflict, Held, Want};
use tessera_proto::pb;

/// How often a mount holding locks renews its session (the masters' lease
/// is at least three times this).
const RENEW_EVERY: Duration = Duration::from_secs(2);

/// A lock request as FUSE's setlk gives it: `flock` for flock(2), else
/// a POSIX byte-range lock (the two kinds never conflict).
pub struct LockArgs {
    pub ino: u64,
    pub owner: u64,
    pub pid: u32,
    pub start: u64,
    pub end: u64,
    pub typ: i32,
    pub flock: bool,
}

fn counted(at: &'static str) {
    metrics::counter!("tessera_mount_lock_calls_total", "answered_by" => at).increment(1);
}

impl Mount {
    /// Renews this mount's lock session for as long as the mount runs,
    /// once it has taken a lock.
    pub async fn renew_lock_session(self: Arc<Self>) {
        let mut tick = tokio::time::interval(RENEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.locked.lock().is_empty() {
                continue;
            }
            let r = self.fs.renew_lock_session(&self.id).await;
            match r {
                Ok(_) => {}
                Err(e) if e.errno() == libc::ESTALE => {
                    // Cut off for longer than the lease: the masters released
                    // every lock of this mount. Start over with none.
                    tracing::error!("this mount's lock lease ran out: its advisory locks were released");
                    self.locked.lock().clear();
                    self.delegated.clear();
                }
                Err(e) => tracing::warn!(error = %e, "lock session renewal failed; retrying"),
            }
        }
    }

    pub fn lock_owner(&self, owner: u64) -> String {
        format!("{}:{owner:x}", self.id)
    }

    /// Takes a lock (here if delegated, else at the master); with `wait`,
    /// retries until granted.
    pub async fn setlk(&self, l: LockArgs, wait: bool) -> Result<()> {
        let owner = self.lock_owner(l.owner);
        let want = Want::of_fcntl(l.typ);
        self.locked.lock().insert(l.ino);
        // Polled at the masters (they keep no waiter queue), woken here by
        // a local unlock. (The caller's FUSE request is interruptible, which
        // ends this loop.)
        let mut backoff = tessera_rpc::Backoff::new(Duration::from_millis(10), Duration::from_millis(200));
        loop {
            let changed = self.delegated.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.setlk_once(&l, &owner, want).await? {
                return Ok(());
            }
            if !wait {
                return Err(ClientError::fs(libc::EAGAIN, "lock held by another owner"));
            }
            tokio::select! {
                _ = changed => {}
                _ = backoff.wait() => {}
            }
        }
    }

    async fn setlk_once(&self, l: &LockArgs, owner: &str, want: Want) -> Result<bool> {
        let gate = self.delegated.gate(l.ino);
        let _one_at_a_time = gate.lock().await;
        if let Some(granted) = self.delegated.try_set(l.ino, l.flock, owner, l.pid, (l.start, l.end), want) {
            counted("mount");
            return Ok(granted);
        }
        let req = pb::LockRequest {
            ino: l.ino,
            owner: owner.to_string(),
            pid: l.pid,
            start: l.start,
            end: l.end,
            typ: l.typ,
            flock: l.flock,
            // Only with a lease stream can a recall reach this mount.
            delegate: want != Want::Unlock
                && self.leases.remaining().is_some()
                && !self.delegated.asked.lock().insert(l.ino),
        };
        let reply = self.fs.set_lock(&req).await?;
        counted("masters");
        if reply.delegated {
            let tables = Tables {
                posix: reply.posix.iter().map(Held::from).collect(),
                flock: reply.flock.iter().map(Held::from).collect(),
            };
            self.delegated.files.lock().insert(l.ino, tables);
            self.delegated.asked.lock().remove(&l.ino);
        }
        Ok(reply.granted)
    }

    pub async fn getlk(&self, ino: u64, owner: u64, start: u64, end: u64, typ: i32) -> Result<pb::LockReply> {
        let owner = self.lock_owner(owner);
        let gate = self.delegated.gate(ino);
        let _one_at_a_time = gate.lock().await;
        if let Some(t) = self.delegated.files.lock().get(&ino) {
            counted("mount");
            let unlocked = pb::LockReply { granted: true, typ: libc::F_UNLCK, start, end, ..Default::default() };
            return Ok(match conflict(&t.posix, &owner, start, end, typ == libc::F_WRLCK) {
                None => unlocked,
                Some(h) => pb::LockReply {
                    typ: if h.write { libc::F_WRLCK } else { libc::F_RDLCK },
                    start: h.start,
                    end: h.end,
                    pid: h.pid,
                    ..Default::default()
                },
            });
        }
        let req = pb::LockRequest { ino, owner, start, end, typ, ..Default::default() };
        counted("masters");
        self.fs.get_lock(&req).await
    }

    pub async fn release_locks(&self, ino: u64, owner: u64) -> Result<()> {
        if !self.locked.lock().contains(&ino) {
            return Ok(());
        }
        let owner = self.lock_owner(owner);
        let gate = self.delegated.gate(ino);
        let _one_at_a_time = gate.lock().await;
        if let Some(t) = self.delegated.files.lock().get_mut(&ino) {
            t.posix.retain(|h| h.owner != owner);
            t.flock.retain(|h| h.owner != owner);
            self.delegated.changed.notify_waiters();
            return Ok(());
        }
        self.fs.release_locks(ino, owner).await
    }

    /// Gives `ino`'s delegated locks back to the masters (a recall, or its
    /// last close here): this mount's queued changes land first, then its
    /// locks there are written back. Returns once the masters have them.
    pub(crate) async fn give_back_locks(&self, ino: u64) {
        let gate = self.delegated.gate(ino);
        let _one_at_a_time = gate.lock().await;
        // Whoever takes a lock next sees every change made under this one.
        self.recalled(&[], false).await;
        self.held_creates_landed().await;
        let tables = self.delegated.files.lock().remove(&ino);
        let req = pb::ReturnLocksRequest {
            ino,
            session: self.id.clone(),
            keep: tables.is_none(),
            posix: tables.iter().flat_map(|t| t.posix.iter().map(pb::HeldLock::from)).collect(),
            flock: tables.iter().flat_map(|t| t.flock.iter().map(pb::HeldLock::from)).collect(),
        };
        match self.fs.return_locks(&req).await {
            Ok(()) => {}
            Err(e) if e.errno() == libc::ESTALE => {
                tracing::error!(ino, "locks kept here had already been released (this mount's lock lease ran out)");
            }
            Err(e) => {
                // Still this mount's: a later recall or close tries again.
                tracing::warn!(ino, error = %e, "giving locks back to the masters failed; keeping them");
                if let Some(t) = tables {
                    self.delegated.files.lock().insert(ino, t);
                }
            }
        }
        self.delegated.changed.notify_waiters();
    }
}
