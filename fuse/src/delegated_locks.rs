//! The files whose advisory locks the masters delegated to this mount, and
//! their tables (the rules are `tessera_proto::locks`; locks.rs takes and
//! gives them back).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tessera_proto::locks::{set, Held, Want};

/// One file's locks kept here: fcntl and flock tables.
#[derive(Default, Clone)]
pub(crate) struct Tables {
    pub posix: Vec<Held>,
    pub flock: Vec<Held>,
}

impl Tables {
    fn table(&mut self, flock: bool) -> &mut Vec<Held> {
        if flock {
            &mut self.flock
        } else {
            &mut self.posix
        }
    }
}

/// The files whose locks the masters delegated to this mount.
#[derive(Default)]
pub struct Delegated {
    pub(crate) files: Mutex<HashMap<u64, Tables>>,
    /// Per file: its lock calls, hand-overs and give-backs one at a time.
    gates: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    /// Wakes local waiters when a delegated lock is dropped.
    pub(crate) changed: tokio::sync::Notify,
    /// Files locked at the masters since their locks were last kept here:
    /// a second lock call asks for them (one flock per open would pay a
    /// give-back at each close).
    pub(crate) asked: Mutex<std::collections::HashSet<u64>>,
}

impl Delegated {
    pub(crate) fn gate(&self, ino: u64) -> Arc<tokio::sync::Mutex<()>> {
        {
            let mut a = self.asked.lock();
            if a.len() > 100_000 {
                a.clear();
            }
        }
        let mut g = self.gates.lock();
        if g.len() > 10_000 {
            // Gates nobody waits at are made again on demand.
            g.retain(|_, m| Arc::strong_count(m) > 1);
        }
        g.entry(ino).or_default().clone()
    }

    pub fn holds(&self, ino: u64) -> bool {
        self.files.lock().contains_key(&ino)
    }

    /// Applies a request here if `ino`'s locks are delegated: Some(granted).
    pub(crate) fn try_set(
        &self,
        ino: u64,
        flock: bool,
        owner: &str,
        pid: u32,
        range: (u64, u64),
        want: Want,
    ) -> Option<bool> {
        let mut files = self.files.lock();
        let t = files.get_mut(&ino)?.table(flock);
        match set(t, owner, pid, range.0, range.1, want) {
            Ok(next) => {
                *t = next;
                if want != Want::Write {
                    self.changed.notify_waiters();
                }
                Some(true)
            }
            Err(_) => Some(false),
        }
    }

    pub(crate) fn clear(&self) {
        self.files.lock().clear();
        self.asked.lock().clear();
        self.changed.notify_waiters();
    }
}
