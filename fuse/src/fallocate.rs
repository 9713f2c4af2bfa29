//! fallocate(2) on an open file. Tessera does not reserve space ahead of a
//! write (chunks are placed when written), so allocating is only a size
//! change; punching a hole or zeroing a range splices a hole into the
//! extent list, so no chunk is written for it.

use crate::fs::Mount;
use tessera_client::{ClientError, Result};

impl Mount {
    pub async fn fallocate(&self, fh: u64, off: u64, len: u64, mode: i32) -> Result<()> {
        let (f, flags) = self.file_of(fh)?;
        if flags & libc::O_ACCMODE == libc::O_RDONLY {
            return Err(ClientError::fs(libc::EBADF, "file not open for writing"));
        }
        let end = off.checked_add(len).ok_or_else(|| ClientError::fs(libc::EFBIG, "range past the largest offset"))?;
        let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let mut d = f.data.lock().await;
        let ino = d.ino;
        let (from, to) = match mode & !libc::FALLOC_FL_KEEP_SIZE {
            // Plain allocation: only a growing file changes.
            0 if keep_size || end <= d.size => return Ok(()),
            0 => (d.size, end),
            libc::FALLOC_FL_PUNCH_HOLE if keep_size => (off, end.min(d.size)),
            libc::FALLOC_FL_ZERO_RANGE if keep_size => (off, end.min(d.size)),
            libc::FALLOC_FL_ZERO_RANGE => (off, end),
            _ => return Err(ClientError::fs(libc::EOPNOTSUPP, "fallocate mode not supported")),
        };
        if from >= to {
            return Ok(());
        }
        let r = d.zero_range(&self.fs, from, to).await.map(Some);
        self.committed(ino, r)
    }
}
