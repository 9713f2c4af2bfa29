//! The mount's state and the async implementation of each operation. The
//! fuser callbacks (ops.rs) hand their reply objects to tokio tasks that call
//! into this; nothing here blocks a FUSE thread.

use crate::dircache::{Cached, MAX_LISTED_ENTRIES};
use crate::file::FileData;
use bytes::Bytes;
use fuser::{FileAttr, FileType, INodeNo};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tessera_client::{ClientError, Fs, Result};
use tessera_proto::pb::{self, Attr, Cred, FileKind};
use tokio::sync::Mutex as AsyncMutex;

pub use crate::open_files::{DirHandle, OpenFile};

/// What `Mount::lookup_here` could do without waiting.
pub enum LookupHere {
    Done(Result<(Attr, Duration)>),
    /// Found, but the file is open here: its unflushed size applies.
    Patch(Attr, Duration),
    /// The name is known for this long; its attributes must be asked for
    /// again (attribute lifetime 0).
    NameOnly(Attr, Duration),
    Ask,
}

pub struct Mount {
    pub fs: Fs,
    pub ttl: Duration,
    pub chunk: u64,
    /// Open files, their handles and directory handles (open_files.rs).
    pub(crate) open: crate::open_files::OpenFiles,
    /// relatime, batched (atime.rs).
    pub(crate) atimes: crate::atime::Atimes,
    /// Names and attributes remembered under the cache lease (caches.rs).
    pub caches: crate::caches::Caches,
    /// Random id of this mount: its cache-lease and lock session, and lock
    /// owners are "<id>:<kernel owner>".
    pub id: String,
    /// Inodes this mount ever locked: only their closes release locks.
    pub locked: Mutex<std::collections::HashSet<u64>>,
    /// Files whose locks the masters handed to this mount (locks.rs).
    pub(crate) delegated: crate::delegated_locks::Delegated,
    /// Changes acknowledged before the masters applied them (behind.rs).
    pub behind: crate::behind::Behind,
    /// Files unlinked while open here, kept alive at the masters (orphans.rs).
    pub orphans: crate::open_files::OrphanRenewal,
    /// Uploaded chunks of an open file are committed after waiting this
    /// long, well within the masters' GC grace.
    pub commit_idle: Duration,
    /// How long a request may wait on the cluster (inflight.rs); None:
    /// forever. For the waits that do not go through `Inflight::run`.
    pub io_timeout: Option<Duration>,
    /// The cache lease every cache above depends on (leases.rs).
    pub leases: crate::lease_state::LeaseState,
}

pub fn kind(k: i32) -> FileType {
    match FileKind::try_from(k).unwrap_or(FileKind::Regular) {
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

pub fn to_file_attr(a: &Attr) -> FileAttr {
    let t = |ts: &Option<pb::Timespec>| {
        ts.as_ref().map(tessera_proto::time::to_system_time).unwrap_or(SystemTime::UNIX_EPOCH)
    };
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: t(&a.atime),
        mtime: t(&a.mtime),
        ctime: t(&a.ctime),
        crtime: SystemTime::UNIX_EPOCH,
        kind: kind(a.kind),
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: 1 << 20,
        flags: 0,
    }
}

/// Supplementary groups of the calling process (FUSE passes only uid/gid).
/// Root's are not read: every check that consults groups (here and on the
/// master) lets uid 0 through first, and reading /proc costs an open and a
/// read on every request.
///
/// Read through this mount's certificate's uid map (a squashed root is
/// nobody here too), so that the mount's own checks (write-behind creates,
/// cached lookups) grant what the masters will.
pub fn cred(uid: u32, gid: u32, pid: u32) -> Cred {
    let mut groups = Vec::new();
    if uid != 0 {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(line) = s.lines().find(|l| l.starts_with("Groups:")) {
                groups = line[7..].split_whitespace().filter_map(|g| g.parse().ok()).collect();
            }
        }
    }
    let c = tessera_rpc::tls::own_uid_map().apply(tessera_rpc::uid_map::Creds { uid, gid, groups });
    Cred { uid: c.uid, gid: c.gid, groups: c.groups }
}

