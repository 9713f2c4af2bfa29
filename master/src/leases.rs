//! Cache leases of mounts, held on the leader (the CephFS capability /
//! NFSv4 delegation idea, sized for Tessera).
//!
//! A mount keeps one Watch stream open to the leader and renews its lease
//! on it every quarter lease; a renewal is answered only after a fresh
//! quorum round, so only a real leader extends a lease. Every read the
//! leader answers for a mount registers the inodes it returned under that
//! mount's session (and says so in the reply's `lease` flag); the mount
//! may then keep the answer while its lease runs, with no round trip.
//!
//! Every change first reaches the masters' state (a Raft commit), then,
//! before the change is acknowledged to its caller, the leader revokes the
//! changed inodes and names from every other session that registered them
//! and waits for their acknowledgements. A revoked session stays
//! registered (a mount cannot make the kernel forget every entry of a
//! directory, so it may still hold some), and a changing session is
//! registered on what it changed before the commit (its kernel caches the
//! entries its own creates and renames return): both hear of later changes. A session that does not answer in
//! `ack_wait` is cut off: its stream is closed and the change waits until
//! the session's lease has surely run out (its last renewal + the lease;
//! the mount counts its lease from before it asked, so it stops trusting
//! its caches no later than that). A new leader knows no sessions, and needs
//! not: every lease a predecessor granted has ended before any new leader
//! can be elected (`hold_after_election` gives the argument); only when the
//! settings break that argument does it hold changes' acknowledgements for
//! the difference after its election.
//!
//! Race between a read and a change: a read that overlaps a change of what
//! it returns (one in flight when the read began, or begun before the
//! registration, touching any inode the read registers) is answered with
//! `lease = false` and is not cached by the mount. Changes of other inodes
//! do not matter: they will find the registration or did not touch it.
//!
//! Exclusive directories: a lookup in or listing of a directory that no
//! other session holds makes the caller its exclusive holder (`exclusive`
//! in the reply). While it is, the mount may acknowledge unlinks in the
//! directory before they commit (queued, sent in batches). Before any other
//! session reads or changes the directory, the leader recalls it: a revoke
//! of the directory, which the mount acknowledges only after its queued
//! unlinks (and attribute changes of directories it holds) have committed;
//! it has a whole lease to answer, not half. No other session is registered on an exclusive
//! directory (their reads are answered without a lease until it is
//! recalled). A mount cut off with unlinks still queued sends them late;
//! each names the inode it saw, so it cannot remove a file made since.

mod lock_recall;

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_proto::pb::{EntryRef, WatchEvent};
use tokio::sync::{mpsc, watch};
use tonic::Status;

/// Registrations one session may hold; past it the session is told to
/// drop everything and starts again empty (bounds the leader's memory).
const MAX_INOS_PER_SESSION: usize = 1_000_000;

/// What a change touched: attributes (and, for directories, entries) of
/// `inos`, and names `entries`.
#[derive(Default, Debug, Clone)]
pub struct Touched {
    pub inos: Vec<u64>,
    pub entries: Vec<(u64, Vec<u8>)>,
    /// Attributes only (atime): holders keep cached pages.
    pub attrs_only: bool,
    /// Revoked from the changing session too: a change it cannot apply
    /// to its own caches (the master decides which atimes are due).
    pub include_origin: bool,
    /// A recall of exclusive holds: the holder first sends its queued
    /// write-behind changes, so it is given a whole lease (not half) to
    /// acknowledge before it is cut off.
    pub flush: bool,
}

impl Touched {
    pub fn is_empty(&self) -> bool {
        self.inos.is_empty() && self.entries.is_empty()
    }
}

pub type EventTx = mpsc::Sender<Result<WatchEvent, Status>>;

struct Session {
    name: String,
    tx: Option<EventTx>,
    /// When the last renewal was answered: the session's lease ends by
    /// this plus the lease.
    renewed: Option<Instant>,
    inos: HashSet<u64>,
    /// Highest revoke sequence acknowledged.
    acked: watch::Sender<u64>,
    /// Closed or cut off: trusted caches end at `renewed + lease`.
    cut: bool,
}

