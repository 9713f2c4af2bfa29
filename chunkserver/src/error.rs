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
            StoreError::Io(_) => libc::EIO,
        };
        errno_status(errno, e.to_string())
    }
}