pub fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

impl Mount {
    pub fn new(fs: Fs, ttl: Duration, chunk: u64) -> Mount {
        Mount {
            behind: crate::behind::Behind::new(fs.meta.write_behind().clone()),
            caches: crate::caches::Caches::new(ttl),
            fs,
            ttl,
            chunk,
            open: Default::default(),
            atimes: Default::default(),
            id: format!("{:016x}", rand_id()),
            locked: Mutex::new(Default::default()),
            delegated: Default::default(),
            orphans: Default::default(),
            commit_idle: Duration::from_secs(60),
            io_timeout: None,
            leases: Default::default(),
        }
    }

    /// Every cache of this mount is dropped (the lease ended).
    pub fn drop_caches(&self) {
        self.caches.clear();
    }

    /// A change in `dir` succeeded; `a` is the directory as it left it.
    pub fn post_op(&self, dir: u64, a: Option<Attr>) {
        match a {
            Some(a) if a.ino == dir => self.caches.post_op.insert(dir, a),
            _ => self.caches.post_op.remove(dir),
        }
    }

    /// A write-behind change in `dir` was acknowledged: its attributes as
    /// the master will leave them, where the ones before are known (an
    /// unlink changes a directory's mtime and ctime only).
    pub fn post_op_predicted(&self, dir: u64) {
        self.post_op_predicted_at(dir, tessera_proto::time::from_system_time(SystemTime::now()))
    }

    /// `post_op_predicted`, with the time the change will carry.
    pub fn post_op_predicted_at(&self, dir: u64, at: pb::Timespec) {
        match self.caches.post_op.get(dir) {
            Some((mut a, _)) => {
                let now = Some(at);
                (a.mtime, a.ctime) = (now, now);
                self.caches.post_op.insert(dir, a);
            }
            None => self.caches.post_op.remove(dir),
        }
    }

    /// The attributes of `dir` as this mount's last change in it left them.
    pub fn post_op_attr(&self, dir: u64) -> Option<Attr> {
        self.leases.remaining()?;
        self.caches.post_op.get(dir).map(|(a, _)| a)
    }

    /// A change in `dir` failed or timed out: it may or may not have landed.
    pub fn dir_change_failed(&self, dir: u64) {
        self.caches.dir.unsure(dir);
        self.caches.post_op.remove(dir);
    }

    /// Inodes moved or removed (rename, rmdir): their ctimes and link counts
    /// changed, and which directories they were is not always known here.
    pub fn forget_all_post_op(&self) {
        self.caches.post_op.clear();
    }

    /// The attributes of `ino` changed in a way not known here (xattrs, a
    /// failed setattr): every cache asks the master next time.
    pub fn attrs_changed(&self, ino: u64) {
        self.open.forget_closed(ino);
        self.caches.no_xattrs.remove(ino);
        self.caches.dir.changed(ino);
        self.caches.post_op.remove(ino);
    }

    /// Only the atime of `ino` changed (see `DirCache::atime_changed`).
    pub fn atime_changed(&self, ino: u64) {
        self.caches.dir.atime_changed(ino);
        self.caches.post_op.remove(ino);
    }

    /// A setattr succeeded with these attributes (for a directory, they
    /// are its post-op attributes; a write-behind one's may still be on
    /// their way, and only these are right).
    pub fn attrs_set(&self, a: &Attr) {
        if a.kind == FileKind::Directory as i32 {
            self.caches.post_op.insert(a.ino, *a);
        } else {
            self.caches.post_op.remove(a.ino);
        }
        self.caches.dir.updated(a);
    }