impl Session {
    fn lease_end(&self, lease: Duration) -> Option<Instant> {
        self.renewed.map(|r| r + lease)
    }
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<u64, Session>,
    by_name: HashMap<String, u64>,
    holders: HashMap<u64, Vec<u64>>,
    /// Directory -> the one session holding it exclusively.
    excl: HashMap<u64, u64>,
    /// Orphan -> the sessions it was kept for that have not released it
    /// (soft: a new leader does not know, and frees at the first release).
    orphans: HashMap<u64, HashSet<String>>,
    next_conn: u64,
    next_seq: u64,
    /// No change is acknowledged before this (`hold_after_election`).
    ready_at: Option<Instant>,
}

/// Changes begun recently this many at most are remembered: a read that
/// spans more is not leased.
const CHANGE_LOG: usize = 4096;

/// The keys (inodes, parents of names) of changes in flight and of the
/// changes begun recently, by sequence number.
#[derive(Default)]
struct Changes {
    last: u64,
    active: std::collections::BTreeMap<u64, Arc<[u64]>>,
    log: std::collections::VecDeque<(u64, Arc<[u64]>)>,
}

/// Allowance for clock rates differing between a mount and the masters
/// (on top of the tenth the mount already takes off,
/// `tessera_proto::lease_trusted_for`).
const CLOCK_MARGIN: Duration = Duration::from_millis(100);

/// How long a new leader holds changes' acknowledgements after its
/// election, so that no mount still trusts a lease from a predecessor.
///
/// A mount counts its lease as 9/10 of `lease` from before it sent the
/// renewal (fuse/src/leases.rs). The leader answers a renewal only after a
/// fresh quorum round that began after the renewal arrived (meta_watch.rs):
/// each follower in that quorum acknowledged a heartbeat sent after the
/// mount asked, and from then on refuses to vote for anyone else for
/// `leader_lease` (openraft's leader lease, `election_timeout_max`; there
/// is no leadership transfer here to bypass it). Any quorum that elects a
/// new leader shares a member with the renewal's quorum, so no new leader
/// is elected before the mount's ask + `leader_lease`. If 9/10 of `lease`
/// plus a margin fits in that, every predecessor's lease has ended when a
/// new leader starts: no hold. A follower that restarts forgets its vote
/// lease, so a restarted master waits out a lease before it runs Raft
/// (`restart_quarantine`).
pub fn hold_after_election(lease: Duration, leader_lease: Duration) -> Duration {
    restart_quarantine(lease).saturating_sub(leader_lease)
}

/// How long a master whose state survived a restart waits before it runs
/// Raft (counted from its start): a vote it gives must not end a lease a
/// mount still trusts (see `hold_after_election`).
pub fn restart_quarantine(lease: Duration) -> Duration {
    tessera_proto::lease_trusted_for(lease) + CLOCK_MARGIN
}

pub struct Leases {
    pub lease: Duration,
    pub ack_wait: Duration,
    /// `hold_after_election` for this master's settings.
    new_leader_hold: Duration,
    inner: Mutex<Inner>,
    /// A read's lease is valid only if no change of what it registers was
    /// in flight at its start or began until it was registered.
    changes: Mutex<Changes>,
    /// Files whose delegated locks were recalled lately (lock_recall.rs).
    lock_contended: Mutex<HashMap<u64, Instant>>,
}

/// A change in flight (see `Leases::begin_change`).
pub struct ChangeGuard<'a>(&'a Leases, u64);

impl Drop for ChangeGuard<'_> {
    fn drop(&mut self) {
        self.0.changes.lock().active.remove(&self.1);
    }
}

/// The state at a read's start (see `Leases::begin_read`).
pub struct ReadToken {
    /// The last change begun before the read.
    at: u64,
    /// Keys of the changes in flight then.
    active: Vec<Arc<[u64]>>,
}

/// What a read's caller may keep (see `Leases::grant`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grant {
    /// The answer is under the caller's lease until revoked.
    pub lease: bool,
    /// The caller holds the directory exclusively.
    pub exclusive: bool,
    /// The attributes returned may be kept too (for a lookup, `lease`
    /// covers the name only).
    pub attrs: bool,
}

