//! How applying a command fails: a file-system error is the command's
//! answer (replicated like any result); a store error aborts the apply.

use crate::values::FsErr;
use std::io;

pub(crate) enum Fail {
    Fs(FsErr),
    Io(io::Error),
}
impl From<FsErr> for Fail {
    fn from(e: FsErr) -> Self {
        Fail::Fs(e)
    }
}
impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail::Io(e)
    }
}

pub(crate) fn err(errno: i32, msg: impl Into<String>) -> Fail {
    Fail::Fs(FsErr::new(errno, msg))
}
