use tonic::Code;

/// What a call through this layer can end in, short of success.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No master answered (or none led) before the call's total deadline.
    #[error("no master answered ({addrs}): {last}")]
    NoMaster { addrs: String, last: String },
    /// A final answer from a server: a file-system error carrying an errno
    /// (see `tessera_proto::status`) or a status that retrying cannot fix.
    #[error("{what}: {code:?}: {}", status.message())]
    Status { what: String, code: Code, status: tonic::Status },
    /// A chunk transfer that failed short of a server's answer (a timeout,
    /// a broken stream, a replica that did not match its id).
    #[error("chunk {id}: {msg}")]
    Chunk { id: String, msg: String },
    /// An address that is not a valid `host:port`.
    #[error("bad address {addr}: {why}")]
    BadAddress { addr: String, why: String },
    /// This process has no usable TLS identity (and was not told to run
    /// without one).
    #[error("{0}")]
    Security(String),
}

impl RpcError {
    pub fn status(what: &str, status: tonic::Status) -> RpcError {
        RpcError::Status { what: what.to_string(), code: status.code(), status }
    }

    /// The errno a server put in its answer (see `tessera_proto::status`),
    /// else EIO.
    pub fn errno(&self) -> i32 {
        match self {
            RpcError::Status { status, .. } => tessera_proto::status::errno_of(status).unwrap_or(libc::EIO),
            _ => libc::EIO,
        }
    }
}
