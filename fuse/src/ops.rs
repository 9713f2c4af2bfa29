//! fuser callbacks. Each one captures what it needs, hands its reply object
//! to a tokio task and returns at once, so slow metadata or chunk I/O never
//! holds a FUSE thread.

use crate::convert::{errno, kind_of_mode, permitted, ts};
use crate::fs::{cred, to_file_attr, LookupHere, Mount};
use crate::inflight::{Bound, Inflight};
use fuser::*;
use futures::FutureExt;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;
use tessera_client::ClientError;
use tessera_proto::pb::{self, FileKind};
use tokio::runtime::Handle;

pub struct TesseraFs {
    pub mount: Arc<Mount>,
    pub rt: Handle,
    /// Requests waiting on the cluster: I/O timeout and interrupts.
    pub inflight: Arc<Inflight>,
}

/// Runs `$body` (a future of a `Result`) for request `$req` off the FUSE
/// thread, bounded by the I/O timeout and interruptible (inflight.rs);
/// `$ok` answers `$reply` with the value, an error answers its errno.
macro_rules! spawn {
    ($self:ident, $req:ident, $reply:ident, |$m:ident| $body:expr, |$v:ident| $ok:expr) => {{
        let $m = $self.mount.clone();
        let answer_mount = $m.clone();
        $self.inflight.run(
            &$self.rt,
            $req.unique().0,
            $crate::inflight::Bound::Timeout,
            $reply,
            async move { $body.await },
            move |$reply, r| {
                // `$ok` may use the mount too.
                #[allow(unused_variables)]
                let $m = answer_mount;
                match r {
                    Ok($v) => $ok,
                    Err(e) => $reply.error($crate::convert::errno(&e)),
                }
            },
        );
    }};
}
pub(crate) use spawn;

