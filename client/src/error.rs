use tessera_proto::status::errno_of;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A file-system error the master reported, with its errno.
    #[error("{msg}")]
    Fs { errno: i32, msg: String },
    #[error("no master answered ({addrs}): {last}")]
    NoMaster { addrs: String, last: String },
    #[error("{what}: {code:?}: {msg}")]
    Rpc { what: String, code: tonic::Code, msg: String },
    #[error("chunk {id}: {msg}")]
    Chunk { id: String, msg: String },
    #[error("not enough chunkservers: {0}")]
    Placement(String),
    /// A path refused before any call: `errno` is ENAMETOOLONG for a name
    /// or path over its limit, EINVAL otherwise.
    #[error("invalid path {path:?}: {why}")]
    InvalidPath { path: String, why: String, errno: i32 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// This process has no TLS identity to connect with.
    #[error("{0}")]
    Security(String),
}

impl ClientError {
    pub fn fs(errno: i32, msg: impl Into<String>) -> Self {
        ClientError::Fs { errno, msg: msg.into() }
    }

    pub fn invalid_path(path: &str, why: &str, errno: i32) -> Self {
        ClientError::InvalidPath { path: path.to_string(), why: why.to_string(), errno }
    }

    /// The errno a POSIX caller should see for this error.
    pub fn errno(&self) -> i32 {
        match self {
            ClientError::Fs { errno, .. } => *errno,
            ClientError::InvalidPath { errno, .. } => *errno,
            ClientError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
            // A server refused this process's role for the call.
            ClientError::Rpc { code: tonic::Code::PermissionDenied, .. } => libc::EACCES,
            _ => libc::EIO,
        }
    }

    pub fn from_status(what: &str, st: &tonic::Status) -> Self {
        match errno_of(st) {
            Some(errno) => ClientError::Fs { errno, msg: st.message().to_string() },
            None => ClientError::Rpc { what: what.to_string(), code: st.code(), msg: st.message().to_string() },
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.errno() == libc::ENOENT && matches!(self, ClientError::Fs { .. })
    }
}

impl From<tessera_rpc::RpcError> for ClientError {
    fn from(e: tessera_rpc::RpcError) -> Self {
        use tessera_rpc::RpcError;
        match e {
            RpcError::NoMaster { addrs, last } => ClientError::NoMaster { addrs, last },
            RpcError::Status { what, status, .. } => ClientError::from_status(&what, &status),
            RpcError::Chunk { id, msg } => ClientError::Chunk { id, msg },
            RpcError::BadAddress { addr, why } => ClientError::NoMaster { addrs: addr, last: why },
            RpcError::Security(why) => ClientError::Security(why),
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;
