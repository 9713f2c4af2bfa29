//! Metadata changes acknowledged before the master has committed them
//! (write-behind, like CephFS's asynchronous unlink), and the ordering that
//! keeps that invisible to the client that made them: every later master
//! call of this client first waits until the changes begun before it have
//! landed (`settle`), so the master never answers it from a state older
//! than what the client already reported. The few calls that may skip the
//! wait (a lookup or getattr of an untouched inode) ask `touches` and
//! `removing` first.
//!
//! A change is in flight from `begin` until `end`, whatever its outcome: a
//! failed write-behind change is logged by its sender, and the caches that
//! assumed it are dropped there.
//!
//! Unlinks and attribute changes are sent at once. Creates wait (to ride
//! on their file's first commit), so a `settle` that finds changes in
//! flight first `kick`s their owner into sending what it holds back.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};

/// A name in a directory.
type DirName = (u64, Vec<u8>);

/// What a change in flight is.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// The removal of a name.
    Unlink(DirName),
    /// A create, held back until its file's first commit.
    Create,
    /// A change of one inode's attributes (it commutes with changes of
    /// other inodes: see `is_oldest_for`).
    Attrs,
    /// A rename: both names change.
    Rename(DirName, DirName),
}

/// Stands for "some file" in `State::touched` (inode 0 is never used).
const UNKNOWN_MARK: u64 = 0;

#[derive(Default)]
struct State {
    next: u64,
    /// The changes in flight by sequence number, with what each touches
    /// (undone at `end`): the inodes, and what kind of change it is.
    inflight: BTreeMap<u64, (Vec<u64>, Kind)>,
    /// Inodes whose attributes the changes in flight alter, with counts;
    /// UNKNOWN_MARK counts the changes whose file is not known here.
    touched: HashMap<u64, usize>,
    /// (directory, name) pairs being removed, with counts.
    removing: HashMap<DirName, usize>,
}

fn creating(s: &State) -> bool {
    s.inflight.values().any(|(_, k)| *k == Kind::Create)
}

pub struct WriteBehind {
    state: Mutex<State>,
    changed: tokio::sync::Notify,
    /// Someone waits for the changes in flight: send the held-back ones.
    kick: tokio::sync::Notify,
    limit: usize,
}

/// One change in flight; hand it back to `end`.
#[derive(Debug)]
#[must_use = "a write-behind change must be ended"]
pub struct Ticket(u64);

impl Ticket {
    /// Its place in the order changes were begun.
    pub fn seq(&self) -> u64 {
        self.0
    }
}

impl WriteBehind {
    /// At most `limit` changes in flight; `begin` waits beyond that.
    pub fn new(limit: usize) -> WriteBehind {
        WriteBehind {
            state: Mutex::new(State::default()),
            changed: tokio::sync::Notify::new(),
            kick: tokio::sync::Notify::new(),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Waits until `done` holds for the state, rechecking on every change.
    async fn wait_until(&self, done: impl Fn(&State) -> bool) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so an `end` between the check
            // and the await still wakes us.
            notified.as_mut().enable();
            if done(&self.lock()) {
                return;
            }
            notified.await;
        }
    }

    /// Registers the removal of `name` in `dir`, which alters the
    /// attributes of `dir` and of the file it names (`file`, when known).
    pub async fn begin(&self, dir: u64, name: &[u8], file: Option<u64>) -> Ticket {
        loop {
            self.wait_until(|s| s.inflight.len() < self.limit).await;
            if let Some(t) = self.try_begin(dir, name, file) {
                return t;
            }
        }
    }

    /// `begin`, or None at the limit.
    pub fn try_begin(&self, dir: u64, name: &[u8], file: Option<u64>) -> Option<Ticket> {
        let mut s = self.lock();
        if s.inflight.len() >= self.limit {
            return None;
        }
        let seq = s.next;
        s.next += 1;
        // A file not known here may be any file: marked as such.
        let inos = vec![dir, file.unwrap_or(UNKNOWN_MARK)];
        for &i in &inos {
            *s.touched.entry(i).or_default() += 1;
        }
        *s.removing.entry((dir, name.to_vec())).or_default() += 1;
        s.inflight.insert(seq, (inos, Kind::Unlink((dir, name.to_vec()))));
        Some(Ticket(seq))
    }

