//! Path-level operations for the CLI and batch jobs: resolve paths, create,
//! list, remove, rename, upload and download whole files.

use crate::error::{ClientError, Result};
use crate::meta::{MetaClient, PbClient};
use crate::path::{components, validate_name_bytes};
use crate::transfer::Transfer;
use bytes::Bytes;
use tessera_proto::pb::*;
use tessera_proto::ROOT_INO;

/// What a read granted the caller's cache lease (see the masters' leases).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grant {
    /// The answer may be kept until revoked.
    pub lease: bool,
    /// The caller holds the directory read exclusively: no other mount
    /// does, until the masters recall it.
    pub exclusive: bool,
    /// The attributes may be kept too (a lookup's `lease` covers the name).
    pub attrs: bool,
}

#[derive(Clone)]
pub struct Fs {
    pub meta: MetaClient,
    pub transfer: Transfer,
    pub cred: Cred,
}

pub fn request_id() -> String {
    format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>())
}

impl Fs {
    pub fn cred(&self) -> Option<Cred> {
        Some(self.cred.clone())
    }

    /// This client, sending `cred` as its caller's credentials.
    pub fn acting_as(&self, cred: Cred) -> Fs {
        Fs { cred, ..self.clone() }
    }

    /// Names are bytes (`&str`, `&[u8]`, ...): a name need not be UTF-8.
    pub async fn lookup(&self, parent: u64, name: impl AsRef<[u8]>) -> Result<Attr> {
        Ok(self.lookup_leased(parent, name.as_ref(), true).await?.0)
    }

    /// `lookup`, not waiting for write-behind changes (see `MetaClient::read_unordered`).
    pub async fn lookup_unordered(&self, parent: u64, name: impl AsRef<[u8]>) -> Result<Attr> {
        Ok(self.lookup_leased(parent, name.as_ref(), false).await?.0)
    }

    /// A lookup, and what the leader granted this client's cache lease
    /// (see `MetaOptions::session`): the answer, and the parent exclusively.
    pub async fn lookup_leased(&self, parent: u64, name: &[u8], ordered: bool) -> Result<(Attr, Grant)> {
        let req = LookupRequest { cred: self.cred(), parent, name: Bytes::copy_from_slice(name) };
        let call = |mut c: PbClient| {
            let r = req.clone();
            async move { c.lookup(r).await }
        };
        let r = if ordered {
            self.meta.read("lookup", call).await?
        } else {
            self.meta.read_unordered("lookup", call).await?
        };
        let a = r.attr.ok_or_else(|| ClientError::fs(libc::EIO, "lookup reply without attributes"))?;
        Ok((a, Grant { lease: r.lease, exclusive: r.exclusive, attrs: r.attr_lease }))
    }

    pub async fn getattr(&self, ino: u64) -> Result<Attr> {
        self.getattr_in_order(ino, true).await
    }

    /// `getattr`, not waiting for write-behind changes (see `MetaClient::read_unordered`).
    pub async fn getattr_unordered(&self, ino: u64) -> Result<Attr> {
        self.getattr_in_order(ino, false).await
    }

    async fn getattr_in_order(&self, ino: u64, ordered: bool) -> Result<Attr> {
        Ok(self.getattr_leased(ino, ordered).await?.0)
    }

    /// A getattr, and whether the answer is under this client's cache lease.
    pub async fn getattr_leased(&self, ino: u64, ordered: bool) -> Result<(Attr, bool)> {
        let req = GetAttrRequest { ino, stale_ok: false };
        let call = |mut c: PbClient| async move { c.get_attr(req).await };
        let r = if ordered {
            self.meta.read("getattr", call).await?
        } else {
            self.meta.read_unordered("getattr", call).await?
        };
        let a = r.attr.ok_or_else(|| ClientError::fs(libc::EIO, "getattr reply without attributes"))?;
        Ok((a, r.lease))
    }

    /// Resolves an absolute path to its attributes.
    pub async fn resolve(&self, path: &str) -> Result<Attr> {
        let mut attr = self.getattr(ROOT_INO).await?;
        for c in components(path)? {
            if attr.kind != FileKind::Directory as i32 {
                return Err(ClientError::fs(libc::ENOTDIR, format!("{path}: a component is not a directory")));
            }
            attr = self.lookup(attr.ino, &c).await.map_err(|e| with_path(e, path))?;
        }
        Ok(attr)
    }

