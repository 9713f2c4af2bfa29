//! Lookups answered from recently listed directories.
//!
//! After a drop of the kernel's dentry cache (or once its entries expire), every
//! `stat`/`open` of a name costs a LOOKUP round trip to the master. When one
//! directory sees several such lookups, the mount lists it once (readdirplus,
//! attributes included) and answers further lookups in it locally for one
//! attribute lifetime, like MooseFS's direntry cache.
//!
//! Staleness is bounded as with the kernel's own caches: an answer is never
//! older than the attribute lifetime, counted from the start of the listing
//! (the kernel is given only what is left of it). This mount's own changes
//! are applied to the cached listings as they succeed, so the mount always
//! sees its own creates, unlinks, renames and writes. Where a change's effect
//! on a cached entry is not known exactly, the entry is marked unknown and the
//! next lookup of it goes to the master.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tessera_proto::pb::{Attr, Cred, FileKind};

/// Lookups sent to the master in one directory before it is listed.
const MISSES_BEFORE_LISTING: u32 = 4;
/// Larger directories are never listed for lookups.
pub const MAX_LISTED_ENTRIES: usize = 20_000;
/// Entries kept over all listings; the oldest listings go first.
const MAX_TOTAL_ENTRIES: usize = 200_000;
/// A directory found too large is not tried again for this long.
const TOO_BIG_BACKOFF: Duration = Duration::from_secs(30);

/// Inode number meaning "the name exists, but ask the master what it is".
const UNKNOWN: u64 = 0;

pub enum Cached {
    /// The entry and how much of the attribute lifetime is left.
    Found(Attr, Duration),
    /// The name is known, its attributes changed since (an atime): the
    /// kernel may keep the name, and must ask for the attributes.
    NameOnly(Attr, Duration),
    Absent,
    /// The caller may not search the directory.
    Denied,
    /// Ask the master; `list` says whether this mount should now list the directory.
    Miss {
        list: bool,
    },
}

struct Listing {
    fetched: Instant,
    /// The directory's own attributes, for the search-permission check.
    dir: Attr,
    names: HashMap<Vec<u8>, u64>,
    /// Attributes of the entries whose attributes are known.
    attrs: HashMap<u64, Attr>,
}

/// A listing in progress, and the local changes made in the meantime: the
/// listing may or may not reflect them, so they are applied over it.
#[derive(Default)]
struct Fetch {
    /// Names created (true) or removed (false) here during the listing.
    names: HashMap<Vec<u8>, bool>,
    /// Inodes whose attributes changed here during the listing.
    inos: HashSet<u64>,
    /// The directory's own mode or owner changed: the listing is void.
    void: bool,
}

#[derive(Default)]
struct Inner {
    listings: HashMap<u64, Listing>,
    fetching: HashMap<u64, Fetch>,
    misses: HashMap<u64, u32>,
    too_big: HashMap<u64, Instant>,
    entries: usize,
    /// Attributes of single inodes answered under the cache lease.
    single: HashMap<u64, Attr>,
    /// Inodes whose atime changed since their listed attributes were
    /// fetched (the names stand).
    stale: std::collections::HashSet<u64>,
    /// Bumped by every change here: attributes fetched across a bump are
    /// not cached (they may predate this mount's own change).
    epoch: u64,
}

/// Single attributes kept; past it they are all dropped.
const MAX_SINGLE: usize = 100_000;

pub struct DirCache {
    ttl: Duration,
    inner: Mutex<Inner>,
}

/// Search (execute) permission on a directory, as the master checks it.
fn may_search(dir: &Attr, c: &Cred) -> bool {
    may(dir, c, 1)
}

/// Whether `c` has every permission bit of `mask` (4 read, 2 write, 1
/// search) on the directory `dir`, as the masters judge it.
pub(crate) fn may(dir: &Attr, c: &Cred, mask: u32) -> bool {
    if c.uid == 0 {
        return true;
    }
    let bits = if c.uid == dir.uid {
        dir.mode >> 6
    } else if c.gid == dir.gid || c.groups.contains(&dir.gid) {
        dir.mode >> 3
    } else {
        dir.mode
    };
    bits & mask == mask
}

