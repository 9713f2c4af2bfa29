//! Advisory locks held in the masters' replicated state, and batched atime
//! updates: the calls a mount makes for them. (Owners are strings the mount
//! makes unique across mounts: its lock session plus the kernel's owner.)

use crate::error::Result;
use crate::fs::{request_id, Fs};
use tessera_proto::pb::*;

impl Fs {
    /// Takes a lock if no other owner holds a conflicting one (`granted`),
    /// and says whether the file's locks were handed to the caller.
    pub async fn set_lock(&self, req: &LockRequest) -> Result<LockReply> {
        self.meta.unary("set_lock", req, |mut c, r| async move { c.set_lock(r).await }).await
    }

    /// Gives back the locks of a file the masters handed to this mount.
    pub async fn return_locks(&self, req: &ReturnLocksRequest) -> Result<()> {
        self.meta.unary("return_locks", req, |mut c, r| async move { c.return_locks(r).await }).await?;
        Ok(())
    }

    /// The first lock that conflicts with the one described, if any.
    pub async fn get_lock(&self, req: &LockRequest) -> Result<LockReply> {
        self.meta.unary("get_lock", req, |mut c, r| async move { c.get_lock(r).await }).await
    }

    /// Releases every lock `owner` holds on `ino`.
    pub async fn release_locks(&self, ino: u64, owner: String) -> Result<()> {
        let req = ReleaseLocksRequest { ino, owner };
        self.meta.unary("release_locks", &req, |mut c, r| async move { c.release_locks(r).await }).await?;
        Ok(())
    }

    /// Keeps a lock session's locks alive for another lease period (ESTALE:
    /// the session ran out and its locks were released).
    pub async fn renew_lock_session(&self, session: &str) -> Result<()> {
        let req = RenewLockSessionRequest { session: session.to_string() };
        self.meta.unary("renew_lock_session", &req, |mut c, r| async move { c.renew_lock_session(r).await }).await?;
        Ok(())
    }

    /// Sets the access time of these inodes to now (relatime rules applied
    /// by the masters).
    pub async fn touch_atimes(&self, inos: Vec<u64>) -> Result<()> {
        let req = TouchAtimesRequest { inos, request_id: request_id() };
        self.meta.unary("touch_atimes", &req, |mut c, r| async move { c.touch_atimes(r).await }).await?;
        Ok(())
    }
}

impl Fs {
    /// Files this mount keeps open after their last name went (orphans):
    /// `release` frees them (closed here), else they are renewed as still
    /// open (the masters free orphans nobody renews).
    pub async fn tell_orphans(&self, inos: Vec<u64>, release: bool) -> Result<()> {
        let req = OrphansRequest { inos, request_id: request_id() };
        let what = if release { "release_orphans" } else { "renew_orphans" };
        self.meta
            .call(what, |mut c| {
                let r = req.clone();
                async move {
                    if release {
                        c.release_orphans(r).await
                    } else {
                        c.renew_orphans(r).await
                    }
                }
            })
            .await?;
        Ok(())
    }
}
