//! Advisory locks (flock and fcntl byte-range locks) held by the master so
//! that they exclude across mounts; a lock owner is this mount's id plus the
//! kernel's owner, so owners on different mounts never collide.

use crate::fs::Mount;
use std::time::Duration;
use tessera_client::{ClientError, Result};
use tessera_proto::pb;

impl Mount {
    pub fn lock_owner(&self, owner: u64) -> String {
        format!("{}:{owner:x}", self.id)
    }

    /// Takes a lock at the master; with `wait`, retries until granted.
    #[allow(clippy::too_many_arguments)] // mirrors FUSE's setlk
    pub async fn setlk(
        &self,
        ino: u64,
        owner: u64,
        pid: u32,
        start: u64,
        end: u64,
        typ: i32,
        wait: bool,
    ) -> Result<()> {
        let req = pb::LockRequest { ino, owner: self.lock_owner(owner), pid, start, end, typ };
        self.locked.lock().unwrap_or_else(|p| p.into_inner()).insert(ino);
        let mut delay = Duration::from_millis(10);
        loop {
            let r = self
                .fs
                .meta
                .call("set_lock", |mut c| {
                    let r = req.clone();
                    async move { c.set_lock(r).await }
                })
                .await?;
            if r.granted {
                return Ok(());
            }
            if !wait {
                return Err(ClientError::fs(libc::EAGAIN, "lock held by another owner"));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }

    pub async fn getlk(&self, ino: u64, owner: u64, start: u64, end: u64, typ: i32) -> Result<pb::LockReply> {
        let req = pb::LockRequest { ino, owner: self.lock_owner(owner), pid: 0, start, end, typ };
        self.fs
            .meta
            .call("get_lock", |mut c| {
                let r = req.clone();
                async move { c.get_lock(r).await }
            })
            .await
    }

    pub async fn release_locks(&self, ino: u64, owner: u64) -> Result<()> {
        if !self.locked.lock().unwrap_or_else(|p| p.into_inner()).contains(&ino) {
            return Ok(());
        }
        let req = pb::ReleaseLocksRequest { ino, owner: self.lock_owner(owner) };
        self.fs
            .meta
            .call("release_locks", |mut c| {
                let r = req.clone();
                async move { c.release_locks(r).await }
            })
            .await?;
        Ok(())
    }
}