impl TesseraFs {
    pub(crate) fn entry(
        &self,
        req: &Request,
        reply: ReplyEntry,
        fut: impl std::future::Future<Output = tessera_client::Result<pb::Attr>> + Send + 'static,
    ) {
        let m = self.mount.clone();
        let work = async move {
            match fut.await {
                Ok(a) => Ok(m.patch(a).await),
                Err(e) => Err(e),
            }
        };
        let ttl = self.mount.kernel_ttl();
        self.inflight.run(&self.rt, req.unique().0, Bound::Timeout, reply, work, move |reply, r| match r {
            Ok(a) => reply.entry(&ttl, &to_file_attr(&a), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        });
    }
}

impl Filesystem for TesseraFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(4 << 20);
        let _ = config.set_max_background(64);
        // Locks go to the master so that they exclude across mounts.
        let _ = config.add_capabilities(InitFlags::FUSE_POSIX_LOCKS | InitFlags::FUSE_FLOCK_LOCKS);
        // Directory listings carry attributes (ls -l needs no lookups), and
        // operations in one directory run in parallel.
        let _ = config.add_capabilities(
            InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO | InitFlags::FUSE_PARALLEL_DIROPS,
        );
        Ok(())
    }

    fn interrupt(&self, _req: &Request, unique: RequestId) {
        self.inflight.interrupt(unique.0);
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let fs = self.mount.with_cred(cred(req.uid(), req.gid(), req.pid()));
        let name = name.as_bytes().to_vec();
        let m = self.mount.clone();
        let here = {
            let _rt = self.rt.enter();
            m.lookup_here(&fs.cred, parent.0, &name)
        };
        let answered_by = if matches!(here, LookupHere::Ask) { "master" } else { "cache" };
        metrics::counter!("tessera_mount_lookups_total", "answered_by" => answered_by).increment(1);
        let answer = |reply: ReplyEntry, r: tessera_client::Result<(pb::Attr, std::time::Duration)>| match r {
            Ok((a, ttl)) => reply.entry(&ttl, &to_file_attr(&a), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        };
        match here {
            LookupHere::Done(r) => answer(reply, r),
            LookupHere::NameOnly(a, left) => {
                reply.entry_with_ttls(&std::time::Duration::ZERO, &left, &to_file_attr(&a), Generation(0))
            }
            LookupHere::Patch(a, left) => {
                let work = async move { Ok((m.patch(a).await, left)) };
                self.inflight.run(&self.rt, req.unique().0, Bound::Timeout, reply, work, answer);
            }
            LookupHere::Ask => {
                let work = async move { m.lookup_master_ttls(&fs, parent.0, &name).await };
                self.inflight.run(&self.rt, req.unique().0, Bound::Timeout, reply, work, |reply, r| match r {
                    Ok((a, entry_ttl, attr_ttl)) => {
                        reply.entry_with_ttls(&attr_ttl, &entry_ttl, &to_file_attr(&a), Generation(0))
                    }
                    Err(e) => reply.error(errno(&e)),
                });
            }
        }
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.mount.getattr_here(ino.0) {
            Some((a, ttl)) => reply.attr(&ttl, &to_file_attr(&a)),
            None => {
                spawn!(self, req, reply, |m| m.getattr_for_kernel(ino.0), |a| reply.attr(&a.1, &to_file_attr(&a.0)))
            }
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let fs = self.mount.with_cred(cred(req.uid(), req.gid(), req.pid()));
        spawn!(
            self,
            req,
            reply,
            |m| async {
                let ino = ino.0;
                if let Some(size) = size {
                    // The kernel sends the handle for ftruncate and O_TRUNC.
                    m.truncate(&fs, ino, size, fh.is_some()).await?;
                }
                if mode.is_none() && uid.is_none() && gid.is_none() && atime.is_none() && mtime.is_none() {
                    return m.getattr(ino).await;
                }
                let (at, at_now) = atime.map(ts).unwrap_or((None, false));
                let (mt, mt_now) = mtime.map(ts).unwrap_or((None, false));
                let req = pb::SetAttrRequest {
                    cred: Some(fs.cred.clone()),
                    ino,
                    mode: mode.map(|m| m & 0o7777),
                    uid,
                    gid,
                    size: None,
                    atime: at,
                    atime_now: at_now,
                    mtime: mt,
                    mtime_now: mt_now,
                    read_access: false,
                    by_handle: false,
                    request_id: tessera_client::fs::request_id(),
                };
                // On a directory held here alone: acknowledged, sent behind.
                if let Some(a) = m.dir_setattr_behind(&req) {
                    return Ok(a);
                }
                // On a file with writes not yet committed: rides on their commit.
                if let Some(r) = m.setattr_behind(&req).await {
                    return r;
                }
                if mtime.is_some() {
                    // Explicit times win over the commit of pending writes.
                    m.flush_ino(ino).await?;
                }
                let a = fs.setattr(&req).await?;
                Ok(m.patch(a).await)
            }
            .then(|r| async {
                match &r {
                    Ok(a) => m.attrs_set(a),
                    Err(_) => m.attrs_changed(ino.0),
                }
                r
            }),
            |a| reply.attr(&m.kernel_ttl(), &to_file_attr(&a))
        );
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let fs = self.mount.fs.clone();
        spawn!(self, req, reply, |_m| async move { fs.readlink(ino.0).await }, |target| reply.data(&target));
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let fs = self.mount.with_cred(cred(req.uid(), req.gid(), req.pid()));
        let at = name.as_bytes().to_vec();
        self.new_entry(req, reply, parent, name, async move {
            fs.mknod_at(parent.0, &at, mode & !umask & 0o7777, kind_of_mode(mode), rdev).await
        });
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let fs = self.mount.with_cred(cred(req.uid(), req.gid(), req.pid()));
        let (m, at) = (self.mount.clone(), name.as_bytes().to_vec());
        self.new_entry(req, reply, parent, name, async move {
            let (started, gen) = (std::time::Instant::now(), m.leases.gen());
            let made = fs.mkdir_at(parent.0, &at, mode & !umask & 0o7777).await?;
            if made.exclusive {
                m.made_dir_exclusive(&made.attr, started, gen);
            }
            Ok(made)
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(req, parent, name, false, reply);
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(req, parent, name, true, reply);
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let fs = self.mount.with_cred(cred(req.uid(), req.gid(), req.pid()));
        let (at, target) = (link_name.as_bytes().to_vec(), target.as_os_str().as_bytes().to_vec());
        self.new_entry(req, reply, parent, link_name, async move { fs.symlink_at(parent.0, &at, &target).await });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.rename_names(req, parent, name, newparent, newname, flags, reply);
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let fs = self.mount.with_cred(cred(req.uid(), req.gid(), req.pid()));
        let at = newname.as_bytes().to_vec();
        // A second name: reachable by others without its first directory.
        self.mount.behind.unlinks.lock().fresh.remove(&ino.0);
        self.new_entry(req, reply, newparent, newname, async move { fs.link(ino.0, newparent.0, &at).await });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let c = cred(req.uid(), req.gid(), req.pid());
        spawn!(self, req, reply, |m| m.open_keep(&c, ino.0, flags.0, None), |x| {
            let keep = if x.1 { FopenFlags::FOPEN_KEEP_CACHE } else { FopenFlags::empty() };
            reply.opened(FileHandle(x.0), keep)
        });
    }

    fn read(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        spawn!(self, req, reply, |m| m.read(fh.0, offset, size as u64), |d| { reply.data(&d) });
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let n = data.len() as u32;
        match self.mount.write_now(fh.0, offset, data) {
            Some(Ok(())) => return reply.written(n),
            Some(Err(e)) => return reply.error(crate::convert::errno(&e)),
            None => {}
        }
        let data = data.to_vec();
        spawn!(self, req, reply, |m| async move { m.write(fh.0, offset, &data).await }, |_x| reply.written(n));
    }

    fn flush(&self, req: &Request, ino: INodeNo, fh: FileHandle, lock_owner: LockOwner, reply: ReplyEmpty) {
        spawn!(
            self,
            req,
            reply,
            |m| async move {
                let r = m.flush(fh.0).await;
                // close(2) drops the process's POSIX locks on the file.
                m.release_locks(ino.0, lock_owner.0).await?;
                r
            },
            |_x| reply.ok()
        );
    }

    fn getlk(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        spawn!(self, req, reply, |m| m.getlk(ino.0, lock_owner.0, start, end, typ), |l| reply
            .locked(l.start, l.end, l.typ, l.pid));
    }

    fn setlk(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        sleep: bool,
        flock: bool,
        reply: ReplyEmpty,
    ) {
        // A blocking lock may wait for another user as long as they hold
        // it: no I/O timeout, but interruptible (Ctrl-C of `flock`).
        let m = self.mount.clone();
        let bound = if sleep { Bound::Interruptible } else { Bound::Timeout };
        let lock = crate::locks::LockArgs { ino: ino.0, owner: lock_owner.0, pid, start, end, typ, flock };
        let work = async move { m.setlk(lock, sleep).await };
        self.inflight.run(&self.rt, req.unique().0, bound, reply, work, |reply, r| match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        });
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        spawn!(
            self,
            req,
            reply,
            |m| async move {
                let r = m.release(fh.0).await;
                // flock locks die with the last reference to the open file.
                if let Some(o) = lock_owner {
                    m.release_locks(ino.0, o.0).await?;
                }
                // Closed here: locks the masters handed over go back.
                if m.delegated.holds(ino.0) && m.open_file(ino.0).is_none() {
                    m.give_back_locks(ino.0).await;
                }
                r
            },
            |_x| reply.ok()
        );
    }

    fn fallocate(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        spawn!(self, req, reply, |m| async move { m.fallocate(fh.0, offset, length, mode).await }, |_x| reply.ok());
    }

    fn fsync(&self, req: &Request, _ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        spawn!(
            self,
            req,
            reply,
            |m| async move {
                m.flush(fh.0).await?;
                // Unlinks acknowledged before (write-behind) are durable too.
                m.fs.meta.write_behind().settle().await;
                Ok::<_, ClientError>(())
            },
            |_x| reply.ok()
        );
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let fs = self.mount.with_cred(cred(req.uid(), req.gid(), req.pid()));
        spawn!(
            self,
            req,
            reply,
            |m| async {
                let a = fs.getattr(ino.0).await?;
                if a.kind != FileKind::Directory as i32 {
                    return Err(ClientError::fs(libc::ENOTDIR, "not a directory"));
                }
                m.opendir(&fs, ino.0, a.parent.max(1)).await
            },
            |fh| reply.opened(FileHandle(fh), FopenFlags::empty())
        );
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let Some(d) = self.mount.dir(fh.0) else {
            reply.error(Errno::EBADF);
            return;
        };
        for (i, (ino, kind, name, _)) in d.entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(&self, req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectoryPlus) {
        let Some(d) = self.mount.dir(fh.0) else {
            reply.error(Errno::EBADF);
            return;
        };
        let m = self.mount.clone();
        let ttl = if d.leased { self.mount.kernel_ttl() } else { std::time::Duration::ZERO };
        let unique = req.unique().0;
        let work = async move {
            // Attributes first (some may need the master), then the reply.
            let (mut out, mut bytes) = (Vec::new(), 0usize);
            for (i, (ino, _kind, name, attr)) in d.entries.iter().enumerate().skip(offset as usize) {
                let attr = match attr {
                    Some(a) => m.patch(*a).await,
                    None => match m.getattr(*ino).await {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                };
                out.push((i, *ino, name.clone(), attr));
                // A reply buffer holds at most 128 KiB of entries (each a
                // 152-byte record plus its name).
                bytes += 160 + name.len();
                if bytes >= 128 << 10 {
                    break;
                }
            }
            out
        };
        self.inflight.run(&self.rt, unique, Bound::Timeout, reply, work, move |mut reply, out| {
            for (i, ino, name, attr) in out {
                if reply.add(
                    INodeNo(ino),
                    (i + 1) as u64,
                    OsStr::from_bytes(&name),
                    &ttl,
                    &to_file_attr(&attr),
                    Generation(0),
                ) {
                    break;
                }
            }
            reply.ok();
        });
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.mount.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // Namespace changes are committed (Raft, fsynced on a majority)
        // before they return, but for write-behind unlinks: wait for those.
        let behind = self.mount.fs.meta.write_behind().clone();
        let work = async move { behind.settle().await };
        self.inflight.run(&self.rt, req.unique().0, Bound::Timeout, reply, work, |reply, ()| reply.ok());
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let fs = self.mount.fs.clone();
        spawn!(self, req, reply, |_m| async move { fs.statfs().await }, |s| {
            // Every byte is stored three times: report usable space.
            let bs = 4096u64;
            let r = tessera_proto::REPLICATION as u64;
            let blocks = s.capacity_bytes / bs / r;
            let free = s.free_bytes / bs / r;
            reply.statfs(blocks, free, free, s.files + 1_000_000_000, 1_000_000_000, bs as u32, 255, bs as u32)
        });
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.xattr_set(req, ino, name, value, flags, reply);
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.xattr_get(req, ino, name, size, reply);
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.xattr_list(req, ino, size, reply);
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.xattr_remove(req, ino, name, reply);
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let c = cred(req.uid(), req.gid(), req.pid());
        spawn!(
            self,
            req,
            reply,
            |m| async move {
                let a = m.getattr(ino.0).await?;
                if permitted(&a, &c, mask.bits()) {
                    Ok(())
                } else {
                    Err(ClientError::fs(libc::EACCES, "permission denied"))
                }
            },
            |_x| reply.ok()
        );
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.create_file(req, parent, name, mode, umask, flags, reply);
    }
}
