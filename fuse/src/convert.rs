//! Conversions between FUSE's types and Tessera's, and small reply helpers.

use fuser::{Errno, ReplyXattr, TimeOrNow};
use tessera_client::ClientError;
use tessera_proto::pb::{self, FileKind};

pub fn errno(e: &ClientError) -> Errno {
    let n = e.errno();
    if n == libc::EIO {
        tracing::warn!(error = %e, "I/O error");
    }
    Errno::from_i32(n)
}

pub fn ts(t: TimeOrNow) -> (Option<pb::Timespec>, bool) {
    match t {
        TimeOrNow::Now => (None, true),
        TimeOrNow::SpecificTime(st) => (Some(tessera_proto::time::from_system_time(st)), false),
    }
}

pub fn kind_of_mode(mode: u32) -> FileKind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileKind::Directory,
        libc::S_IFLNK => FileKind::Symlink,
        libc::S_IFIFO => FileKind::Fifo,
        libc::S_IFSOCK => FileKind::Socket,
        libc::S_IFCHR => FileKind::CharDevice,
        libc::S_IFBLK => FileKind::BlockDevice,
        _ => FileKind::Regular,
    }
}

pub fn xattr_reply(reply: ReplyXattr, v: &[u8], size: u32) {
    if size == 0 {
        reply.size(v.len() as u32);
    } else if v.len() > size as usize {
        reply.error(Errno::from_i32(libc::ERANGE));
    } else {
        reply.data(v);
    }
}

/// POSIX access check for access(2); the kernel checks open/exec itself.
pub fn permitted(a: &pb::Attr, c: &pb::Cred, mask: i32) -> bool {
    let mask = (mask & 7) as u32;
    if c.uid == 0 {
        return mask & 1 == 0 || a.kind == FileKind::Directory as i32 || a.mode & 0o111 != 0;
    }
    let bits = if c.uid == a.uid {
        (a.mode >> 6) & 7
    } else if c.gid == a.gid || c.groups.contains(&a.gid) {
        (a.mode >> 3) & 7
    } else {
        a.mode & 7
    };
    bits & mask == mask
}