impl Leases {
    /// `leader_lease`: how long a follower that acknowledged a leader
    /// refuses to vote for another (openraft: `election_timeout_max`).
    pub fn new(lease: Duration, leader_lease: Duration) -> Leases {
        Leases {
            lease,
            new_leader_hold: hold_after_election(lease, leader_lease),
            ack_wait: (lease / 2).max(Duration::from_millis(100)),
            inner: Mutex::new(Inner::default()),
            changes: Mutex::new(Changes::default()),
            lock_contended: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// This master became leader (`true`) or stopped being it: every
    /// session is dropped (their streams end and the mounts reconnect to
    /// the leader with empty caches). A new leader holds changes only
    /// when its settings need it (`hold_after_election`).
    pub fn leadership(&self, leader: bool) {
        let mut g = self.lock();
        g.sessions.clear();
        g.by_name.clear();
        g.holders.clear();
        g.excl.clear();
        let hold = self.new_leader_hold;
        g.ready_at = (leader && !hold.is_zero()).then(|| Instant::now() + hold);
    }

    /// A mount opened its stream: a new connection id. An older stream of
    /// the same session is cut off (its caches were dropped when it broke,
    /// but the change it may have missed waits out its lease all the same).
    pub fn connect(&self, name: &str, tx: EventTx) -> u64 {
        let mut g = self.lock();
        g.next_conn += 1;
        let conn = g.next_conn;
        if let Some(old) = g.by_name.insert(name.to_string(), conn) {
            if let Some(s) = g.sessions.get_mut(&old) {
                s.cut = true;
                s.tx = None;
            }
            g.excl.retain(|_, c| *c != old);
        }
        let (acked, _) = watch::channel(0);
        g.sessions.insert(
            conn,
            Session { name: name.to_string(), tx: Some(tx), renewed: None, inos: HashSet::new(), acked, cut: false },
        );
        conn
    }

    /// The stream of `conn` ended.
    pub fn disconnect(&self, conn: u64) {
        let mut g = self.lock();
        let name = g.sessions.get_mut(&conn).map(|s| {
            s.cut = true;
            s.tx = None;
            s.name.clone()
        });
        g.excl.retain(|_, c| *c != conn);
        if let Some(n) = name {
            if g.by_name.get(&n) == Some(&conn) {
                g.by_name.remove(&n);
            }
        }
        self.prune(&mut g);
    }

    /// A renewal of `conn` is being answered now.
    pub fn renewed(&self, conn: u64) -> Option<EventTx> {
        let mut g = self.lock();
        let s = g.sessions.get_mut(&conn).filter(|s| !s.cut)?;
        s.renewed = Some(Instant::now());
        s.tx.clone()
    }

    pub fn acked(&self, conn: u64, seq: u64) {
        let g = self.lock();
        if let Some(s) = g.sessions.get(&conn) {
            s.acked.send_if_modified(|a| {
                let newer = seq > *a;
                if newer {
                    *a = seq;
                }
                newer
            });
        }
    }

    fn changes(&self) -> parking_lot::MutexGuard<'_, Changes> {
        self.changes.lock()
    }

    /// Called before a read's state is looked at.
    pub fn begin_read(&self) -> ReadToken {
        let c = self.changes();
        ReadToken { at: c.last, active: c.active.values().cloned().collect() }
    }

    /// Whether no change of `inos` overlapped the read that began at `token`.
    fn undisturbed(&self, inos: &[u64], token: &ReadToken) -> bool {
        let touches = |keys: &[u64]| keys.iter().any(|k| inos.contains(k));
        if token.active.iter().any(|k| touches(k)) {
            return false;
        }
        let c = self.changes();
        if c.last == token.at {
            return true;
        }
        // Every change begun since must still be in the log.
        if c.log.front().is_none_or(|(seq, _)| *seq > token.at + 1) {
            return false;
        }
        !c.log.iter().filter(|(seq, _)| *seq > token.at).any(|(_, k)| touches(k))
    }

    /// Registers `inos` under the live session `name` after a read; true if
    /// the read may be cached (the session holds a renewed lease and no
    /// change overlapped the read).
    pub fn grant(&self, name: Option<&str>, inos: &[u64], token: ReadToken) -> bool {
        self.grant_in(name, inos, None, token).lease
    }

    /// `grant` for a read of directory `dir` (a lookup in it, a listing):
    /// also makes the session its exclusive holder when no other session
    /// holds it.
    pub fn grant_in(&self, name: Option<&str>, inos: &[u64], dir: Option<u64>, token: ReadToken) -> Grant {
        let g = self.grant_core(name, inos, inos, dir, &token);
        Grant { attrs: g.lease, ..g }
    }

    /// A lookup of a name in `parent` that found `ino`: the name (a change
    /// of `parent`'s entries) and `ino`'s attributes are leased apart, so
    /// a directory whose files are being written still resolves from the
    /// kernel's cache while its own attributes are asked for again.
    pub fn grant_lookup(&self, name: Option<&str>, parent: u64, ino: u64, token: ReadToken) -> Grant {
        let g = self.grant_core(name, &[parent, ino], &[parent], Some(parent), &token);
        Grant { attrs: g.lease && self.undisturbed(&[ino], &token), ..g }
    }

    /// Registers `inos`; the lease says no change of `check` overlapped.
    fn grant_core(
        &self,
        name: Option<&str>,
        inos: &[u64],
        check: &[u64],
        dir: Option<u64>,
        token: &ReadToken,
    ) -> Grant {
        let no = Grant::default();
        let Some(name) = name else { return no };
        let mut g = self.lock();
        let Some(&conn) = g.by_name.get(name) else { return no };
        // Another session holds one of these exclusively: answered, not kept.
        if inos.iter().any(|i| g.excl.get(i).is_some_and(|c| *c != conn)) {
            return no;
        }
        let Some(s) = g.sessions.get_mut(&conn).filter(|s| !s.cut && s.renewed.is_some()) else { return no };
        let mut fresh = Vec::new();
        for &ino in inos {
            if s.inos.insert(ino) {
                fresh.push(ino);
            }
        }
        let overflow = s.inos.len() > MAX_INOS_PER_SESSION;
        for ino in fresh {
            g.holders.entry(ino).or_default().push(conn);
        }
        if overflow {
            self.revoke_all_locked(&mut g, conn);
            return no;
        }
        // Checked after registering: a change begun from here on finds us.
        drop(g);
        let lease = self.undisturbed(check, token);
        let mut g = self.lock();
        // Decided under the lock, the directory checked again: a change
        // marks itself in flight before it looks for exclusive holders, so
        // one that began after this check finds the hold and recalls it.
        let exclusive = lease
            && dir.is_some_and(|d| {
                let sole = g.holders.get(&d).is_some_and(|h| h.as_slice() == [conn]);
                let sole = sole && self.undisturbed(&[d], token);
                if sole {
                    g.excl.insert(d, conn);
                }
                sole
            });
        Grant { lease, exclusive, attrs: false }
    }

    /// Registers the session `name` on what its change is about to touch
    /// (before the commit: a later change by another finds it).
    pub fn hold(&self, name: Option<&str>, keys: &[u64]) {
        let Some(name) = name else { return };
        let mut g = self.lock();
        let Some(&conn) = g.by_name.get(name) else { return };
        let Some(s) = g.sessions.get_mut(&conn).filter(|s| !s.cut) else { return };
        let fresh: Vec<u64> = keys.iter().copied().filter(|k| s.inos.insert(*k)).collect();
        let overflow = s.inos.len() > MAX_INOS_PER_SESSION;
        for k in fresh {
            g.holders.entry(k).or_default().push(conn);
        }
        if overflow {
            self.revoke_all_locked(&mut g, conn);
        }
    }

    /// Before a read or change by session `origin` of `keys`: recalls those
    /// another session holds exclusively (see the module comment) and waits
    /// for their holders' queued changes. Free when nothing is exclusive.
    /// Returns whether anything was recalled.
    pub async fn recall(&self, keys: &[u64], origin: Option<&str>) -> bool {
        let dirs: Vec<u64> = {
            let g = self.lock();
            if g.excl.is_empty() {
                return false;
            }
            let me = origin.and_then(|o| g.by_name.get(o).copied());
            keys.iter().copied().filter(|k| g.excl.get(k).is_some_and(|c| Some(*c) != me)).collect()
        };
        if dirs.is_empty() {
            return false;
        }
        self.revoke(&Touched { inos: dirs, flush: true, ..Default::default() }, origin).await;
        true
    }

    /// Too many registrations: the session drops everything.
    fn revoke_all_locked(&self, g: &mut Inner, conn: u64) {
        g.next_seq += 1;
        let seq = g.next_seq;
        g.excl.retain(|_, c| *c != conn);
        if let Some(s) = g.sessions.get_mut(&conn) {
            let inos: Vec<u64> = s.inos.drain().collect();
            if let Some(tx) = &s.tx {
                let _ = tx.try_send(Ok(WatchEvent { revoke: seq, all: true, ..Default::default() }));
            }
            for ino in inos {
                forget_holder(&mut g.holders, ino, conn);
            }
        }
    }

    /// Marks a change of `keys` in flight until the guard drops.
    pub fn begin_change(&self, keys: &[u64]) -> ChangeGuard<'_> {
        let mut c = self.changes();
        c.last += 1;
        let seq = c.last;
        let keys: Arc<[u64]> = keys.into();
        c.active.insert(seq, keys.clone());
        c.log.push_back((seq, keys));
        while c.log.len() > CHANGE_LOG {
            c.log.pop_front();
        }
        ChangeGuard(self, seq)
    }