    /// Registers a create of `ino` in `dir` (held back until its file's
    /// first commit, or a `kick`), or None at the limit.
    pub fn try_begin_create(&self, dir: u64, ino: u64) -> Option<Ticket> {
        let mut s = self.lock();
        if s.inflight.len() >= self.limit {
            return None;
        }
        let seq = s.next;
        s.next += 1;
        for i in [dir, ino] {
            *s.touched.entry(i).or_default() += 1;
        }
        s.inflight.insert(seq, (vec![dir, ino], Kind::Create));
        Some(Ticket(seq))
    }

    /// Registers the rename of `name` in `dir` to `new_name` in `new_dir`,
    /// which alters the attributes of `inos` (both directories, the file,
    /// a file it replaces), or None at the limit. Both names count as
    /// being removed: a lookup of either waits for it.
    pub fn try_begin_rename(
        &self,
        (dir, name): (u64, &[u8]),
        (new_dir, new_name): (u64, &[u8]),
        inos: &[u64],
    ) -> Option<Ticket> {
        let mut s = self.lock();
        if s.inflight.len() >= self.limit {
            return None;
        }
        let seq = s.next;
        s.next += 1;
        for &i in inos {
            *s.touched.entry(i).or_default() += 1;
        }
        let (from, to) = ((dir, name.to_vec()), (new_dir, new_name.to_vec()));
        *s.removing.entry(from.clone()).or_default() += 1;
        *s.removing.entry(to.clone()).or_default() += 1;
        s.inflight.insert(seq, (inos.to_vec(), Kind::Rename(from, to)));
        Some(Ticket(seq))
    }

    /// Registers a change of `ino`'s attributes, or None at the limit.
    pub fn try_begin_attrs(&self, ino: u64) -> Option<Ticket> {
        let mut s = self.lock();
        if s.inflight.len() >= self.limit {
            return None;
        }
        let seq = s.next;
        s.next += 1;
        *s.touched.entry(ino).or_default() += 1;
        s.inflight.insert(seq, (vec![ino], Kind::Attrs));
        Some(Ticket(seq))
    }

    /// True if no change begun before `t` is still in flight: what `t`
    /// stands for may be sent without waiting for anything.
    pub fn is_oldest(&self, t: &Ticket) -> bool {
        self.lock().inflight.first_key_value().is_none_or(|(&first, _)| first >= t.0)
    }

    /// Whether the create `t` of `ino` as `name` in `dir` may ride on its
    /// file's commit now, past the changes begun before it that it
    /// commutes with: attribute changes of other inodes (a create riding
    /// on its file's commit need not wait for a directory's times set just
    /// before in another directory) and renames of other files between other names (a rename sent
    /// behind, rsync's temporary file moved into place, must not hold up
    /// the next file's create; one of the create's own name must land
    /// first, or the create would take the name from the file it moves).
    pub fn may_ride(&self, t: &Ticket, dir: u64, name: &[u8], ino: u64) -> bool {
        let other_name = |n: &DirName| n.0 != dir || n.1 != name;
        self.lock().inflight.range(..t.0).all(|(_, (touched, k))| match k {
            Kind::Attrs => !touched.iter().any(|i| *i == dir || *i == ino),
            Kind::Rename(from, to) => !touched.contains(&ino) && other_name(from) && other_name(to),
            _ => false,
        })
    }

    /// Resolves when a `settle` wants the held-back changes sent.
    pub async fn kicked(&self) {
        self.kick.notified().await
    }

    /// The change landed or failed for good. Returns whether `ino` is
    /// still touched by another change in flight.
    pub fn end(&self, t: Ticket, ino: u64) -> bool {
        let still = {
            let mut s = self.lock();
            if let Some((inos, kind)) = s.inflight.remove(&t.0) {
                for i in inos {
                    if let Some(n) = s.touched.get_mut(&i) {
                        *n -= 1;
                        if *n == 0 {
                            s.touched.remove(&i);
                        }
                    }
                }
                let names = match kind {
                    Kind::Unlink(key) => vec![key],
                    Kind::Rename(from, to) => vec![from, to],
                    _ => vec![],
                };
                for key in names {
                    if let Some(n) = s.removing.get_mut(&key) {
                        *n -= 1;
                        if *n == 0 {
                            s.removing.remove(&key);
                        }
                    }
                }
            }
            s.touched.contains_key(&ino)
        };
        self.changed.notify_waiters();
        still
    }

