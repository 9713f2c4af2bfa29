//! The master's one error type. Each variant says what went wrong and
//! carries what the caller needs to act on it as data: the errno of a
//! file-system refusal, the leader's address when this master is not it.
//! It becomes a gRPC status only at the service boundary (`From` below),
//! where the errno rides in the status details (tessera_proto::status).

use crate::fsm::fail::Fail;
use crate::values::FsErr;
use tessera_proto::status::{errno_status, not_leader};
use tonic::Status;

pub type Result<T, E = MasterError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// A file-system refusal: what the state machine or a check decided.
    #[error(transparent)]
    Fs(#[from] FsErr),
    /// This master cannot serve the request; the leader can (its address
    /// when known, for the client to go there).
    #[error("not the leader")]
    NotLeader { leader: Option<String> },
    /// No quorum in time, or Raft is stopping: a retry elsewhere or later
    /// may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// The local store failed (RocksDB, the journal, a snapshot file).
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    /// A membership or configuration change that cannot be made as asked.
    #[error("{0}")]
    Refused(String),
    /// A setting or a data directory that does not allow starting.
    #[error("{0}")]
    Config(String),
    /// Raft itself failed (start-up, a fatal storage error).
    #[error("raft: {0}")]
    Raft(String),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A reply that breaks the state machine's contract (a bug).
    #[error("internal: {0}")]
    Internal(String),
}

impl MasterError {
    pub fn fs(errno: i32, msg: impl Into<String>) -> MasterError {
        MasterError::Fs(FsErr::new(errno, msg))
    }

    pub fn internal(msg: impl Into<String>) -> MasterError {
        MasterError::Internal(msg.into())
    }

    /// The errno a file-system caller sees for this error.
    pub fn errno(&self) -> i32 {
        match self {
            MasterError::Fs(e) => e.errno,
            MasterError::NotLeader { .. } | MasterError::Unavailable(_) | MasterError::Transport(_) => libc::EAGAIN,
            MasterError::Refused(_) | MasterError::Config(_) => libc::EINVAL,
            MasterError::Storage(_) | MasterError::Db(_) | MasterError::Raft(_) | MasterError::Internal(_) => libc::EIO,
        }
    }
}

impl From<Fail> for MasterError {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Fs(e) => MasterError::Fs(e),
            Fail::Io(e) => MasterError::Storage(e),
        }
    }
}

impl From<MasterError> for Status {
    fn from(e: MasterError) -> Status {
        match e {
            MasterError::Fs(e) => errno_status(e.errno, e.msg),
            MasterError::NotLeader { leader } => not_leader(leader.as_deref()),
            MasterError::Unavailable(m) => Status::unavailable(m),
            MasterError::Refused(m) => Status::failed_precondition(m),
            MasterError::Config(m) => Status::invalid_argument(m),
            e @ (MasterError::Storage(_)
            | MasterError::Db(_)
            | MasterError::Raft(_)
            | MasterError::Transport(_)
            | MasterError::Internal(_)) => Status::internal(e.to_string()),
        }
    }
}

/// A state-machine refusal straight to the wire (its errno as data).
impl From<FsErr> for Status {
    fn from(e: FsErr) -> Status {
        errno_status(e.errno, e.msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_and_leader_survive_the_trip_to_a_status() {
        let st = Status::from(MasterError::fs(libc::ENOTEMPTY, "directory not empty"));
        assert_eq!(tessera_proto::status::errno_of(&st), Some(libc::ENOTEMPTY));
        let st = Status::from(MasterError::NotLeader { leader: Some("127.0.0.1:7000".into()) });
        assert_eq!(st.code(), tonic::Code::Unavailable);
        assert_eq!(tessera_proto::status::leader_of(&st).as_deref(), Some("127.0.0.1:7000"));
        let st = Status::from(MasterError::Storage(std::io::Error::other("disk gone")));
        assert_eq!(st.code(), tonic::Code::Internal);
        assert_eq!(MasterError::Unavailable("no quorum".into()).errno(), libc::EAGAIN);
    }
}
