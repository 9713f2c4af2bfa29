//! Recalling a file's delegated locks from the mount that keeps them
//! (fsm/locks.rs): a revoke naming the file in `recall_locks`, which the
//! mount acknowledges after its queued changes landed and its locks were
//! written back (`ReturnLocks`).

use super::Leases;
use std::time::{Duration, Instant};
use tessera_proto::pb::WatchEvent;

/// A file recalled this recently is not delegated again: two mounts
/// taking turns on one file's locks would otherwise pass it back and forth.
const CONTENDED_FOR: Duration = Duration::from_secs(30);
/// Files remembered as contended at most (the leader's memory).
const MAX_CONTENDED: usize = 100_000;

impl Leases {
    /// Asks `session`'s mount to give `ino`'s locks back; true once it
    /// acknowledged. False when it has no stream to this leader or did not
    /// answer within a lease (the caller reports the locks as held: they
    /// are, until the mount answers or its lock session ends).
    pub async fn recall_locks(&self, session: &str, ino: u64) -> bool {
        self.contended(ino);
        let (seq, mut acked) = {
            let mut g = self.lock();
            let Some(&conn) = g.by_name.get(session) else { return false };
            g.next_seq += 1;
            let seq = g.next_seq;
            let Some(s) = g.sessions.get_mut(&conn).filter(|s| !s.cut) else { return false };
            let ev = WatchEvent { revoke: seq, recall_locks: vec![ino], ..Default::default() };
            if s.tx.as_ref().is_none_or(|tx| tx.try_send(Ok(ev)).is_err()) {
                return false;
            }
            (seq, s.acked.subscribe())
        };
        let acked = tokio::time::timeout(self.lease, acked.wait_for(|a| *a >= seq)).await;
        let ok = matches!(acked, Ok(Ok(_)));
        if !ok {
            tracing::warn!(session, ino, "a mount did not give back the locks it keeps");
        }
        ok
    }

    /// Marks `ino`'s locks as wanted by more than one mount.
    fn contended(&self, ino: u64) {
        let mut c = self.lock_contended.lock();
        if c.len() >= MAX_CONTENDED {
            let now = Instant::now();
            c.retain(|_, t| now.duration_since(*t) < CONTENDED_FOR);
            if c.len() >= MAX_CONTENDED {
                c.clear();
            }
        }
        c.insert(ino, Instant::now());
    }

    /// Whether `ino`'s locks may be delegated: not recalled recently.
    pub fn may_delegate_locks(&self, ino: u64) -> bool {
        self.lock_contended.lock().get(&ino).is_none_or(|t| t.elapsed() >= CONTENDED_FOR)
    }
}

impl Leases {
    /// Whether `session` has a live lease stream to this leader (a recall
    /// can reach it).
    pub fn streaming(&self, session: &str) -> bool {
        let g = self.lock();
        g.by_name.get(session).and_then(|c| g.sessions.get(c)).is_some_and(|s| !s.cut && s.renewed.is_some())
    }
}
