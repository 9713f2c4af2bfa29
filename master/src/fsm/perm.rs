//! POSIX permission checks, made inside the state machine with the caller's
//! credentials so that check and change are one atomic step.

use super::model::Inode;
use crate::values::{Cred, FsErr};

pub const R: u32 = 4;
pub const W: u32 = 2;
pub const X: u32 = 1;
pub const S_ISUID: u32 = 0o4000;
pub const S_ISGID: u32 = 0o2000;
pub const S_ISVTX: u32 = 0o1000;

pub fn in_group(c: &Cred, gid: u32) -> bool {
    c.gid == gid || c.groups.contains(&gid)
}

pub fn allowed(i: &Inode, c: &Cred, mask: u32) -> bool {
    if c.uid == 0 {
        // Root may do anything except execute a file that nobody may execute.
        return mask & X == 0 || i.is_dir() || i.mode & 0o111 != 0;
    }
    let bits = if c.uid == i.uid {
        (i.mode >> 6) & 7
    } else if in_group(c, i.gid) {
        (i.mode >> 3) & 7
    } else {
        i.mode & 7
    };
    bits & mask == mask
}

pub fn check(i: &Inode, c: &Cred, mask: u32, what: &str) -> Result<(), FsErr> {
    if allowed(i, c, mask) {
        Ok(())
    } else {
        Err(FsErr::new(libc::EACCES, format!("permission denied: {what}")))
    }
}

/// In a sticky directory only the owner of the entry, the owner of the
/// directory or root may remove or rename the entry.
pub fn check_sticky(dir: &Inode, victim: &Inode, c: &Cred) -> Result<(), FsErr> {
    if dir.mode & S_ISVTX != 0 && c.uid != 0 && c.uid != dir.uid && c.uid != victim.uid {
        return Err(FsErr::new(libc::EPERM, "operation not permitted: sticky directory"));
    }
    Ok(())
}

pub fn is_owner_or_root(i: &Inode, c: &Cred) -> bool {
    c.uid == 0 || c.uid == i.uid
}