    /// After a change reached the state and before it is acknowledged:
    /// revokes what it touched from every session but `origin`'s and waits
    /// for them (bounded: see the module comment).
    pub async fn revoke(&self, touched: &Touched, origin: Option<&str>) {
        self.revoke_orphaning(touched, origin, &[]).await
    }

    /// Of `inos`, those a session other than `origin` is registered on
    /// (a change that removes their last name keeps them as orphans: the
    /// session may have them open).
    pub fn held_by_others(&self, inos: &[u64], origin: Option<&str>) -> Vec<u64> {
        let g = self.lock();
        let me = origin.and_then(|o| g.by_name.get(o).copied());
        inos.iter().copied().filter(|i| g.holders.get(i).is_some_and(|h| h.iter().any(|c| Some(*c) != me))).collect()
    }

    /// Files a change kept as orphans (`orphaned`): for the changing
    /// session if it had them open (`own_open`), and for every other
    /// session holding them.
    pub fn kept_orphans(&self, orphaned: &[u64], origin: Option<&str>, own_open: &[u64]) {
        if orphaned.is_empty() {
            return;
        }
        let mut g = self.lock();
        for &ino in orphaned {
            let mut for_whom: HashSet<String> = HashSet::new();
            if let Some(o) = origin.filter(|_| own_open.contains(&ino)) {
                for_whom.insert(o.to_string());
            }
            for c in g.holders.get(&ino).into_iter().flatten() {
                if let Some(s) = g.sessions.get(c) {
                    if Some(s.name.as_str()) != origin {
                        for_whom.insert(s.name.clone());
                    }
                }
            }
            g.orphans.entry(ino).or_default().extend(for_whom);
        }
    }