    /// A name in a directory: from a recent listing when there is one,
    /// else from the master. Returns the attributes and how long the kernel
    /// may keep them.
    pub async fn lookup(self: &Arc<Self>, fs: &Fs, parent: u64, name: &[u8]) -> Result<(Attr, Duration)> {
        match self.lookup_here(&fs.cred, parent, name) {
            LookupHere::Done(r) => r,
            LookupHere::Patch(a, left) => Ok((self.patch(a).await, left)),
            LookupHere::NameOnly(a, _) => Ok((a, Duration::ZERO)),
            LookupHere::Ask => self.lookup_master(fs, parent, name).await,
        }
    }

    /// The part of `lookup` this mount answers without waiting (the FUSE
    /// thread replies at once, saving a hand-off to a task). Must run
    /// inside the runtime: a miss may start a listing.
    pub fn lookup_here(self: &Arc<Self>, cred: &Cred, parent: u64, name: &[u8]) -> LookupHere {
        if name.len() > tessera_proto::NAME_MAX {
            // As a local file system: a name that cannot exist is too long,
            // not absent (the kernel leaves the check to us).
            return LookupHere::Done(Err(ClientError::fs(libc::ENAMETOOLONG, "file name too long")));
        }
        if self.fs.meta.write_behind().removing(parent, name) {
            return LookupHere::Done(Err(ClientError::fs(libc::ENOENT, "no such file or directory")));
        }
        let Some(lease_left) = self.leases.remaining() else { return LookupHere::Ask };
        match self.caches.dir.lookup(parent, name, cred) {
            Cached::Found(a, left) if self.open_file(a.ino).is_none() => {
                let left = left.min(lease_left).min(self.ttl);
                self.note_xattrs(&a);
                LookupHere::Done(Ok((a, left)))
            }
            Cached::Found(a, left) => LookupHere::Patch(a, left.min(lease_left).min(self.ttl)),
            Cached::NameOnly(a, left) if self.open_file(a.ino).is_none() => {
                LookupHere::NameOnly(a, left.min(lease_left).min(self.ttl))
            }
            Cached::NameOnly(..) => LookupHere::Ask,
            Cached::Absent => LookupHere::Done(Err(ClientError::fs(libc::ENOENT, "no such file or directory"))),
            Cached::Denied => LookupHere::Done(Err(ClientError::fs(libc::EACCES, "permission denied"))),
            Cached::Miss { list } => {
                if list {
                    let m = self.clone();
                    tokio::spawn(async move { m.list_for_lookups(parent).await });
                }
                LookupHere::Ask
            }
        }
    }

    pub async fn lookup_master(&self, fs: &Fs, parent: u64, name: &[u8]) -> Result<(Attr, Duration)> {
        let (a, entry_ttl, attr_ttl) = self.lookup_master_ttls(fs, parent, name).await?;
        Ok((a, entry_ttl.min(attr_ttl)))
    }

    /// A lookup at the master: the attributes, and how long the kernel may
    /// keep the name and the attributes (each only if the masters leased it).
    pub async fn lookup_master_ttls(&self, fs: &Fs, parent: u64, name: &[u8]) -> Result<(Attr, Duration, Duration)> {
        let behind = self.fs.meta.write_behind();
        let (gen, epoch) = (self.leases.gen(), self.caches.dir.epoch());
        // Unlinks still on their way change neither this name nor, unless
        // it is one of theirs, the inode it names.
        let (mut a, mut grant) = match fs.lookup_leased(parent, name, false).await {
            // A create of this mount in the directory may not have landed.
            Err(e) if e.errno() == libc::ENOENT && behind.touches(parent) => {
                fs.lookup_leased(parent, name, true).await?
            }
            r => r?,
        };
        let linked_elsewhere = a.nlink > 1 && a.kind != FileKind::Directory as i32;
        if behind.touches(a.ino) || (linked_elsewhere && behind.unsure()) {
            (a, grant) = fs.lookup_leased(parent, name, true).await?;
        }
        // Only an answer the masters leased may outlive this call in the
        // kernel: one that raced a change may predate it unrevoked.
        let (mut entry_ttl, mut attr_ttl) = (Duration::ZERO, Duration::ZERO);
        if grant.lease && self.leases.still(gen) {
            if grant.exclusive {
                self.dir_exclusive(parent, gen);
            }
            entry_ttl = self.kernel_ttl();
            if grant.attrs {
                self.caches.dir.learned(parent, name, &a);
                self.caches.dir.learned_attr(&a, epoch);
                attr_ttl = entry_ttl;
            }
        }
        Ok((self.patch(a).await, entry_ttl, attr_ttl))
    }