impl Inner {
    fn drop_listing(&mut self, dir: u64) {
        self.epoch += 1;
        if let Some(l) = self.listings.remove(&dir) {
            self.entries -= l.names.len();
        }
    }

    /// The attributes of `ino` changed: its entries are asked for again.
    fn forget_attrs(&mut self, ino: u64) {
        self.epoch += 1;
        self.single.remove(&ino);
        self.stale.remove(&ino);
        for l in self.listings.values_mut() {
            l.attrs.remove(&ino);
        }
        for f in self.fetching.values_mut() {
            f.inos.insert(ino);
        }
    }

    /// A name whose inode is not known here lost a link: any cached file
    /// with more than one link may be that inode.
    fn forget_linked(&mut self) {
        let linked: Vec<u64> = self
            .listings
            .values()
            .flat_map(|l| l.attrs.values())
            .filter(|a| a.kind != FileKind::Directory as i32 && a.nlink > 1)
            .map(|a| a.ino)
            .collect();
        for ino in linked {
            self.forget_attrs(ino);
        }
        self.epoch += 1;
        self.single.retain(|_, a| a.kind == FileKind::Directory as i32 || a.nlink <= 1);
    }

    /// Sets (`Some`) or removes (`None`) one name; returns what it was.
    fn set_name(&mut self, dir: u64, name: &[u8], ino: Option<u64>) -> Option<u64> {
        if let Some(f) = self.fetching.get_mut(&dir) {
            f.names.insert(name.to_vec(), ino.is_some());
        }
        let l = self.listings.get_mut(&dir)?;
        let old = match ino {
            Some(i) => l.names.insert(name.to_vec(), i),
            None => l.names.remove(name),
        };
        match (old.is_some(), ino.is_some()) {
            (false, true) => self.entries += 1,
            (true, false) => self.entries -= 1,
            _ => {}
        }
        old
    }

    /// What `name` in a listed `dir` was before a change: Some(Some(ino)) a
    /// known inode, Some(None) nothing, None not known here.
    fn known(&self, dir: u64, name: &[u8]) -> Option<Option<u64>> {
        let l = self.listings.get(&dir)?;
        match l.names.get(name) {
            None => Some(None),
            Some(&UNKNOWN) => None,
            Some(&i) => Some(Some(i)),
        }
    }

    /// A name that pointed at `before` stopped doing so.
    fn unlinked(&mut self, before: Option<Option<u64>>) {
        match before {
            Some(Some(ino)) => self.forget_attrs(ino),
            Some(None) => {}
            None => self.forget_linked(),
        }
    }
}