    /// `session` closed these orphans: those no other session it was kept
    /// for still holds open, to be freed now.
    pub fn released(&self, inos: &[u64], session: Option<&str>) -> Vec<u64> {
        let mut g = self.lock();
        inos.iter()
            .copied()
            .filter(|ino| {
                let Some(left) = g.orphans.get_mut(ino) else { return true };
                if let Some(s) = session {
                    left.remove(s);
                }
                if left.is_empty() || session.is_none() {
                    g.orphans.remove(ino);
                    true
                } else {
                    false
                }
            })
            .collect()
    }

    /// `revoke`, telling each session which of the files it holds were
    /// kept as orphans (`orphaned`) for it.
    pub async fn revoke_orphaning(&self, touched: &Touched, origin: Option<&str>, orphaned: &[u64]) {
        let ready_at = self.lock().ready_at;
        if let Some(at) = ready_at {
            tokio::time::sleep_until(at.into()).await;
        }
        if touched.is_empty() {
            return;
        }
        let mut waits: Vec<(u64, u64, watch::Receiver<u64>)> = Vec::new();
        let mut cut_ends: Vec<Instant> = Vec::new();
        {
            let mut g = self.lock();
            let origin = origin.filter(|_| !touched.include_origin);
            let origin_conn = origin.and_then(|o| g.by_name.get(o).copied());
            let keys = touched.inos.iter().copied().chain(touched.entries.iter().map(|(p, _)| *p));
            let keys: HashSet<u64> = keys.collect();
            let mut conns: HashSet<u64> = HashSet::new();
            for ino in &keys {
                if let Some(hs) = g.holders.get(ino) {
                    conns.extend(hs.iter().filter(|c| Some(**c) != origin_conn));
                }
            }
            let entries: Vec<EntryRef> =
                touched.entries.iter().map(|(p, n)| EntryRef { parent: *p, name: n.clone().into() }).collect();
            for conn in conns {
                g.next_seq += 1;
                let seq = g.next_seq;
                let lease = self.lease;
                let Some(s) = g.sessions.get_mut(&conn) else { continue };
                let ev = WatchEvent {
                    revoke: seq,
                    inos: touched.inos.clone(),
                    entries: entries.clone(),
                    attrs_only: touched.attrs_only,
                    orphaned: orphaned.iter().copied().filter(|i| s.inos.contains(i)).collect(),
                    ..Default::default()
                };
                let sent = !s.cut && s.tx.as_ref().is_some_and(|tx| tx.try_send(Ok(ev)).is_ok());
                if sent {
                    waits.push((conn, seq, s.acked.subscribe()));
                } else {
                    s.cut = true;
                    s.tx = None;
                    cut_ends.extend(s.lease_end(lease));
                    g.excl.retain(|_, c| *c != conn);
                }
                // An atime change (the holder's own read) is no recall.
                for ino in keys.iter().filter(|_| !touched.attrs_only) {
                    if g.excl.get(ino) == Some(&conn) {
                        g.excl.remove(ino);
                    }
                }
            }
        }
        let deadline = tokio::time::Instant::now() + if touched.flush { self.lease } else { self.ack_wait };
        for (conn, seq, mut rx) in waits {
            let acked = tokio::time::timeout_at(deadline, rx.wait_for(|a| *a >= seq)).await;
            if !matches!(acked, Ok(Ok(_))) {
                let mut g = self.lock();
                if let Some(s) = g.sessions.get_mut(&conn) {
                    tracing::warn!(session = %s.name, "a mount did not acknowledge a cache revoke: cutting its lease");
                    s.cut = true;
                    s.tx = None;
                    cut_ends.extend(s.lease_end(self.lease));
                }
                g.excl.retain(|_, c| *c != conn);
            }
        }
        if let Some(end) = cut_ends.into_iter().max() {
            tokio::time::sleep_until(end.into()).await;
        }
        let mut g = self.lock();
        self.prune(&mut g);
    }