    /// Lists `dir` (as this mount's own user) for the lookup cache.
    async fn list_for_lookups(&self, dir: u64) {
        let started = Instant::now();
        let gen = self.leases.gen();
        let listing = async {
            let (d, dir_leased) = self.fs.getattr_leased(dir, true).await?;
            let entries = self.fs.readdir_upto_leased(dir, true, MAX_LISTED_ENTRIES).await?;
            Ok::<_, ClientError>((d, dir_leased, entries))
        };
        match listing.await {
            Ok((_, dir_leased, Some((_, grant)))) if !(dir_leased && grant.lease && self.leases.still(gen)) => {
                // Not under the lease (a change overlapped it): not kept.
                self.caches.dir.abandon(dir, false);
            }
            Ok((d, _, Some((entries, grant)))) => {
                if grant.exclusive {
                    self.dir_exclusive(dir, gen);
                }
                let entries = entries.into_iter().filter_map(|e| e.attr.map(|a| (e.name.to_vec(), a))).collect();
                tracing::debug!(dir, "listed for lookups");
                self.caches.dir.install(dir, started, d, entries);
            }
            Ok((_, _, None)) => self.caches.dir.abandon(dir, true),
            Err(e) => {
                tracing::debug!(dir, error = %e, "listing for lookups failed");
                self.caches.dir.abandon(dir, false);
            }
        }
    }

    pub fn with_cred(&self, c: Cred) -> Fs {
        self.fs.acting_as(c)
    }

    pub(crate) fn open_file(&self, ino: u64) -> Option<Arc<OpenFile>> {
        self.open.files.lock().get(&ino).cloned()
    }

    /// Attributes with this mount's unflushed size and times applied.
    pub async fn patch(&self, mut a: Attr) -> Attr {
        self.note_xattrs(&a);
        if let Some(f) = self.open_file(a.ino) {
            let d = f.data.lock().await;
            // Attributes fetched while this mount's flush was committing
            // (a release racing a stat) carry the size before it.
            if d.newer_than(a.version) {
                a.size = d.size;
            }
            // Uncommitted writes and truncates changed the file just now.
            if let Some(m) = d.modified() {
                for t in [&mut a.mtime, &mut a.ctime] {
                    if t.as_ref().is_none_or(|t| (t.sec, t.nsec) < (m.sec, m.nsec)) {
                        *t = Some(*m);
                    }
                }
            }
            if let Some(p) = &d.pending_attrs {
                crate::pending_attrs::overlay(p, &mut a);
            }
        }
        a
    }

    /// Remembers, for one attribute lifetime, which files have no extended
    /// attributes: `ls -l` asks for security.selinux on every file and the
    /// kernel for security.capability before a first write.
    pub(crate) fn note_xattrs(&self, a: &Attr) {
        if a.xattrs == 0 {
            self.caches.no_xattrs.insert(a.ino, ());
        } else {
            self.caches.no_xattrs.remove(a.ino);
        }
    }

    /// True if `ino` was seen without extended attributes within the
    /// attribute lifetime (then "no such attribute" needs no round trip).
    pub fn known_without_xattrs(&self, ino: u64) -> bool {
        self.leases.remaining().is_some() && self.caches.no_xattrs.get(ino).is_some()
    }

    /// The part of `getattr_for_kernel` answered without waiting.
    pub fn getattr_here(&self, ino: u64) -> Option<(Attr, Duration)> {
        let ttl = self.kernel_ttl();
        if ttl.is_zero() {
            return None;
        }
        let a = self.caches.post_op.get(ino).map(|(a, _)| a);
        let a = a.or_else(|| self.caches.dir.attr(ino).filter(|_| self.open_file(ino).is_none()))?;
        Some((a, ttl))
    }

