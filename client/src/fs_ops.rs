//! The namespace operations a mount needs, by inode and byte name (a name
//! need not be UTF-8). Each is one metadata call with the caller's
//! credentials and a fresh request id (so a retried call is applied once);
//! the mount's adapters turn fuser arguments into these and errors into
//! errnos. The path-level operations of the CLI are built on the same calls.

use crate::error::{ClientError, Result};
use crate::fs::{request_id, Fs};
use crate::path::validate_name_bytes;
use bytes::Bytes;
use tessera_proto::pb::*;

/// A new directory entry: its attributes, and its parent directory's after
/// the change when the masters sent them.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub attr: Attr,
    pub parent: Option<Attr>,
    /// (mkdir) The caller holds the new directory exclusively: no other
    /// mount caches it until the masters recall it.
    pub exclusive: bool,
}

impl NewEntry {
    fn of(r: AttrReply, what: &str) -> Result<NewEntry> {
        let attr = r.attr.ok_or_else(|| ClientError::fs(libc::EIO, format!("{what} reply without attributes")))?;
        Ok(NewEntry { attr, parent: r.parent, exclusive: r.exclusive })
    }
}

fn bytes(name: &[u8]) -> Bytes {
    Bytes::copy_from_slice(name)
}

impl Fs {
    pub async fn mkdir_at(&self, parent: u64, name: &[u8], mode: u32) -> Result<NewEntry> {
        validate_name_bytes(name)?;
        let req = MkdirRequest { cred: self.cred(), parent, name: bytes(name), mode, request_id: request_id() };
        let r = self.meta.unary("mkdir", &req, |mut c, r| async move { c.mkdir(r).await });
        NewEntry::of(r.await?, "mkdir")
    }

    /// A node of any kind but a directory or symlink (`kind` from its mode;
    /// `rdev` for devices), created exclusively.
    pub async fn mknod_at(&self, parent: u64, name: &[u8], mode: u32, kind: FileKind, rdev: u32) -> Result<NewEntry> {
        validate_name_bytes(name)?;
        let req = CreateRequest {
            cred: self.cred(),
            parent,
            name: bytes(name),
            mode,
            kind: kind as i32,
            rdev,
            exclusive: true,
            truncate: false,
            request_id: request_id(),
            ..Default::default()
        };
        let r = self.create_request(&req).await?;
        let attr = r.attr.ok_or_else(|| ClientError::fs(libc::EIO, "mknod reply without attributes"))?;
        Ok(NewEntry { attr, parent: r.parent, exclusive: false })
    }

    /// A create as the caller built it (the mount's synchronous creates).
    pub async fn create_request(&self, req: &CreateRequest) -> Result<CreateReply> {
        self.meta.unary("create", req, |mut c, r| async move { c.create(r).await }).await
    }

    pub async fn symlink_at(&self, parent: u64, name: &[u8], target: &[u8]) -> Result<NewEntry> {
        validate_name_bytes(name)?;
        let req = SymlinkRequest {
            cred: self.cred(),
            parent,
            name: bytes(name),
            target: bytes(target),
            request_id: request_id(),
        };
        let r = self.meta.unary("symlink", &req, |mut c, r| async move { c.symlink(r).await });
        NewEntry::of(r.await?, "symlink")
    }

    /// A hard link to `ino` named `new_name` in `new_parent`.
    pub async fn link(&self, ino: u64, new_parent: u64, new_name: &[u8]) -> Result<NewEntry> {
        validate_name_bytes(new_name)?;
        let req =
            LinkRequest { cred: self.cred(), ino, new_parent, new_name: bytes(new_name), request_id: request_id() };
        let r = self.meta.unary("link", &req, |mut c, r| async move { c.link(r).await });
        NewEntry::of(r.await?, "link")
    }

    pub async fn readlink(&self, ino: u64) -> Result<Bytes> {
        let r = self.meta.read("readlink", move |mut c| async move { c.read_link(ReadLinkRequest { ino }).await });
        Ok(r.await?.target)
    }

    /// Removes a name (`dir`: an empty directory). `open` lists the inodes
    /// the caller still has open: one of them losing its last name is kept
    /// as an orphan until the caller releases it.
    pub async fn remove_at(&self, parent: u64, name: &[u8], dir: bool, open: Vec<u64>) -> Result<DirChangeReply> {
        validate_name_bytes(name)?;
        let req =
            UnlinkRequest { cred: self.cred(), parent, name: bytes(name), request_id: request_id(), open, ino: 0 };
        let what = if dir { "rmdir" } else { "unlink" };
        self.meta
            .call(what, |mut c| {
                let r = req.clone();
                async move {
                    if dir {
                        c.rmdir(r).await
                    } else {
                        c.unlink(r).await
                    }
                }
            })
            .await
    }

    /// A rename as the caller built it (flags, open inodes).
    pub async fn rename_request(&self, req: &RenameRequest) -> Result<DirChangeReply> {
        validate_name_bytes(&req.name)?;
        validate_name_bytes(&req.new_name)?;
        self.meta.unary("rename", req, |mut c, r| async move { c.rename(r).await }).await
    }

