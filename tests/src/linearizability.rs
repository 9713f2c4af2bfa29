//! A linearizability checker (Wing & Gong's search, with memoisation as in
//! Lowe's and Knossos's variants) for a small file-system model: a few names
//! in one directory, each naming nothing or an inode, each inode with a
//! size. A history is linearizable if its operations can be put in one
//! order that respects real time (an operation that completed before
//! another began comes first) and in which every result is what the model
//! gives.

use std::collections::{BTreeMap, HashSet};

/// Names are indices into a fixed set (`a`, `b`, `c`, ...).
#[derive(Clone, Debug)]
pub enum Call {
    /// Exclusive create of a regular file.
    Create(usize),
    Unlink(usize),
    Rename(usize, usize),
    /// Read: which inode a name has, and that inode's size.
    Lookup(usize),
    /// Write: new content (of this size) committed to an inode.
    Write(u64, u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ret {
    Ok,
    Created(u64),
    Found { ino: u64, size: u64 },
    Errno(i32),
}

#[derive(Clone, Debug)]
pub struct Event {
    pub client: usize,
    pub call: Call,
    pub ret: Ret,
    /// Nanoseconds since the history began: invocation and completion.
    pub start: u64,
    pub end: u64,
}

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
struct State {
    names: Vec<Option<u64>>,
    sizes: BTreeMap<u64, u64>,
}

impl State {
    /// Removes `ino` once no name refers to it (files have one link here).
    fn unlinked(mut self, ino: u64) -> State {
        if !self.names.contains(&Some(ino)) {
            self.sizes.remove(&ino);
        }
        self
    }
}

/// The state after `call` returned `ret`, or None if the model forbids it.
fn step(s: &State, call: &Call, ret: &Ret) -> Option<State> {
    const ENOENT: i32 = 2;
    const EEXIST: i32 = 17;
    let mut n = s.clone();
    match (call, ret) {
        (Call::Create(k), Ret::Created(ino)) if s.names[*k].is_none() && !s.sizes.contains_key(ino) => {
            n.names[*k] = Some(*ino);
            n.sizes.insert(*ino, 0);
            Some(n)
        }
        (Call::Create(k), Ret::Errno(EEXIST)) if s.names[*k].is_some() => Some(n),
        (Call::Unlink(k), Ret::Ok) => {
            let ino = s.names[*k]?;
            n.names[*k] = None;
            Some(n.unlinked(ino))
        }
        (Call::Unlink(k), Ret::Errno(ENOENT)) | (Call::Rename(k, _), Ret::Errno(ENOENT)) if s.names[*k].is_none() => {
            Some(n)
        }
        (Call::Rename(a, b), Ret::Ok) => {
            let ino = s.names[*a]?;
            if a == b {
                return Some(n);
            }
            let replaced = s.names[*b];
            n.names[*a] = None;
            n.names[*b] = Some(ino);
            match replaced {
                Some(old) if old != ino => Some(n.unlinked(old)),
                _ => Some(n),
            }
        }
        (Call::Lookup(k), Ret::Found { ino, size }) => {
            (s.names[*k] == Some(*ino) && s.sizes.get(ino) == Some(size)).then_some(n)
        }
        (Call::Lookup(k), Ret::Errno(ENOENT)) if s.names[*k].is_none() => Some(n),
        (Call::Write(ino, size), Ret::Ok) if s.sizes.contains_key(ino) => {
            n.sizes.insert(*ino, *size);
            Some(n)
        }
        (Call::Write(ino, _), Ret::Errno(ENOENT)) if !s.sizes.contains_key(ino) => Some(n),
        _ => None,
    }
}

/// Checks a complete history over `names` names; on failure, says how far
/// the longest linearizable prefix got.
pub fn check(names: usize, history: &[Event]) -> Result<(), String> {
    let mut ev: Vec<&Event> = history.iter().collect();
    ev.sort_by_key(|e| e.start);
    let init = State { names: vec![None; names], sizes: BTreeMap::new() };
    let mut search = Search { ev: &ev, seen: HashSet::new(), done: vec![false; ev.len()], best: 0 };
    if search.dfs(&init, 0) {
        Ok(())
    } else {
        Err(format!(
            "history of {} operations is not linearizable (the longest linearizable prefix has {} operations)",
            ev.len(),
            search.best
        ))
    }
}

struct Search<'a> {
    ev: &'a [&'a Event],
    /// (linearized set, state) pairs already shown to lead nowhere.
    seen: HashSet<(Vec<u64>, State)>,
    done: Vec<bool>,
    best: usize,
}