    /// GETATTR from the kernel: the attributes and how long it may keep them.
    pub async fn getattr_for_kernel(&self, ino: u64) -> Result<(Attr, Duration)> {
        if let Some(known) = self.getattr_here(ino) {
            return Ok(known);
        }
        // A create held back: the master does not know the file yet.
        if let Some(a) = self.behind.creates.held_attr(ino) {
            return Ok((self.patch(a).await, self.kernel_ttl()));
        }
        // An unlink on its way may drop this file's link count (an open
        // file's fstat must show it) or change this directory.
        let behind = self.fs.meta.write_behind();
        let a = if behind.touches(ino) {
            let a = self.fs.getattr(ino).await?;
            // A directory losing names: later unlinks in it predict its
            // attributes from these (`post_op_predicted`).
            if a.kind == FileKind::Directory as i32 {
                self.caches.post_op.insert(ino, a);
            }
            a
        } else if behind.unsure() {
            self.fs.getattr(ino).await?
        } else {
            // A file open here, its attributes under the lease: this mount's
            // writes laid over them (`getattr_here` cannot wait to do that).
            let ttl = self.kernel_ttl();
            if let Some(a) = self.caches.dir.attr(ino).filter(|_| !ttl.is_zero() && self.open_file(ino).is_some()) {
                return Ok((self.patch(a).await, ttl));
            }
            let (gen, epoch) = (self.leases.gen(), self.caches.dir.epoch());
            let (a, leased) = self.fs.getattr_leased(ino, false).await?;
            if !(leased && self.leases.still(gen)) {
                // Not registered: the kernel must ask again.
                return Ok((self.patch(a).await, Duration::ZERO));
            }
            self.caches.dir.learned_attr(&a, epoch);
            a
        };
        Ok((self.patch(a).await, self.kernel_ttl()))
    }

    pub async fn getattr(&self, ino: u64) -> Result<Attr> {
        let a = self.fs.getattr(ino).await?;
        Ok(self.patch(a).await)
    }

    /// Opens (or joins) the shared state of a regular file. On the first
    /// open the committed content is fetched anew: close-to-open consistency.
    /// `fresh`: the attributes of a file this mount just created (empty, no
    /// extents), which saves fetching them.
    pub async fn open(&self, cred: &pb::Cred, ino: u64, flags: i32, fresh: Option<&pb::Attr>) -> Result<u64> {
        Ok(self.open_keep(cred, ino, flags, fresh).await?.0)
    }

