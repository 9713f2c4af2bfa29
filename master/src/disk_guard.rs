//! A master whose disk is nearly full refuses the changes that add to the
//! namespace (creates, links, commits, extended attributes: `Op::adds`)
//! with ENOSPC and a message naming the disk, and keeps serving reads and
//! the small changes that keep them going or free space (unlink, rename,
//! setattr, locks). A Raft log or RocksDB write that fails half way on a
//! full disk is far worse than a refused request; `cluster status` shows
//! the state.
//!
//! The leader also refuses them while any other voter reports a nearly
//! full disk (as etcd's NOSPACE alarm does for the whole cluster): every
//! entry it commits is written on the followers too, and a follower that
//! hits ENOSPC mid-append stops, taking the group's redundancy (or, with a
//! second, its quorum) with it. `watch_peers` asks the voters every second.

use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long one statvfs answer is reused.
const RECHECK: Duration = Duration::from_millis(500);

pub struct DiskGuard {
    dir: PathBuf,
    /// Free bytes under which changes are refused.
    pub min_free: u64,
    free: AtomicU64,
    checked: Mutex<Option<Instant>>,
    /// Other voters that reported a nearly full disk ("master 2 at ADDR:
    /// N MiB free"), as the leader last heard.
    peers_full: Mutex<Vec<String>>,
}

/// Free bytes for an unprivileged writer on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs is plain data; zeroes are a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and st a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

impl DiskGuard {
    pub fn new(dir: PathBuf, min_free: u64) -> DiskGuard {
        DiskGuard {
            dir,
            min_free,
            free: AtomicU64::new(u64::MAX),
            checked: Mutex::new(None),
            peers_full: Mutex::new(Vec::new()),
        }
    }

    /// Free bytes on the master's disk (at most RECHECK old).
    pub fn free(&self) -> u64 {
        let mut checked = self.checked.lock();
        if checked.is_none_or(|t| t.elapsed() >= RECHECK) {
            match free_bytes(&self.dir) {
                Ok(f) => self.free.store(f, Ordering::Relaxed),
                Err(e) => tracing::warn!(dir = %self.dir.display(), error = %e, "statvfs of the master's disk failed"),
            }
            *checked = Some(Instant::now());
        }
        self.free.load(Ordering::Relaxed)
    }

    /// Whether this master's own disk is too full for new changes.
    pub fn full(&self) -> bool {
        self.free() < self.min_free
    }

    /// Whether changes that add to the namespace are refused: this disk,
    /// or another voter's, is nearly full.
    pub fn refuses(&self) -> bool {
        self.full() || !self.peers_full.lock().is_empty()
    }

    /// What the leader last heard of the other voters' disks.
    pub fn set_peers_full(&self, full: Vec<String>) {
        let mut p = self.peers_full.lock();
        if *p != full {
            match full.is_empty() {
                true => tracing::info!("every master's disk has room again"),
                false => tracing::warn!(masters = ?full, "a master's disk is nearly full: refusing changes that add"),
            }
            *p = full;
        }
    }

    /// The refusal's message.
    pub fn refusal(&self) -> String {
        if !self.full() {
            if let Some(peer) = self.peers_full.lock().first() {
                return format!(
                    "master disk nearly full on {peer} (changes need {} MiB on every master; free or grow that disk)",
                    self.min_free >> 20
                );
            }
        }
        format!(
            "master disk nearly full: {} MiB free at {}, changes need {} MiB (remove files, or free or grow that disk)",
            self.free() >> 20,
            self.dir.display(),
            self.min_free >> 20
        )
    }
}

/// On the leader, every second: asks the other voters whether their disks
/// are nearly full (`NodeStatus`); one that does not answer in time counts
/// as having room (it is down or cut off, and then writes nothing).
pub async fn watch_peers(raft: crate::store::state_machine::Raft, guard: std::sync::Arc<DiskGuard>, me: u64) {
    use openraft::async_runtime::WatchReceiver;
    use tessera_proto::pb::{meta_client::MetaClient, Empty};
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if !raft.is_leader() {
            guard.set_peers_full(Vec::new());
            continue;
        }
        let voters: Vec<(u64, String)> = {
            let m = raft.metrics().borrow_watched().clone();
            let membership = m.membership_config.membership();
            let voters: Vec<u64> = membership.voter_ids().collect();
            membership
                .nodes()
                .filter(|(id, _)| **id != me && voters.contains(id))
                .map(|(id, n)| (*id, crate::raft::node_addr::service_of(n)))
                .collect()
        };
        let asks = voters.into_iter().map(|(id, addr)| async move {
            let ch =
                tessera_rpc::pool().channel(&addr, tessera_rpc::Profile::Control, tessera_rpc::Role::Master).ok()?;
            let r = tokio::time::timeout(Duration::from_secs(1), MetaClient::new(ch).node_status(Empty {})).await;
            let st = r.ok()?.ok()?.into_inner().master?;
            st.disk_full.then(|| format!("master {id} at {addr}: {} MiB free", st.disk_free_bytes >> 20))
        });
        let full: Vec<String> = futures::future::join_all(asks).await.into_iter().flatten().collect();
        guard.set_peers_full(full);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_under_the_minimum_is_full() {
        let tmp = tempfile::tempdir().unwrap();
        let free = free_bytes(tmp.path()).unwrap();
        assert!(free > 0);
        assert!(!DiskGuard::new(tmp.path().into(), 0).full());
        let g = DiskGuard::new(tmp.path().into(), u64::MAX);
        assert!(g.full());
        assert!(g.refusal().contains("nearly full"), "{}", g.refusal());
    }
}