    /// Waits until every change begun before this call has ended (later
    /// ones may still be in flight).
    pub async fn settle(&self) {
        let upto = {
            let s = self.lock();
            if s.inflight.is_empty() {
                return;
            }
            s.next
        };
        self.kick.notify_one();
        self.wait_until(|s| s.inflight.first_key_value().is_none_or(|(&first, _)| first >= upto)).await;
    }

    /// Waits until no change begun before sequence `seq` that touches
    /// `ino` is in flight (held-back creates among them are sent).
    pub async fn settle_touching_before(&self, seq: u64, ino: u64) {
        let touching = |s: &State| s.inflight.range(..seq).any(|(_, (inos, _))| inos.contains(&ino));
        if !touching(&self.lock()) {
            return;
        }
        self.kick.notify_one();
        self.wait_until(|s| !touching(s)).await;
    }

    /// Like `settle_touching_before`, without getting held-back creates
    /// sent: for a change that may wait for them to ride on their file's
    /// commit (or go after one attribute lifetime, or at a `kick`).
    pub async fn settle_touching_before_quietly(&self, seq: u64, ino: u64) {
        self.wait_until(|s| !s.inflight.range(..seq).any(|(_, (inos, _))| inos.contains(&ino))).await;
    }

    /// Gets held-back creates sent now.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Waits until every change begun before the one numbered `seq` (a
    /// ticket's `seq`) has ended, getting held-back creates among them sent.
    pub async fn settle_before_kicking(&self, seq: u64) {
        let waiting = |s: &State| s.inflight.first_key_value().is_some_and(|(&first, _)| first < seq);
        if !waiting(&self.lock()) {
            return;
        }
        self.kick.notify_one();
        self.wait_until(|s| !waiting(s)).await;
    }

    /// Waits until every change begun before `t` has ended.
    pub async fn settle_before(&self, t: &Ticket) {
        self.wait_until(|s| s.inflight.first_key_value().is_none_or(|(&first, _)| first >= t.0)).await;
    }

    /// True if a create is in flight.
    pub fn creating(&self) -> bool {
        creating(&self.lock())
    }

    /// Gets held-back creates sent and waits until no create is in flight.
    pub async fn settle_creates(&self) {
        if !self.creating() {
            return;
        }
        self.kick.notify_one();
        self.wait_until(|s| !creating(s)).await;
    }

    /// True if a change in flight alters the attributes of `ino`.
    pub fn touches(&self, ino: u64) -> bool {
        self.lock().touched.contains_key(&ino)
    }

    /// True if `name` in `dir` is being removed.
    pub fn removing(&self, dir: u64, name: &[u8]) -> bool {
        let s = self.lock();
        !s.removing.is_empty() && s.removing.contains_key(&(dir, name.to_vec()))
    }

    /// True if a change in flight removes a name whose file is not known
    /// here: then the link count of any file may be about to drop.
    pub fn unsure(&self) -> bool {
        self.lock().touched.contains_key(&UNKNOWN_MARK)
    }