impl DirCache {
    pub fn new(ttl: Duration) -> DirCache {
        DirCache { ttl, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    pub fn lookup(&self, dir: u64, name: &[u8], cred: &Cred) -> Cached {
        let mut g = self.lock();
        if let Some(l) = g.listings.get(&dir).filter(|l| l.fetched.elapsed() < self.ttl) {
            if !may_search(&l.dir, cred) {
                return Cached::Denied;
            }
            let left = self.ttl.saturating_sub(l.fetched.elapsed());
            return match l.names.get(name) {
                None => Cached::Absent,
                Some(ino) => match l.attrs.get(ino) {
                    Some(a) if g.stale.contains(ino) => Cached::NameOnly(*a, left),
                    Some(a) => Cached::Found(*a, left),
                    None => Cached::Miss { list: false },
                },
            };
        }
        if g.fetching.contains_key(&dir) || g.too_big.get(&dir).is_some_and(|t| t.elapsed() < TOO_BIG_BACKOFF) {
            return Cached::Miss { list: false };
        }
        if g.misses.len() > 100_000 {
            // Bounded memory for walks over very many directories.
            g.misses.clear();
            g.too_big.retain(|_, t| t.elapsed() < TOO_BIG_BACKOFF);
        }
        let n = g.misses.entry(dir).or_insert(0);
        *n += 1;
        if *n < MISSES_BEFORE_LISTING {
            return Cached::Miss { list: false };
        }
        g.misses.remove(&dir);
        g.fetching.insert(dir, Fetch::default());
        Cached::Miss { list: true }
    }

    /// The master's answer to a lookup that missed.
    pub fn learned(&self, dir: u64, name: &[u8], a: &Attr) {
        let mut g = self.lock();
        if let Some(l) = g.listings.get_mut(&dir) {
            if l.names.insert(name.to_vec(), a.ino).is_none() {
                g.entries += 1;
            }
            if let Some(l) = g.listings.get_mut(&dir) {
                l.attrs.insert(a.ino, *a);
            }
            g.stale.remove(&a.ino);
        }
    }

    /// Installs a listing of `dir`; `started` is taken before its first page
    /// was asked for, so the listing's age is never understated.
    pub fn install(&self, dir: u64, started: Instant, dir_attr: Attr, entries: Vec<(Vec<u8>, Attr)>) {
        let mut g = self.lock();
        let Some(fetch) = g.fetching.remove(&dir) else {
            return;
        };
        if fetch.void {
            return;
        }
        let mut l = Listing { fetched: started, dir: dir_attr, names: HashMap::new(), attrs: HashMap::new() };
        for (name, a) in entries {
            if !fetch.inos.contains(&a.ino) {
                g.stale.remove(&a.ino);
                l.attrs.insert(a.ino, a);
            }
            l.names.insert(name, a.ino);
        }
        for (name, exists) in fetch.names {
            if exists {
                l.names.insert(name, UNKNOWN);
            } else {
                l.names.remove(&name);
            }
        }
        g.drop_listing(dir);
        g.entries += l.names.len();
        g.listings.insert(dir, l);
        while g.entries > MAX_TOTAL_ENTRIES {
            let oldest = g.listings.iter().min_by_key(|(_, l)| l.fetched).map(|(d, _)| *d);
            match oldest {
                Some(d) => g.drop_listing(d),
                None => break,
            }
        }
    }

    /// `dir` was just made here and no other session has seen it (the
    /// masters said so: this mount holds it exclusively): it is empty.
    /// `started` is taken before the mkdir was sent.
    pub fn made_empty(&self, started: Instant, dir_attr: Attr) {
        let mut g = self.lock();
        let dir = dir_attr.ino;
        g.drop_listing(dir);
        g.fetching.remove(&dir);
        g.listings
            .insert(dir, Listing { fetched: started, dir: dir_attr, names: HashMap::new(), attrs: HashMap::new() });
    }

    /// Whether `name` is absent from `dir` per a listing of any age (for a
    /// directory this mount holds exclusively, where no one else changes it).
    pub fn absent_known(&self, dir: u64, name: &[u8]) -> bool {
        self.lock().known(dir, name) == Some(None)
    }

    /// A listing that could not be read (or was too large) is given up.
    pub fn abandon(&self, dir: u64, too_big: bool) {
        let mut g = self.lock();
        g.fetching.remove(&dir);
        if too_big {
            g.too_big.insert(dir, Instant::now());
        }
    }

    /// `name` in `dir` now refers to `a` (create, mkdir, symlink, link, mknod).
    pub fn created(&self, dir: u64, name: &[u8], a: &Attr) {
        let mut g = self.lock();
        if a.kind != FileKind::Directory as i32 && a.nlink > 1 {
            // A new hard link: the other names show the new link count.
            g.forget_attrs(a.ino);
        }
        g.forget_attrs(dir);
        g.set_name(dir, name, Some(a.ino));
        if let Some(l) = g.listings.get_mut(&dir) {
            l.attrs.insert(a.ino, *a);
        }
        g.stale.remove(&a.ino);
    }

    /// The attributes of `ino`, a file in `dir`, as the listing of `dir` of
    /// any age (a directory held exclusively) or the single cache knows them.
    pub fn attr_in(&self, dir: u64, ino: u64) -> Option<Attr> {
        let g = self.lock();
        if g.stale.contains(&ino) {
            return None;
        }
        g.listings.get(&dir).and_then(|l| l.attrs.get(&ino)).or_else(|| g.single.get(&ino)).copied()
    }

    /// `a` is what the listing of `dir` shows for its inode (a file moved
    /// in by a rename this mount wrote behind, its attributes known).
    pub fn set_attr_in(&self, dir: u64, a: &Attr) {
        let mut g = self.lock();
        g.epoch += 1;
        if let Some(l) = g.listings.get_mut(&dir) {
            l.attrs.insert(a.ino, *a);
        }
    }

    /// The attributes of `dir` itself, per its listing still within its lifetime.
    pub fn dir_attr(&self, dir: u64) -> Option<Attr> {
        let g = self.lock();
        g.listings.get(&dir).filter(|l| l.fetched.elapsed() < self.ttl).map(|l| l.dir)
    }

    /// The inode `name` names in a listing of `dir` of any age (for a
    /// directory this mount holds exclusively, where no one else changes it).
    pub fn ino_known(&self, dir: u64, name: &[u8]) -> Option<u64> {
        self.lock().known(dir, name).flatten()
    }

    /// The inode `name` in `dir` refers to, per a listing still within
    /// its lifetime.
    pub fn ino_of(&self, dir: u64, name: &[u8]) -> Option<u64> {
        let g = self.lock();
        g.listings.get(&dir).filter(|l| l.fetched.elapsed() < self.ttl)?;
        g.known(dir, name).flatten()
    }

    /// `name` was removed from `dir` (unlink, rmdir).
    pub fn removed(&self, dir: u64, name: &[u8]) {
        let mut g = self.lock();
        g.forget_attrs(dir);
        let before = g.known(dir, name);
        g.set_name(dir, name, None);
        // Its other names (hard links) have one link less.
        g.unlinked(before);
    }

    /// A rename; `exchange` for RENAME_EXCHANGE.
    pub fn renamed(&self, dir: u64, name: &[u8], new_dir: u64, new_name: &[u8], exchange: bool) {
        let mut g = self.lock();
        g.forget_attrs(dir);
        g.forget_attrs(new_dir);
        let moved = g.known(dir, name).flatten();
        let replaced = g.known(new_dir, new_name);
        // Renames change ctime: the moved inodes' attributes are asked for
        // again (all of them when which one moved is not known here).
        match moved {
            Some(i) => g.forget_attrs(i),
            None => {
                g.single.clear();
                g.forget_linked();
            }
        }
        if !exchange && moved.is_some() && replaced == Some(moved) {
            // Two names of one inode: POSIX says rename does nothing.
            return;
        }
        if !exchange && (moved.is_none() || replaced.is_none()) {
            // They may have been two names of one inode (then both remain):
            // let the master say what the old name is now.
            g.unlinked(replaced);
            g.set_name(dir, name, Some(UNKNOWN));
            g.set_name(new_dir, new_name, Some(moved.unwrap_or(UNKNOWN)));
            return;
        }
        if exchange {
            if let Some(Some(i)) = replaced {
                g.forget_attrs(i);
            }
            g.set_name(dir, name, Some(replaced.flatten().unwrap_or(UNKNOWN)));
        } else {
            g.set_name(dir, name, None);
            g.unlinked(replaced);
        }
        g.set_name(new_dir, new_name, Some(moved.unwrap_or(UNKNOWN)));
    }

    /// The attributes of `ino` changed and are now `a` (setattr, commit).
    pub fn updated(&self, a: &Attr) {
        let mut g = self.lock();
        g.epoch += 1;
        g.stale.remove(&a.ino);
        if let Some(known) = g.single.get_mut(&a.ino) {
            *known = *a;
        }
        for l in g.listings.values_mut() {
            if let Some(known) = l.attrs.get_mut(&a.ino) {
                *known = *a;
            }
        }
        for f in g.fetching.values_mut() {
            f.inos.insert(a.ino);
        }
        if a.kind == FileKind::Directory as i32 {
            // Mode or owner of a listed directory: the search check takes
            // them from here on (its names did not change).
            if let Some(l) = g.listings.get_mut(&a.ino) {
                l.dir = *a;
            }
            if let Some(f) = g.fetching.get_mut(&a.ino) {
                f.void = true;
            }
        }
    }

    /// A change in `dir` failed or timed out: it may or may not have landed.
    pub fn unsure(&self, dir: u64) {
        let mut g = self.lock();
        g.drop_listing(dir);
        g.forget_attrs(dir);
        if let Some(f) = g.fetching.get_mut(&dir) {
            f.void = true;
        }
    }

    /// The attributes of `ino` changed in a way not known here (xattrs).
    pub fn changed(&self, ino: u64) {
        self.lock().forget_attrs(ino);
    }

    /// Only the atime of `ino` changed: names stay, attributes are asked for.
    pub fn atime_changed(&self, ino: u64) {
        let mut g = self.lock();
        g.epoch += 1;
        g.single.remove(&ino);
        if g.stale.len() >= MAX_SINGLE {
            g.stale.clear();
            for l in g.listings.values_mut() {
                l.attrs.clear();
            }
        }
        g.stale.insert(ino);
        for f in g.fetching.values_mut() {
            f.inos.insert(ino);
        }
    }

    /// The cache lease ended: nothing here may be trusted.
    pub fn clear(&self) {
        let mut g = self.lock();
        g.epoch += 1;
        g.listings.clear();
        g.entries = 0;
        g.single.clear();
        for f in g.fetching.values_mut() {
            f.void = true;
        }
    }

    /// The change count, read before fetching attributes to cache.
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Attributes of `ino` fetched alone under the lease.
    pub fn attr(&self, ino: u64) -> Option<Attr> {
        self.lock().single.get(&ino).copied()
    }

    /// Caches attributes fetched under the lease, unless anything changed
    /// here since `epoch`.
    pub fn learned_attr(&self, a: &Attr, epoch: u64) {
        let mut g = self.lock();
        if g.epoch != epoch {
            return;
        }
        if g.single.len() >= MAX_SINGLE {
            g.single.clear();
        }
        g.single.insert(a.ino, *a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ino: u64, kind: FileKind, mode: u32, nlink: u32) -> Attr {
        Attr { ino, kind: kind as i32, mode, nlink, uid: 1000, gid: 1000, ..Default::default() }
    }
    fn file(ino: u64) -> Attr {
        attr(ino, FileKind::Regular, 0o644, 1)
    }
    fn dir(ino: u64, mode: u32) -> Attr {
        attr(ino, FileKind::Directory, mode, 2)
    }
    fn root() -> Cred {
        Cred { uid: 0, gid: 0, groups: vec![] }
    }
    fn e(name: &str, a: Attr) -> (Vec<u8>, Attr) {
        (name.as_bytes().to_vec(), a)
    }
    fn found(c: &DirCache, d: u64, name: &str) -> Option<Attr> {
        match c.lookup(d, name.as_bytes(), &root()) {
            Cached::Found(a, _) => Some(a),
            _ => None,
        }
    }
    fn absent(c: &DirCache, d: u64, name: &str) -> bool {
        matches!(c.lookup(d, name.as_bytes(), &root()), Cached::Absent)
    }

    /// Misses until a listing is due, starts it; the caller installs it.
    fn start_listing(c: &DirCache, d: u64) {
        for i in 1..MISSES_BEFORE_LISTING {
            assert!(matches!(c.lookup(d, b"x", &root()), Cached::Miss { list: false }), "miss {i}");
        }
        assert!(matches!(c.lookup(d, b"x", &root()), Cached::Miss { list: true }));
        // Only one listing of a directory at a time.
        assert!(matches!(c.lookup(d, b"x", &root()), Cached::Miss { list: false }));
    }

    fn listed(c: &DirCache, d: u64, mode: u32, entries: Vec<(Vec<u8>, Attr)>) {
        start_listing(c, d);
        c.install(d, Instant::now(), dir(d, mode), entries);
    }

    #[test]
    fn answers_from_a_listing_until_it_expires() {
        let c = DirCache::new(Duration::from_millis(100));
        listed(&c, 1, 0o755, vec![e("a", file(10))]);
        assert_eq!(found(&c, 1, "a").map(|a| a.ino), Some(10));
        assert!(absent(&c, 1, "b"));
        match c.lookup(1, b"a", &root()) {
            Cached::Found(_, left) => assert!(left <= Duration::from_millis(100)),
            _ => panic!("expected a hit"),
        }
        std::thread::sleep(Duration::from_millis(120));
        assert!(matches!(c.lookup(1, b"a", &root()), Cached::Miss { .. }));
    }

    #[test]
    fn search_permission_is_checked_per_caller() {
        let c = DirCache::new(Duration::from_secs(5));
        listed(&c, 1, 0o700, vec![e("a", file(10))]);
        let other = Cred { uid: 2000, gid: 2000, groups: vec![] };
        assert!(matches!(c.lookup(1, b"a", &other), Cached::Denied));
        let owner = Cred { uid: 1000, gid: 1, groups: vec![] };
        assert!(matches!(c.lookup(1, b"a", &owner), Cached::Found(..)));
        let in_group = Cred { uid: 2000, gid: 1, groups: vec![1000] };
        assert!(matches!(c.lookup(1, b"a", &in_group), Cached::Denied));
        // A chmod of the directory: the check uses the new mode.
        c.updated(&dir(1, 0o755));
        assert!(matches!(c.lookup(1, b"a", &other), Cached::Found(..)));
    }

    #[test]
    fn own_changes_are_seen() {
        let c = DirCache::new(Duration::from_secs(5));
        listed(&c, 1, 0o755, vec![e("a", file(10)), e("b", file(11))]);
        c.created(1, b"n", &file(12));
        assert_eq!(found(&c, 1, "n").map(|a| a.ino), Some(12));
        c.removed(1, b"a");
        assert!(absent(&c, 1, "a"));
        let mut grown = file(11);
        grown.size = 4096;
        c.updated(&grown);
        assert_eq!(found(&c, 1, "b").map(|a| a.size), Some(4096));
        c.renamed(1, b"b", 1, b"n", false);
        assert!(absent(&c, 1, "b"));
        // The target now names the moved inode, whose ctime changed.
        assert!(matches!(c.lookup(1, b"n", &root()), Cached::Miss { list: false }));
        c.learned(1, b"n", &file(11));
        assert_eq!(found(&c, 1, "n").map(|a| a.ino), Some(11));
    }

    #[test]
    fn rename_between_two_links_of_one_inode_changes_nothing() {
        let c = DirCache::new(Duration::from_secs(5));
        let linked = attr(10, FileKind::Regular, 0o644, 2);
        listed(&c, 1, 0o755, vec![e("a", linked), e("b", linked), e("u", file(11))]);
        c.renamed(1, b"a", 1, b"b", false);
        for n in ["a", "b"] {
            assert!(!absent(&c, 1, n), "{n} must still exist");
        }
        // When the target's inode is not known here, the old name is asked for.
        c.renamed(1, b"u", 2, b"elsewhere", false);
        assert!(matches!(c.lookup(1, b"u", &root()), Cached::Miss { list: false }));
    }

    #[test]
    fn exchange_swaps_names() {
        let c = DirCache::new(Duration::from_secs(5));
        listed(&c, 1, 0o755, vec![e("a", file(10)), e("b", file(11))]);
        c.renamed(1, b"a", 1, b"b", true);
        for n in ["a", "b"] {
            assert!(matches!(c.lookup(1, n.as_bytes(), &root()), Cached::Miss { list: false }), "{n}");
        }
    }

    #[test]
    fn unlinking_an_unknown_name_forgets_hard_linked_files() {
        let c = DirCache::new(Duration::from_secs(5));
        listed(&c, 1, 0o755, vec![e("a", attr(10, FileKind::Regular, 0o644, 2)), e("s", file(11))]);
        // The other link of inode 10 lives in a directory not listed here.
        c.removed(2, b"other-link");
        assert!(matches!(c.lookup(1, b"a", &root()), Cached::Miss { list: false }));
        assert!(found(&c, 1, "s").is_some());
    }

    #[test]
    fn an_atime_change_keeps_the_name_and_makes_the_attributes_stale() {
        let c = DirCache::new(Duration::from_secs(5));
        listed(&c, 1, 0o755, vec![e("a", file(10)), e("b", file(11))]);
        c.atime_changed(10);
        assert!(matches!(c.lookup(1, b"a", &root()), Cached::NameOnly(a, _) if a.ino == 10));
        assert_eq!(c.ino_known(1, b"a"), Some(10));
        assert!(found(&c, 1, "b").is_some(), "other files keep their attributes");
        // Attributes fetched again are fresh.
        c.updated(&file(10));
        assert!(found(&c, 1, "a").is_some());
        // A real change of the attributes forgets them.
        c.atime_changed(11);
        c.changed(11);
        assert!(matches!(c.lookup(1, b"b", &root()), Cached::Miss { list: false }));
    }

    #[test]
    fn changes_during_a_listing_are_applied_over_it() {
        let c = DirCache::new(Duration::from_secs(5));
        start_listing(&c, 1);
        c.created(1, b"new", &file(12));
        c.removed(1, b"gone");
        c.updated(&file(10));
        c.install(1, Instant::now(), dir(1, 0o755), vec![e("a", file(10)), e("b", file(11)), e("gone", file(13))]);
        assert!(matches!(c.lookup(1, b"new", &root()), Cached::Miss { list: false }));
        assert!(absent(&c, 1, "gone"));
        assert!(matches!(c.lookup(1, b"a", &root()), Cached::Miss { list: false }));
        assert!(found(&c, 1, "b").is_some());
        // A chmod of the directory during its listing voids the listing.
        start_listing(&c, 2);
        c.updated(&dir(2, 0o700));
        c.install(2, Instant::now(), dir(2, 0o755), vec![e("a", file(20))]);
        assert!(matches!(c.lookup(2, b"a", &root()), Cached::Miss { .. }));
    }

    #[test]
    fn a_chmod_of_a_listed_directory_keeps_its_names_and_checks_the_new_mode() {
        let c = DirCache::new(Duration::from_secs(5));
        start_listing(&c, 1);
        c.install(1, Instant::now(), dir(1, 0o755), vec![e("a", file(10))]);
        let user = Cred { uid: 5, gid: 5, ..Default::default() };
        assert!(matches!(c.lookup(1, b"a", &user), Cached::Found(..)));
        c.updated(&dir(1, 0o700));
        assert!(matches!(c.lookup(1, b"a", &user), Cached::Denied));
        assert!(matches!(c.lookup(1, b"a", &root()), Cached::Found(..)));
        assert!(c.absent_known(1, b"b"), "the names stand");
    }

    #[test]
    fn a_failed_listing_is_retried_and_a_too_large_one_is_not() {
        let c = DirCache::new(Duration::from_secs(5));
        // The master did not answer: the next run of misses lists again.
        start_listing(&c, 1);
        c.abandon(1, false);
        start_listing(&c, 1);
        // Too many entries: no listing of that directory for a while.
        c.abandon(1, true);
        for _ in 0..2 * MISSES_BEFORE_LISTING {
            assert!(matches!(c.lookup(1, b"x", &root()), Cached::Miss { list: false }));
        }
        // A listing that arrives after it was given up is dropped.
        c.install(1, Instant::now(), dir(1, 0o755), vec![e("a", file(10))]);
        assert!(matches!(c.lookup(1, b"a", &root()), Cached::Miss { list: false }));
    }

    #[test]
    fn total_size_is_bounded() {
        let c = DirCache::new(Duration::from_secs(5));
        let big: Vec<_> = (0..MAX_TOTAL_ENTRIES as u64 / 2 + 1).map(|i| e(&format!("f{i}"), file(100 + i))).collect();
        listed(&c, 1, 0o755, big.clone());
        listed(&c, 2, 0o755, big.clone());
        listed(&c, 3, 0o755, big);
        assert!(c.lock().entries <= MAX_TOTAL_ENTRIES);
        assert!(found(&c, 3, "f7").is_some());
        assert!(matches!(c.lookup(1, b"f7", &root()), Cached::Miss { .. }));
    }
}
