use tessera_proto::status::errno_status;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("chunk {0} not found")]
    NotFound(String),
    #[error("chunk {id}: content hashes to {actual}, rejected")]
    HashMismatch { id: String, actual: String },
    #[error("chunk {id}: expected {expected} bytes, received {actual}")]
    LengthMismatch { id: String, expected: u64, actual: u64 },
    #[error("disk full: {free} bytes free, reserve is {reserve} bytes")]
    DiskFull { free: u64, reserve: u64 },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<StoreError> for tonic::Status {
    fn from(e: StoreError) -> Self {
        let errno = match &e {
            StoreError::NotFound(_) => libc::ENOENT,
            StoreError::HashMismatch { .. } | StoreError::LengthMismatch { .. } => libc::EILSEQ,
            StoreError::DiskFull { .. } => libc::ENOSPC,
            StoreError::BadRequest(_) => libc::EINVAL,
            // The disk filling between the free-space check and the write
            // is still "no space", so the client moves on to other servers.
            StoreError::Io(io) if matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => libc::ENOSPC,
            StoreError::Io(_) => libc::EIO,
        };
        errno_status(errno, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_proto::status::errno_of;

    #[test]
    fn a_full_disk_is_no_space_and_other_io_errors_are_eio() {
        let full = StoreError::Io(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(errno_of(&tonic::Status::from(full)), Some(libc::ENOSPC));
        let other = StoreError::Io(std::io::Error::from_raw_os_error(libc::EROFS));
        assert_eq!(errno_of(&tonic::Status::from(other)), Some(libc::EIO));
    }
}