    pub fn in_flight(&self) -> usize {
        self.lock().inflight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn settle_waits_for_earlier_changes_only() {
        let wb = Arc::new(WriteBehind::new(8));
        wb.settle().await; // nothing in flight: returns at once
        let a = wb.begin(1, b"a", Some(10)).await;
        assert!(wb.touches(1) && wb.touches(10) && !wb.touches(11));
        assert!(wb.removing(1, b"a") && !wb.removing(1, b"b"));
        let w = wb.clone();
        let settled = tokio::spawn(async move { w.settle().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A change begun after the settle started does not hold it up.
        let b = wb.begin(1, b"b", Some(11)).await;
        assert!(!settled.is_finished());
        assert!(wb.end(a, 1), "directory 1 is still touched by b");
        tokio::time::timeout(Duration::from_secs(5), settled).await.unwrap().unwrap();
        assert!(!wb.touches(10) && wb.touches(11));
        assert!(!wb.end(b, 1));
        assert!(!wb.touches(1) && !wb.removing(1, b"b"));
        assert_eq!(wb.in_flight(), 0);
    }

    #[tokio::test]
    async fn begin_waits_at_the_limit() {
        let wb = Arc::new(WriteBehind::new(2));
        let a = wb.begin(1, b"a", None).await;
        let _b = wb.begin(1, b"b", None).await;
        let w = wb.clone();
        let third = tokio::spawn(async move { w.begin(1, b"c", Some(3)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!third.is_finished());
        wb.end(a, 1);
        let c = tokio::time::timeout(Duration::from_secs(5), third).await.unwrap().unwrap();
        assert_eq!(wb.in_flight(), 2);
        wb.end(c, 1);
    }

    #[tokio::test]
    async fn settle_kicks_held_back_creates_and_waits_for_them() {
        let wb = Arc::new(WriteBehind::new(8));
        let c = wb.try_begin_create(1, 20).unwrap();
        assert!(wb.touches(1) && wb.touches(20) && !wb.removing(1, b"/"));
        assert!(wb.is_oldest(&c));
        let u = wb.begin(1, b"x", None).await;
        assert!(!wb.is_oldest(&u), "the create was begun first");
        let w = wb.clone();
        let settled = tokio::spawn(async move { w.settle().await });
        // The settle asks for the create to be sent...
        tokio::time::timeout(Duration::from_secs(5), wb.kicked()).await.expect("kicked");
        assert!(!settled.is_finished());
        assert!(wb.creating());
        let w = wb.clone();
        let creates = tokio::spawn(async move { w.settle_creates().await });
        wb.end(c, 1);
        tokio::time::timeout(Duration::from_secs(5), creates).await.unwrap().unwrap();
        assert!(!wb.creating());
        assert!(wb.is_oldest(&u));
        wb.end(u, 1);
        // ...and returns once it and the unlink landed.
        tokio::time::timeout(Duration::from_secs(5), settled).await.unwrap().unwrap();
        assert!(!wb.touches(20));
    }

    #[tokio::test]
    async fn attribute_changes_of_other_inodes_do_not_hold_a_create_back() {
        let wb = WriteBehind::new(8);
        let dir_times = wb.try_begin_attrs(5).unwrap();
        assert!(wb.touches(5) && !wb.creating() && !wb.unsure());
        let c = wb.try_begin_create(1, 20).unwrap();
        assert!(!wb.is_oldest(&c));
        assert!(wb.may_ride(&c, 1, b"f", 20), "directory 5 is neither the create's directory nor its file");
        assert!(!wb.may_ride(&c, 5, b"f", 20), "a change of the directory itself comes first");
        let u = wb.begin(1, b"x", None).await;
        let c2 = wb.try_begin_create(1, 21).unwrap();
        assert!(!wb.may_ride(&c2, 1, b"g", 21), "an unlink begun before always counts");
        wb.end(dir_times, 5);
        assert!(!wb.touches(5));
        for t in [c, u, c2] {
            wb.end(t, 1);
        }
        assert_eq!(wb.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_create_rides_past_renames_of_other_names_only() {
        let wb = WriteBehind::new(8);
        // rsync: file 30 moved into place, then the next temporary file.
        let r = wb.try_begin_rename((1, b".a.tmp"), (1, b"a"), &[1, 30]).unwrap();
        assert!(wb.removing(1, b".a.tmp") && wb.removing(1, b"a") && wb.touches(30));
        let c = wb.try_begin_create(1, 31).unwrap();
        assert!(wb.may_ride(&c, 1, b".b.tmp", 31));
        // The moved file's old name made anew: the move lands first.
        assert!(!wb.may_ride(&c, 1, b".a.tmp", 31));
        assert!(!wb.may_ride(&c, 1, b"a", 31));
        wb.end(r, 1);
        assert!(!wb.removing(1, b"a") && !wb.removing(1, b".a.tmp"));
        assert!(wb.may_ride(&c, 1, b"a", 31));
        wb.end(c, 1);
        assert_eq!(wb.in_flight(), 0);
    }

    #[tokio::test]
    async fn the_same_name_twice_counts_twice() {
        let wb = WriteBehind::new(8);
        let a = wb.begin(1, b"x", None).await;
        let b = wb.begin(1, b"x", None).await;
        wb.end(a, 1);
        assert!(wb.removing(1, b"x") && wb.unsure());
        wb.end(b, 1);
        assert!(!wb.removing(1, b"x") && !wb.unsure());
    }
}