    /// Resolves the parent directory of `path`; returns it and the last name.
    pub async fn resolve_parent(&self, path: &str) -> Result<(Attr, String)> {
        let mut comps = components(path)?;
        let name = comps.pop().ok_or_else(|| ClientError::invalid_path(path, "is the root", libc::EINVAL))?;
        let parent_path = format!("/{}", comps.join("/"));
        let parent = self.resolve(&parent_path).await?;
        if parent.kind != FileKind::Directory as i32 {
            return Err(ClientError::fs(libc::ENOTDIR, format!("{parent_path}: not a directory")));
        }
        Ok((parent, name))
    }

    pub async fn mkdir(&self, path: &str, mode: u32) -> Result<Attr> {
        let (parent, name) = self.resolve_parent(path).await?;
        let made = self.mkdir_at(parent.ino, name.as_bytes(), mode).await;
        Ok(made.map_err(|e| with_path(e, path))?.attr)
    }

    /// `mkdir -p`: creates missing directories, accepts existing ones.
    pub async fn mkdir_p(&self, path: &str, mode: u32) -> Result<Attr> {
        let mut attr = self.getattr(ROOT_INO).await?;
        let mut cur = String::new();
        for c in components(path)? {
            cur.push('/');
            cur.push_str(&c);
            attr = match self.lookup(attr.ino, &c).await {
                Ok(a) => a,
                Err(e) if e.is_not_found() => match self.mkdir_at(attr.ino, c.as_bytes(), mode).await {
                    Ok(made) => made.attr,
                    Err(e) if e.errno() == libc::EEXIST => self.lookup(attr.ino, &c).await?,
                    Err(e) => return Err(with_path(e, &cur)),
                },
                Err(e) => return Err(with_path(e, &cur)),
            };
            if attr.kind != FileKind::Directory as i32 {
                return Err(ClientError::fs(libc::ENOTDIR, format!("{cur}: exists and is not a directory")));
            }
        }
        Ok(attr)
    }

    pub async fn create(
        &self,
        parent: u64,
        name: impl AsRef<[u8]>,
        mode: u32,
        exclusive: bool,
        truncate: bool,
    ) -> Result<CreateReply> {
        let name = name.as_ref();
        validate_name_bytes(name)?;
        let req = CreateRequest {
            cred: self.cred(),
            parent,
            name: Bytes::copy_from_slice(name),
            mode,
            kind: FileKind::Regular as i32,
            rdev: 0,
            exclusive,
            truncate,
            request_id: request_id(),
            ..Default::default()
        };
        self.meta.unary("create", &req, |mut c, r| async move { c.create(r).await }).await
    }

    /// All entries of a directory, following pages.
    pub async fn readdir(&self, ino: u64, plus: bool) -> Result<Vec<DirEntry>> {
        Ok(self.readdir_upto(ino, plus, usize::MAX).await?.unwrap_or_default())
    }

    /// Like `readdir`, but None once the directory holds more than `max` entries.
    pub async fn readdir_upto(&self, ino: u64, plus: bool, max: usize) -> Result<Option<Vec<DirEntry>>> {
        Ok(self.readdir_upto_leased(ino, plus, max).await?.map(|(e, _)| e))
    }

    /// `readdir_upto`, and what every page granted this client's cache lease.
    pub async fn readdir_upto_leased(
        &self,
        ino: u64,
        plus: bool,
        max: usize,
    ) -> Result<Option<(Vec<DirEntry>, Grant)>> {
        let mut grant = Grant { lease: true, exclusive: true, attrs: true };
        let mut out = Vec::new();
        let mut after = Bytes::new();
        loop {
            let req = ReadDirRequest { cred: self.cred(), ino, after: after.clone(), limit: 1000, plus };
            let r = self
                .meta
                .read("readdir", |mut c| {
                    let r = req.clone();
                    async move { c.read_dir(r).await }
                })
                .await?;
            if let Some(last) = r.entries.last() {
                after = last.name.clone();
            }
            grant.lease &= r.lease;
            grant.attrs &= r.lease;
            grant.exclusive &= r.exclusive;
            out.extend(r.entries);
            if out.len() > max {
                return Ok(None);
            }
            if !r.more {
                return Ok(Some((out, grant)));
            }
        }
    }

    pub async fn unlink(&self, parent: u64, name: impl AsRef<[u8]>) -> Result<()> {
        self.remove_at(parent, name.as_ref(), false, vec![]).await?;
        Ok(())
    }