    /// `open`, and whether the kernel may keep the file's cached pages: the
    /// content is the version they were read from (recorded at the last
    /// close here; a revoke forgets it), or the file is open here already.
    pub async fn open_keep(
        &self,
        cred: &pb::Cred,
        ino: u64,
        flags: i32,
        fresh: Option<&pb::Attr>,
    ) -> Result<(u64, bool)> {
        let mut keep = true;
        let as_opener = self.with_cred(cred.clone());
        // Extents fetched for the check below, used again where the open
        // needs them (one GetExtents per open, not two).
        let mut checked = None;
        if fresh.is_none() && tessera_rpc::tls::own_uid_map() != tessera_rpc::uid_map::UidMap::Trusted {
            // The kernel let the caller open by its own uid; the open file
            // this mount shares between processes would then serve it.
            // Judged again as the masters see the caller (a squashed root).
            let ext = as_opener.extents(ino).await?;
            let a = ext.attr.ok_or_else(|| ClientError::fs(libc::EIO, "no attributes"))?;
            let mask = match flags & libc::O_ACCMODE {
                libc::O_RDONLY => libc::R_OK,
                libc::O_WRONLY => libc::W_OK,
                _ => libc::R_OK | libc::W_OK,
            };
            if !crate::convert::permitted(&a, cred, mask) {
                return Err(ClientError::fs(libc::EACCES, "permission denied (as the masters see the caller)"));
            }
            checked = Some(ext);
        }
        // A handle is counted under the open table's lock, where the last
        // release checks the count before removing the file: an open racing
        // a release (on another thread) either finds the file still counted
        // or finds it gone and loads it anew, never a file left detached.
        let count = |f: &Arc<OpenFile>| f.handles.fetch_add(1, Ordering::SeqCst) == 0;
        let existing = {
            let files = self.open.files.lock();
            files.get(&ino).map(|f| (f.clone(), count(f)))
        };
        let (f, loaded, first) = match existing {
            Some((f, first)) => (f, false, first),
            None => {
                let closed = self.open.take_closed(ino).filter(|c| self.leases.still(c.gen));
                let mut committed_under = u64::MAX;
                let (attr, extents) = match (fresh, closed) {
                    (Some(a), _) => (*a, Vec::new()),
                    (None, Some(c)) if checked.is_none() => {
                        metrics::counter!("tessera_mount_opens_total", "extents" => "remembered").increment(1);
                        committed_under = c.gen;
                        (pb::Attr { ino, size: c.size, version: c.version, ..Default::default() }, c.extents)
                    }
                    (None, _) => {
                        let ext = match checked.take() {
                            Some(ext) => ext,
                            None => as_opener.extents(ino).await?,
                        };
                        (ext.attr.ok_or_else(|| ClientError::fs(libc::EIO, "no attributes"))?, ext.extents)
                    }
                };
                let mut data = FileData::new(ino, self.chunk, &attr, extents);
                data.cred = cred.clone();
                if self.behind.creates.holds(ino) {
                    data.rider = Some(self.behind.creates.clone());
                }
                let f = Arc::new(OpenFile {
                    data: AsyncMutex::new(data),
                    handles: AtomicU64::new(0),
                    orphaned: Default::default(),
                    revoked: Default::default(),
                    committed_under: AtomicU64::new(committed_under),
                });
                let mut files = self.open.files.lock();
                let f = files.entry(ino).or_insert(f).clone();
                let first = count(&f);
                (f, true, first)
            }
        };
        // Close-to-open: a first open sees the latest committed content.
        if first {
            let mut d = f.data.lock().await;
            if !loaded && !d.is_dirty() {
                let fetched = match checked.take() {
                    Some(ext) => Ok(ext),
                    None => as_opener.extents(ino).await,
                };
                let ext = match fetched {
                    Ok(ext) => ext,
                    Err(e) => {
                        // Not opened after all: give the count back.
                        drop(d);
                        self.handle_closed(ino, &f).await;
                        return Err(e);
                    }
                };
                if let Some(attr) = ext.attr {
                    d.reset(&attr, ext.extents);
                }
            }
            let cached = self.open.page_versions.lock().get(&ino).copied();
            keep = !d.is_dirty() && cached == Some(d.committed_version());
            tracing::debug!(ino, keep, ?cached, version = d.committed_version(), "open");
        }
        if !loaded && flags & libc::O_ACCMODE != libc::O_RDONLY {
            f.data.lock().await.cred = cred.clone();
        }
        let fh = self.open.next_fh.fetch_add(1, Ordering::SeqCst);
        self.open.handles.lock().insert(fh, (ino, flags));
        self.atimes.opened(fh);
        Ok((fh, keep))
    }

    /// The kernel's cached pages of `ino` may be stale: forget their version.
    pub fn forget_pages(&self, ino: u64) {
        self.open.page_versions.lock().remove(&ino);
        self.open.forget_closed(ino);
    }

    pub(crate) fn file_of(&self, fh: u64) -> Result<(Arc<OpenFile>, i32)> {
        let (ino, flags) =
            *self.open.handles.lock().get(&fh).ok_or_else(|| ClientError::fs(libc::EBADF, "bad file handle"))?;
        let f = self.open_file(ino).ok_or_else(|| ClientError::fs(libc::EBADF, "file not open"))?;
        Ok((f, flags))
    }