    /// `rename_request` without waiting for this client's write-behind
    /// changes: for sending a rename written behind (its sender waits for
    /// the changes begun before it).
    pub async fn rename_unordered(&self, req: &RenameRequest) -> Result<DirChangeReply> {
        validate_name_bytes(&req.name)?;
        validate_name_bytes(&req.new_name)?;
        self.meta
            .call_unordered("rename", |mut c| {
                let r = req.clone();
                async move { c.rename(r).await }
            })
            .await
    }

    /// Changes attributes as the request says (mode, owner, size, times).
    pub async fn setattr(&self, req: &SetAttrRequest) -> Result<Attr> {
        let r = self.meta.unary("setattr", req, |mut c, r| async move { c.set_attr(r).await });
        r.await?.attr.ok_or_else(|| ClientError::fs(libc::EIO, "setattr reply without attributes"))
    }

    /// `setattr` without waiting for this client's other write-behind
    /// changes: for sending an attribute change acknowledged before (its
    /// sender orders it after the changes it depends on).
    pub async fn setattr_unordered(&self, req: &SetAttrRequest) -> Result<Attr> {
        let r = self.meta.unary_unordered("setattr", req, |mut c, r| async move { c.set_attr(r).await });
        r.await?.attr.ok_or_else(|| ClientError::fs(libc::EIO, "setattr reply without attributes"))
    }

    pub async fn statfs(&self) -> Result<StatFsReply> {
        self.meta.read("statfs", |mut c| async move { c.stat_fs(Empty {}).await }).await
    }

    pub async fn set_xattr(&self, ino: u64, name: &[u8], value: &[u8], flags: u32) -> Result<()> {
        let req = SetXattrRequest {
            cred: self.cred(),
            ino,
            name: bytes(name),
            value: bytes(value),
            flags,
            request_id: request_id(),
        };
        self.meta.unary("setxattr", &req, |mut c, r| async move { c.set_xattr(r).await }).await?;
        Ok(())
    }

    pub async fn get_xattr(&self, ino: u64, name: &[u8]) -> Result<Bytes> {
        let req = GetXattrRequest { cred: self.cred(), ino, name: bytes(name) };
        let r = self.meta.read_req("getxattr", &req, |mut c, r| async move { c.get_xattr(r).await });
        Ok(r.await?.value)
    }

    pub async fn list_xattr(&self, ino: u64) -> Result<Vec<Bytes>> {
        let req = ListXattrRequest { cred: self.cred(), ino };
        let r = self.meta.read_req("listxattr", &req, |mut c, r| async move { c.list_xattr(r).await });
        Ok(r.await?.names)
    }

    pub async fn remove_xattr(&self, ino: u64, name: &[u8]) -> Result<()> {
        let req = RemoveXattrRequest { cred: self.cred(), ino, name: bytes(name), request_id: request_id() };
        self.meta.unary("removexattr", &req, |mut c, r| async move { c.remove_xattr(r).await }).await?;
        Ok(())
    }
}

/// The calls a mount's write-behind layers make to send what they held.
/// They do not wait for this client's write-behind changes (they are those
/// changes); the layers order them themselves.
impl Fs {
    /// Sends a create the mount acknowledged before sending it.
    pub async fn send_held_create(&self, req: &CreateRequest) -> Result<CreateReply> {
        self.meta.unary_unordered("create", req, |mut c, r| async move { c.create(r).await }).await
    }

    /// Sends a batch of unlinks the mount acknowledged before sending them:
    /// one Raft entry, one outcome per item.
    pub async fn send_held_unlinks(&self, req: &UnlinkManyRequest) -> Result<UnlinkManyReply> {
        self.meta.unary_unordered("unlink_many", req, |mut c, r| async move { c.unlink_many(r).await }).await
    }
}

impl Fs {
    /// Opens this mount's lease stream on the leader (session `session`):
    /// renewals and acknowledgements go on the returned sender, revokes and
    /// renewal answers come on the stream. Each attempt (a retry after an
    /// election) gets a fresh request stream; the one that reached the
    /// leader is returned.
    pub async fn watch(
        &self,
        session: &str,
    ) -> Result<(tokio::sync::mpsc::Sender<WatchRequest>, tonic::Streaming<WatchEvent>)> {
        let slot: std::sync::Arc<parking_lot::Mutex<Option<tokio::sync::mpsc::Sender<WatchRequest>>>> =
            Default::default();
        let events = self
            .meta
            .call_unordered("watch", |mut c| {
                let (tx, rx) = tokio::sync::mpsc::channel(64);
                let _ = tx.try_send(WatchRequest { session: session.to_string(), renew: 0, ack: 0 });
                *slot.lock() = Some(tx);
                async move { c.watch(tokio_stream::wrappers::ReceiverStream::new(rx)).await }
            })
            .await?;
        let tx = slot.lock().take().ok_or_else(|| ClientError::fs(libc::EIO, "watch: no request stream"))?;
        Ok((tx, events))
    }
}
