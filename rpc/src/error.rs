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
    /// An address that is not a valid `host:port`.
    #[error("bad address {addr}: {why}")]
    BadAddress { addr: String, why: String },
}

impl RpcError {
    pub fn status(what: &str, status: tonic::Status) -> RpcError {
        RpcError::Status { what: what.to_string(), code: status.code(), status }
    }
}