    pub async fn read(&self, fh: u64, off: u64, len: u64) -> Result<bytes::Bytes> {
        let t0 = std::time::Instant::now();
        let (f, _) = self.file_of(fh)?;
        let first_read = self.atimes.first_read(fh);
        let data = {
            let mut d = f.data.lock().await;
            if f.revoked.swap(false, Ordering::SeqCst) && !d.is_dirty() {
                let ext = self.with_cred(d.cred.clone()).extents(d.ino).await?;
                if let Some(attr) = ext.attr {
                    d.reset(&attr, ext.extents);
                }
            }
            d.read(&self.fs.transfer, off, len).await?
        };
        if first_read {
            let ino = f.data.lock().await.ino;
            self.atimes.read(&self.fs, ino);
        }
        metrics::counter!("tessera_mount_read_bytes_total").increment(data.len() as u64);
        metrics::histogram!("tessera_mount_read_seconds").record(t0.elapsed().as_secs_f64());
        Ok(data)
    }

    /// A write done on the calling (FUSE) thread, when nobody else holds
    /// the file and it needs no I/O (`FileData::write_buffered`): most small
    /// writes. None: not done, `write` does it.
    pub fn write_now(&self, fh: u64, off: u64, data: &[u8]) -> Option<Result<()>> {
        let (f, flags) = match self.file_of(fh) {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        if flags & libc::O_ACCMODE == libc::O_RDONLY {
            return Some(Err(ClientError::fs(libc::EBADF, "file not open for writing")));
        }
        let mut d = f.data.try_lock().ok()?;
        let off = if flags & libc::O_APPEND != 0 { d.size } else { off };
        let done = d.write_buffered(off, data);
        if done {
            metrics::counter!("tessera_mount_write_bytes_total").increment(data.len() as u64);
        }
        done.then_some(Ok(()))
    }

    pub async fn write(&self, fh: u64, off: u64, data: &[u8]) -> Result<()> {
        let (f, flags) = self.file_of(fh)?;
        if flags & libc::O_ACCMODE == libc::O_RDONLY {
            return Err(ClientError::fs(libc::EBADF, "file not open for writing"));
        }
        let mut d = f.data.lock().await;
        let off = if flags & libc::O_APPEND != 0 { d.size } else { off };
        let t0 = std::time::Instant::now();
        d.write(&self.fs, off, data).await?;
        metrics::counter!("tessera_mount_write_bytes_total").increment(data.len() as u64);
        metrics::histogram!("tessera_mount_write_seconds").record(t0.elapsed().as_secs_f64());
        Ok(())
    }

    /// Makes this file's writes durable (3 replicas) and committed.
    pub async fn flush_ino(&self, ino: u64) -> Result<()> {
        if let Some(f) = self.open_file(ino) {
            let mut d = f.data.lock().await;
            self.committed(ino, d.flush(&self.fs).await)?;
        }
        self.create_landed(ino).await
    }

    pub async fn flush(&self, fh: u64) -> Result<()> {
        let (f, _) = self.file_of(fh)?;
        let mut d = f.data.lock().await;
        let ino = d.ino;
        let gen = self.leases.gen();
        let r = d.flush(&self.fs).await;
        if matches!(r, Ok(Some(_))) {
            f.committed_under.store(gen, Ordering::SeqCst);
        }
        self.committed(ino, r)?;
        drop(d);
        self.create_landed(ino).await
    }

    /// A commit's new attributes (size, mtime) go to the lookup cache; after
    /// a failed one, whether it landed is unknown.
    pub(crate) fn committed(&self, ino: u64, r: Result<Option<Attr>>) -> Result<()> {
        match r {
            Ok(Some(a)) => {
                self.caches.dir.updated(&a);
                // The kernel asks for security.capability before each write
                // to a file (a database's fsync loop): answered here.
                self.note_xattrs(&a);
            }
            Ok(None) => {}
            Err(e) => {
                self.caches.dir.changed(ino);
                return Err(e);
            }
        }
        Ok(())
    }

    pub async fn release(&self, fh: u64) -> Result<()> {
        let r = self.flush(fh).await;
        let entry = self.open.handles.lock().remove(&fh);
        self.atimes.closed(fh);
        if let Some((ino, _)) = entry {
            if let Some(f) = self.open_file(ino) {
                self.handle_closed(ino, &f).await;
            }
        }
        r
    }

    /// One handle of `f` fewer; the last one closed leaves the open table
    /// (when nothing is left to commit).
    async fn handle_closed(&self, ino: u64, f: &Arc<OpenFile>) {
        if f.handles.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let (clean, version) = {
            let d = f.data.lock().await;
            // Committed here under a lease that still holds: the next open
            // needs no round trip.
            let gen = f.committed_under.load(Ordering::SeqCst);
            if let Some((size, version, extents)) = d.committed_view().filter(|_| self.leases.still(gen)) {
                let closed = crate::open_files::ClosedFile { size, version, extents: extents.to_vec(), gen };
                self.open.remember_closed(ino, closed);
            }
            (!d.is_dirty(), d.committed_version())
        };
        if clean && !f.revoked.load(Ordering::SeqCst) {
            // The kernel's pages are this version's.
            let mut pv = self.open.page_versions.lock();
            if pv.len() >= 100_000 {
                pv.clear();
            }
            pv.insert(ino, version);
        }
        let mut files = self.open.files.lock();
        if clean && f.handles.load(Ordering::SeqCst) == 0 {
            files.remove(&ino);
            if f.orphaned.load(Ordering::SeqCst) {
                self.release_orphans(vec![ino]);
            }
        }
    }

    /// Truncates through the master after flushing local writes, then
    /// refreshes the open state.
    pub async fn truncate(&self, fs: &Fs, ino: u64, size: u64, by_handle: bool) -> Result<()> {
        self.open.forget_closed(ino);
        if by_handle {
            // Through an open handle: the open file takes it like a write,
            // and the next flush commits it.
            if let Some(f) = self.open_file(ino) {
                return f.data.lock().await.truncate(&self.fs.transfer, size).await;
            }
        }
        self.flush_ino(ino).await?;
        let req = pb::SetAttrRequest {
            cred: Some(fs.cred.clone()),
            ino,
            size: Some(size),
            by_handle,
            request_id: tessera_client::fs::request_id(),
            ..Default::default()
        };
        let attr = fs.setattr(&req).await?;
        if let Some(f) = self.open_file(ino) {
            let ext = fs.extents(ino).await?;
            f.data.lock().await.reset(&attr, ext.extents);
        }
        Ok(())
    }

    pub async fn opendir(&self, fs: &Fs, ino: u64, parent: u64) -> Result<u64> {
        let mut entries =
            vec![(ino, FileType::Directory, b".".to_vec(), None), (parent, FileType::Directory, b"..".to_vec(), None)];
        let gen = self.leases.gen();
        let (listed, grant) = fs.readdir_upto_leased(ino, true, usize::MAX).await?.unwrap_or_default();
        for e in listed {
            entries.push((e.ino, kind(e.kind), e.name.to_vec(), e.attr));
        }
        let leased = grant.lease && self.leases.still(gen);
        if leased && grant.exclusive {
            self.dir_exclusive(ino, gen);
        }
        let fh = self.open.next_fh.fetch_add(1, Ordering::SeqCst);
        self.open.dirs.lock().insert(fh, Arc::new(DirHandle { entries, leased }));
        Ok(fh)
    }

    pub fn dir(&self, fh: u64) -> Option<Arc<DirHandle>> {
        self.open.dirs.lock().get(&fh).cloned()
    }

    pub fn releasedir(&self, fh: u64) {
        self.open.dirs.lock().remove(&fh);
    }
}

pub fn rand_id() -> u64 {
    let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    (t.as_nanos() as u64) ^ ((std::process::id() as u64) << 32)
}