impl Search<'_> {
    fn key(&self) -> Vec<u64> {
        let mut bits = vec![0u64; self.done.len().div_ceil(64)];
        for (i, d) in self.done.iter().enumerate() {
            if *d {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        bits
    }

    fn dfs(&mut self, s: &State, count: usize) -> bool {
        self.best = self.best.max(count);
        if count == self.ev.len() {
            return true;
        }
        let key = (self.key(), s.clone());
        if self.seen.contains(&key) {
            return false;
        }
        // Any pending operation invoked before the earliest pending
        // completion may take effect next.
        let first_end = (0..self.ev.len()).filter(|i| !self.done[*i]).map(|i| self.ev[i].end).min().unwrap_or(u64::MAX);
        for i in 0..self.ev.len() {
            if self.done[i] {
                continue;
            }
            if self.ev[i].start > first_end {
                break;
            }
            if let Some(next) = step(s, &self.ev[i].call, &self.ev[i].ret) {
                self.done[i] = true;
                if self.dfs(&next, count + 1) {
                    return true;
                }
                self.done[i] = false;
            }
        }
        self.seen.insert(key);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(client: usize, call: Call, ret: Ret, start: u64, end: u64) -> Event {
        Event { client, call, ret, start, end }
    }

    #[test]
    fn a_sequential_history_that_follows_the_model_passes() {
        let h = vec![
            e(0, Call::Create(0), Ret::Created(7), 0, 1),
            e(0, Call::Write(7, 100), Ret::Ok, 2, 3),
            e(1, Call::Lookup(0), Ret::Found { ino: 7, size: 100 }, 4, 5),
            e(1, Call::Rename(0, 1), Ret::Ok, 6, 7),
            e(0, Call::Lookup(0), Ret::Errno(2), 8, 9),
            e(0, Call::Create(1), Ret::Errno(17), 10, 11),
            e(1, Call::Unlink(1), Ret::Ok, 12, 13),
            e(1, Call::Write(7, 5), Ret::Errno(2), 14, 15),
        ];
        check(2, &h).unwrap();
    }

    #[test]
    fn a_stale_read_after_a_completed_create_fails() {
        let h = vec![e(0, Call::Create(0), Ret::Created(7), 0, 10), e(1, Call::Lookup(0), Ret::Errno(2), 20, 30)];
        assert!(check(1, &h).is_err());
    }

    #[test]
    fn a_read_overlapping_a_create_may_see_either() {
        for ret in [Ret::Errno(2), Ret::Found { ino: 7, size: 0 }] {
            let h = vec![e(0, Call::Create(0), Ret::Created(7), 0, 10), e(1, Call::Lookup(0), ret, 5, 30)];
            check(1, &h).unwrap();
        }
    }

    #[test]
    fn an_operation_applied_twice_fails() {
        // Two exclusive creates of one name both succeed: a retried create
        // was applied again instead of being answered.
        let h = vec![e(0, Call::Create(0), Ret::Created(7), 0, 10), e(0, Call::Create(0), Ret::Created(8), 11, 20)];
        assert!(check(1, &h).is_err());
    }

    #[test]
    fn a_lost_write_fails() {
        let h = vec![
            e(0, Call::Create(0), Ret::Created(7), 0, 1),
            e(0, Call::Write(7, 100), Ret::Ok, 2, 3),
            e(1, Call::Lookup(0), Ret::Found { ino: 7, size: 0 }, 4, 5),
        ];
        assert!(check(1, &h).is_err());
    }

    #[test]
    fn reads_must_agree_on_the_order_of_concurrent_writes() {
        // Two overlapping writes; one reader sees 1 then 2, another 2 then
        // 1 after both completed: no single order explains both.
        let h = vec![
            e(0, Call::Create(0), Ret::Created(7), 0, 1),
            e(0, Call::Write(7, 1), Ret::Ok, 2, 10),
            e(1, Call::Write(7, 2), Ret::Ok, 2, 10),
            e(2, Call::Lookup(0), Ret::Found { ino: 7, size: 2 }, 11, 12),
            e(3, Call::Lookup(0), Ret::Found { ino: 7, size: 1 }, 13, 14),
        ];
        assert!(check(1, &h).is_err());
    }
}