    /// Forgets cut sessions whose lease is over.
    fn prune(&self, g: &mut Inner) {
        let now = Instant::now();
        let gone: Vec<u64> = g
            .sessions
            .iter()
            .filter(|(_, s)| s.cut && s.lease_end(self.lease).is_none_or(|e| e <= now))
            .map(|(c, _)| *c)
            .collect();
        for conn in gone {
            if let Some(s) = g.sessions.remove(&conn) {
                for ino in s.inos {
                    forget_holder(&mut g.holders, ino, conn);
                }
            }
        }
    }
}

/// `conn` no longer holds `ino`; an inode nobody holds leaves the map.
fn forget_holder(holders: &mut HashMap<u64, Vec<u64>>, ino: u64, conn: u64) {
    if let Some(h) = holders.get_mut(&ino) {
        h.retain(|c| *c != conn);
        if h.is_empty() {
            holders.remove(&ino);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type EventRx = mpsc::Receiver<Result<WatchEvent, Status>>;

    fn touched(inos: &[u64]) -> Touched {
        Touched { inos: inos.to_vec(), ..Default::default() }
    }

    fn leases() -> Leases {
        let l = Leases::new(Duration::from_millis(400), Duration::from_millis(1500));
        l.lock().ready_at = None;
        l
    }

    /// Two renewed sessions "m1" and "m2": their connection ids and event streams.
    fn two_sessions(l: &Leases) -> (u64, EventRx, u64, EventRx) {
        let (tx1, rx1) = mpsc::channel(16);
        let (tx2, rx2) = mpsc::channel(16);
        let c1 = l.connect("m1", tx1);
        let c2 = l.connect("m2", tx2);
        l.renewed(c1);
        l.renewed(c2);
        (c1, rx1, c2, rx2)
    }

    #[tokio::test]
    async fn a_grant_needs_a_renewed_session_and_no_overlapping_change() {
        let l = leases();
        let (tx, _rx) = mpsc::channel(16);
        let c = l.connect("m1", tx);
        assert!(!l.grant(Some("m1"), &[5], l.begin_read()), "not renewed yet");
        l.renewed(c);
        assert!(l.grant(Some("m1"), &[5], l.begin_read()));
        assert!(!l.grant(Some("other"), &[5], l.begin_read()));
        let t = l.begin_read();
        let g = l.begin_change(&[5, 1]);
        assert!(!l.grant(Some("m1"), &[5], t), "a change began during the read");
        assert!(!l.grant(Some("m1"), &[5], l.begin_read()), "a change is in flight");
        // Changes of other inodes do not matter.
        assert!(l.grant(Some("m1"), &[6], l.begin_read()));
        let t = l.begin_read();
        let g2 = l.begin_change(&[7]);
        assert!(l.grant(Some("m1"), &[6], t), "a change of 7 began during a read of 6");
        drop(g);
        drop(g2);
        assert!(l.grant(Some("m1"), &[5], l.begin_read()));
        // A read spanning more changes than are remembered is not leased.
        let t = l.begin_read();
        for _ in 0..CHANGE_LOG + 1 {
            drop(l.begin_change(&[9]));
        }
        assert!(!l.grant(Some("m1"), &[5], t));
    }

    #[tokio::test]
    async fn a_change_revokes_holders_but_the_origin_and_waits_for_acks() {
        let l = std::sync::Arc::new(leases());
        let (c1, mut rx1, c2, mut rx2) = two_sessions(&l);
        assert!(l.grant(Some("m1"), &[7], l.begin_read()));
        assert!(l.grant(Some("m2"), &[7], l.begin_read()));
        let l2 = l.clone();
        let change = tokio::spawn(async move { l2.revoke(&touched(&[7]), Some("m1")).await });
        let ev = rx2.recv().await.unwrap().unwrap();
        assert_eq!(ev.inos, vec![7]);
        assert!(rx1.try_recv().is_err(), "the origin is not revoked");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!change.is_finished(), "waits for the acknowledgement");
        l.acked(c2, ev.revoke);
        tokio::time::timeout(Duration::from_secs(1), change).await.unwrap().unwrap();
        // m2 stays registered (its kernel may keep entries it cannot
        // drop): a second change of 7 by m1 revokes it again.
        assert_eq!(l.lock().holders.get(&7), Some(&vec![c1, c2]));
        let l2 = l.clone();
        let change = tokio::spawn(async move { l2.revoke(&touched(&[7]), Some("m1")).await });
        let ev = rx2.recv().await.unwrap().unwrap();
        l.acked(c2, ev.revoke);
        tokio::time::timeout(Duration::from_secs(1), change).await.unwrap().unwrap();
        // A change registers its origin first: m3's change of 8 reaches m1.
        l.hold(Some("m1"), &[8]);
        assert_eq!(l.lock().holders.get(&8), Some(&vec![c1]));
    }

    #[tokio::test]
    async fn an_atime_touch_revokes_attributes_only_and_the_reader_too() {
        let l = std::sync::Arc::new(leases());
        let (tx, mut rx) = mpsc::channel(16);
        let c = l.connect("m1", tx);
        l.renewed(c);
        assert!(l.grant(Some("m1"), &[11], l.begin_read()));
        let t = Touched { inos: vec![11], attrs_only: true, include_origin: true, ..Default::default() };
        let l2 = l.clone();
        let change = tokio::spawn(async move { l2.revoke(&t, Some("m1")).await });
        let ev = rx.recv().await.unwrap().unwrap();
        assert_eq!(ev.inos, vec![11]);
        // Not attrs_only would make the reader drop the pages it just read.
        assert!(ev.attrs_only, "an atime change keeps holders' pages");
        l.acked(c, ev.revoke);
        tokio::time::timeout(Duration::from_secs(1), change).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_sole_holder_holds_a_directory_exclusively_until_another_session_looks() {
        let l = std::sync::Arc::new(leases());
        let (c1, mut rx1, _c2, mut rx2) = two_sessions(&l);
        let g = l.grant_in(Some("m1"), &[20, 21], Some(20), l.begin_read());
        assert_eq!(g, Grant { lease: true, exclusive: true, attrs: true });
        // Another session's read of 20 is answered without a lease while m1 holds it.
        assert_eq!(l.grant_in(Some("m2"), &[20], Some(20), l.begin_read()), Grant::default());
        // m1's own reads and changes recall nothing.
        let t0 = Instant::now();
        l.recall(&[20], Some("m1")).await;
        assert!(rx1.try_recv().is_err() && t0.elapsed() < Duration::from_millis(50));
        // m2 recalls it: m1 is revoked and m2 waits for m1's acknowledgement.
        let l2 = l.clone();
        let recall = tokio::spawn(async move { l2.recall(&[20], Some("m2")).await });
        let ev = rx1.recv().await.unwrap().unwrap();
        assert_eq!(ev.inos, vec![20]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!recall.is_finished(), "waits for the holder's queued changes");
        l.acked(c1, ev.revoke);
        tokio::time::timeout(Duration::from_secs(1), recall).await.unwrap().unwrap();
        // m1 stays registered (its kernel may keep entries): both hold
        // the directory now, neither exclusively.
        assert_eq!(
            l.grant_in(Some("m2"), &[20], Some(20), l.begin_read()),
            Grant { lease: true, exclusive: false, attrs: true }
        );
        assert_eq!(
            l.grant_in(Some("m1"), &[20], Some(20), l.begin_read()),
            Grant { lease: true, exclusive: false, attrs: true }
        );
        assert!(rx1.try_recv().is_err() && rx2.try_recv().is_err(), "no recall without an exclusive holder");
        // A session alone on a directory, again: exclusive until cut off.
        assert_eq!(
            l.grant_in(Some("m1"), &[30], Some(30), l.begin_read()),
            Grant { lease: true, exclusive: true, attrs: true }
        );
        // A cut session holds nothing exclusively.
        l.disconnect(c1);
        assert!(l.lock().excl.is_empty());
    }

    #[tokio::test]
    async fn a_silent_holder_delays_a_change_until_its_lease_ends() {
        let l = leases();
        let (tx, _rx) = mpsc::channel(16);
        let c = l.connect("m1", tx);
        l.renewed(c);
        assert!(l.grant(Some("m1"), &[9], l.begin_read()));
        let t0 = Instant::now();
        l.revoke(&touched(&[9]), None).await;
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(390), "{waited:?}");
        assert!(waited < Duration::from_millis(900), "{waited:?}");
        assert!(!l.grant(Some("m1"), &[9], l.begin_read()), "a cut session gets no more grants");
    }

    #[test]
    fn a_new_leader_holds_only_what_the_vote_lease_does_not_cover() {
        let ms = Duration::from_millis;
        // Defaults: 500 ms cache lease, 300 ms election timeout (600 ms max).
        assert_eq!(hold_after_election(ms(500), ms(600)), Duration::ZERO);
        // The tests' clusters: 500 ms election timeout.
        assert_eq!(hold_after_election(ms(500), ms(1000)), Duration::ZERO);
        // A lease longer than the followers' vote lease: the rest is held.
        assert_eq!(hold_after_election(ms(3000), ms(1500)), ms(2700 + 100 - 1500));
        assert_eq!(restart_quarantine(ms(1000)), ms(1000));
    }

    #[tokio::test]
    async fn a_new_leader_holds_changes_when_its_settings_need_it() {
        // 300 ms lease, 100 ms vote lease: held 270 + 100 - 100 ms.
        let l = Leases::new(Duration::from_millis(300), Duration::from_millis(100));
        l.leadership(true);
        let t0 = Instant::now();
        l.revoke(&Touched::default(), None).await;
        assert!(t0.elapsed() >= Duration::from_millis(260), "{:?}", t0.elapsed());
        let t1 = Instant::now();
        l.revoke(&Touched::default(), None).await;
        assert!(t1.elapsed() < Duration::from_millis(50));
        // Covered by the vote lease: no hold at all.
        let l = Leases::new(Duration::from_millis(300), Duration::from_millis(1500));
        l.leadership(true);
        let t0 = Instant::now();
        l.revoke(&Touched::default(), None).await;
        assert!(t0.elapsed() < Duration::from_millis(50), "{:?}", t0.elapsed());
    }
}