    pub async fn rmdir(&self, parent: u64, name: impl AsRef<[u8]>) -> Result<()> {
        self.remove_at(parent, name.as_ref(), true, vec![]).await?;
        Ok(())
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (p1, n1) = self.resolve_parent(from).await?;
        let (p2, n2) = self.resolve_parent(to).await?;
        self.rename_at(p1.ino, &n1, p2.ino, &n2).await.map_err(|e| with_path(e, from))
    }

    /// Rename by parent inodes (no path resolution).
    pub async fn rename_at(
        &self,
        parent: u64,
        name: impl AsRef<[u8]>,
        new_parent: u64,
        new_name: impl AsRef<[u8]>,
    ) -> Result<()> {
        let req = RenameRequest {
            cred: self.cred(),
            parent,
            name: Bytes::copy_from_slice(name.as_ref()),
            new_parent,
            new_name: Bytes::copy_from_slice(new_name.as_ref()),
            flags: 0,
            request_id: request_id(),
            open: vec![],
            ..Default::default()
        };
        self.rename_request(&req).await?;
        Ok(())
    }

    pub async fn set_times(&self, ino: u64, mtime: Timespec, mode: Option<u32>) -> Result<Attr> {
        let req = SetAttrRequest {
            cred: self.cred(),
            ino,
            mode,
            mtime: Some(mtime),
            request_id: request_id(),
            ..Default::default()
        };
        let r = self
            .meta
            .call("setattr", |mut c| {
                let r = req.clone();
                async move { c.set_attr(r).await }
            })
            .await?;
        r.attr.ok_or_else(|| ClientError::fs(libc::EIO, "setattr reply without attributes"))
    }

    pub async fn extents(&self, ino: u64) -> Result<GetExtentsReply> {
        self.transfer.extents_as(ino, self.cred()).await
    }

    /// The GC epoch: read it before checking or uploading the chunks of a
    /// commit, and pass it to `commit` (see CommitRequest in the .proto).
    pub async fn epoch(&self) -> Result<u64> {
        // Unordered: an epoch read before an upload is valid whatever this
        // client's write-behind changes (a held-back create is not kicked).
        let r = self.meta.call_unordered("epoch", |mut c| async move { c.epoch(Empty {}).await }).await?;
        Ok(r.epoch)
    }

    /// An epoch read at most a second ago. Any epoch read before an upload
    /// began is valid for its commit (an older one only makes a spurious
    /// EAGAIN a little likelier), so a burst of small files shares one read.
    pub async fn recent_epoch(&self) -> Result<u64> {
        if let Some(e) = self.meta.cached_epoch(std::time::Duration::from_secs(1)) {
            return Ok(e);
        }
        let asked = std::time::Instant::now();
        let e = self.epoch().await?;
        self.meta.cache_epoch(e, asked);
        Ok(e)
    }

    /// Reserves `count` inode numbers for this client's write-behind creates;
    /// returns the first.
    pub async fn lease_inos(&self, count: u32) -> Result<u64> {
        let req = LeaseInosRequest { count, request_id: request_id() };
        let r = self
            .meta
            .call_unordered("lease_inos", |mut c| {
                let r = req.clone();
                async move { c.lease_inos(r).await }
            })
            .await?;
        Ok(r.first)
    }

    /// Atomically installs new content for a regular file. Fails with
    /// EAGAIN if a chunk was garbage-collected since `gc_epoch`.
    pub async fn commit(&self, ino: u64, extents: Vec<Extent>, size: u64, gc_epoch: u64) -> Result<Attr> {
        self.commit_with_mtime(ino, extents, size, gc_epoch, None).await
    }

    /// `commit` that sets mtime to `mtime` (an upload preserving times).
    pub async fn commit_with_mtime(
        &self,
        ino: u64,
        extents: Vec<Extent>,
        size: u64,
        gc_epoch: u64,
        mtime: Option<Timespec>,
    ) -> Result<Attr> {
        let req = CommitRequest {
            cred: self.cred(),
            ino,
            extents,
            size,
            gc_epoch,
            mtime,
            request_id: request_id(),
            ..Default::default()
        };
        self.send_commit(req, true).await
    }

