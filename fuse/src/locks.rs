//! Advisory locks (flock and fcntl byte-range locks) held in the masters'
//! replicated state so that they exclude across mounts and survive a leader
//! change; a lock owner is this mount's id (its lock session) plus the
//! kernel's owner, so owners on different mounts never collide. While it has
//! locked anything, the mount renews its session so its locks outlive the
//! masters' lock lease; if the mount dies, they go when the lease ends.

use crate::fs::Mount;
use std::sync::Arc;
use std::time::Duration;
use tessera_client::{ClientError, Result};
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
                }
                Err(e) => tracing::warn!(error = %e, "lock session renewal failed; retrying"),
            }
        }
    }

    pub fn lock_owner(&self, owner: u64) -> String {
        format!("{}:{owner:x}", self.id)
    }

    /// Takes a lock at the master; with `wait`, retries until granted.
    pub async fn setlk(&self, l: LockArgs, wait: bool) -> Result<()> {
        let req = pb::LockRequest {
            ino: l.ino,
            owner: self.lock_owner(l.owner),
            pid: l.pid,
            start: l.start,
            end: l.end,
            typ: l.typ,
            flock: l.flock,
        };
        self.locked.lock().insert(l.ino);
        // Polled: the masters keep no waiter queue. (The caller's FUSE
        // request is interruptible, which ends this loop.)
        let mut backoff = tessera_rpc::Backoff::new(Duration::from_millis(10), Duration::from_millis(200));
        loop {
            if self.fs.set_lock(&req).await? {
                return Ok(());
            }
            if !wait {
                return Err(ClientError::fs(libc::EAGAIN, "lock held by another owner"));
            }
            backoff.wait().await;
        }
    }

    pub async fn getlk(&self, ino: u64, owner: u64, start: u64, end: u64, typ: i32) -> Result<pb::LockReply> {
        let req = pb::LockRequest { ino, owner: self.lock_owner(owner), pid: 0, start, end, typ, flock: false };
        self.fs.get_lock(&req).await
    }

    pub async fn release_locks(&self, ino: u64, owner: u64) -> Result<()> {
        if !self.locked.lock().contains(&ino) {
            return Ok(());
        }
        self.fs.release_locks(ino, self.lock_owner(owner)).await
    }
}
