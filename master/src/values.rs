//! Plain values carried in commands and kept in the stored model:
//! credentials, times, extents, and the file-system error a command ends in.
//! (Below both `types` and `fsm::model`, importing neither.)

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cred {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Cred {
    pub fn root() -> Cred {
        Cred::default()
    }
}

/// Seconds and nanoseconds since the epoch.
pub type Time = (i64, u32);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum TimeSet {
    Now,
    At(Time),
}

/// A change to a file's extent list: cut at `keep`, grown or cut to the
/// commit's size, then each patch (offset, extents) laid over it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Splice {
    pub keep: u64,
    pub patches: Vec<(u64, Vec<ExtentRec>)>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExtentRec {
    /// Empty for a hole.
    pub id: Vec<u8>,
    /// Byte offset inside the chunk where this extent starts.
    pub offset: u64,
    pub len: u64,
}

/// A file-system error with its errno, as the state machine decided it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct FsErr {
    pub errno: i32,
    pub msg: String,
}

impl FsErr {
    pub fn new(errno: i32, msg: impl Into<String>) -> FsErr {
        FsErr { errno, msg: msg.into() }
    }
}