    /// Commits changes to the committed content: the list is cut at
    /// `keep`, grown or cut to `size`, and each patch (offset, extents) laid
    /// over it. The request is sized by the change, not by the file.
    /// `unsealed`: sent while the chunks still upload (keep 0 only; the
    /// master then settles it later, see its fsm/unsealed.rs).
    #[allow(clippy::too_many_arguments)] // the fields of one CommitRequest
    pub async fn commit_splice(
        &self,
        ino: u64,
        keep: u64,
        size: u64,
        patches: Vec<(u64, Vec<Extent>)>,
        gc_epoch: u64,
        riders: Riders,
        unsealed: bool,
    ) -> Result<Attr> {
        let patches = patches.into_iter().map(|(offset, extents)| Patch { offset, extents }).collect();
        let Riders { create, attrs, mtime } = riders;
        let behind = create.is_some();
        let req = CommitRequest {
            cred: self.cred(),
            ino,
            size,
            gc_epoch,
            splice: true,
            keep,
            patches,
            create,
            unsealed,
            attrs,
            mtime,
            request_id: request_id(),
            ..Default::default()
        };
        // Carrying a write-behind create: the caller made sure nothing
        // begun before it is in flight, and its own create is (so an
        // ordered call would wait for itself).
        self.send_commit(req, !behind).await
    }

    async fn send_commit(&self, mut req: CommitRequest, ordered: bool) -> Result<Attr> {
        // Extents spliced from a GetExtents reply still carry this client's
        // read tokens: the masters have no use for them.
        let patched = req.patches.iter_mut().flat_map(|p| p.extents.iter_mut());
        for e in req.extents.iter_mut().chain(patched) {
            e.token = bytes::Bytes::new();
        }
        let call = |mut c: PbClient| {
            let r = req.clone();
            async move { c.commit(r).await }
        };
        let r = if ordered {
            self.meta.call("commit", call).await?
        } else {
            self.meta.call_unordered("commit", call).await?
        };
        r.attr.ok_or_else(|| ClientError::fs(libc::EIO, "commit reply without attributes"))
    }

    /// Uploads `reader` as the content of the remote file `path` (created or replaced).
    pub async fn put_stream<R: tokio::io::AsyncRead + Unpin>(
        &self,
        reader: R,
        path: &str,
        mode: u32,
        mtime: Option<Timespec>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Attr> {
        let (parent, name) = self.resolve_parent(path).await?;
        // Create first so a bad name or a directory in the way fails before
        // any data moves; the content becomes visible only at commit.
        let created = self.create(parent.ino, &name, mode, false, false).await.map_err(|e| with_path(e, path))?;
        let attr = created.attr.ok_or_else(|| ClientError::fs(libc::EIO, "create reply without attributes"))?;
        if attr.kind != FileKind::Regular as i32 {
            return Err(ClientError::fs(libc::EISDIR, format!("{path}: exists and is not a regular file")));
        }
        let epoch = self.recent_epoch().await?;
        let (extents, size) = self.transfer.upload(reader, progress).await?;
        self.commit_with_mtime(attr.ino, extents, size, epoch, mtime).await
    }

    pub async fn get_stream<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        path: &str,
        w: &mut W,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Attr> {
        let attr = self.resolve(path).await?;
        if attr.kind == FileKind::Directory as i32 {
            return Err(ClientError::fs(libc::EISDIR, format!("{path}: is a directory")));
        }
        let ext = self.extents(attr.ino).await?;
        let attr = ext.attr.unwrap_or(attr);
        self.transfer.download(&ext.extents, attr.size, w, progress).await?;
        Ok(attr)
    }
}

/// Prefixes a file-system error's message with the path it concerns.
pub fn with_path(e: ClientError, path: &str) -> ClientError {
    match e {
        ClientError::Fs { errno, msg } if !msg.starts_with(path) => {
            ClientError::Fs { errno, msg: format!("{path}: {msg}") }
        }
        other => other,
    }
}

impl Fs {
    pub async fn symlink(&self, parent: u64, name: &str, target: &str) -> Result<Attr> {
        Ok(self.symlink_at(parent, name.as_bytes(), target.as_bytes()).await?.attr)
    }
}

/// What a mount's commit carries besides content: the file's write-behind
/// create (applied first) and attribute changes made while it was written
/// (applied after), all in the commit's one Raft entry.
#[derive(Default, Clone)]
pub struct Riders {
    pub create: Option<CreateRequest>,
    pub attrs: Option<SetAttrRequest>,
    /// The time of the last write (the mtime the writer's stat showed);
    /// None: the commit's time.
    pub mtime: Option<Timespec>,
}
