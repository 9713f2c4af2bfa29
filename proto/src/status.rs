//! Conventions for errors on the wire. A failed metadata call is a gRPC
//! status whose metadata carries the POSIX errno (`tessera-errno`), so the
//! FUSE layer and the CLI can both report the exact cause. A follower that
//! cannot serve a call answers UNAVAILABLE with the leader's address in
//! `tessera-leader`, so clients redirect without guessing.

use tonic::{Code, Status};

pub const ERRNO_KEY: &str = "tessera-errno";
pub const LEADER_KEY: &str = "tessera-leader";
/// Request header: `stale` lets any master answer a read from its applied state.
pub const READ_MODE_HEADER: &str = "tessera-read";
/// Request header: the cache-lease session of the mount sending the request.
pub const SESSION_HEADER: &str = "tessera-session";

pub fn errno_status(errno: i32, msg: impl Into<String>) -> Status {
    let code = match errno {
        2 => Code::NotFound,       // ENOENT
        17 => Code::AlreadyExists, // EEXIST
        1 | 13 => Code::PermissionDenied,
        28 => Code::ResourceExhausted, // ENOSPC
        5 => Code::Internal,
        _ => Code::FailedPrecondition,
    };
    with_errno(Status::new(code, msg), errno)
}

fn with_errno(mut st: Status, errno: i32) -> Status {
    if let Ok(v) = errno.to_string().parse() {
        st.metadata_mut().insert(ERRNO_KEY, v);
    }
    st
}

pub fn errno_of(st: &Status) -> Option<i32> {
    st.metadata().get(ERRNO_KEY)?.to_str().ok()?.parse().ok()
}

/// A status sent as fields of a streamed reply (code, message, errno; 0
/// for none), rebuilt as the unary call would have returned it.
pub fn to_fields(st: &Status) -> (i32, String, i32) {
    (st.code() as i32, st.message().to_string(), errno_of(st).unwrap_or(0))
}

pub fn from_fields(code: i32, message: &str, errno: i32) -> Status {
    let st = Status::new(Code::from(code), message);
    if errno != 0 {
        with_errno(st, errno)
    } else {
        st
    }
}

pub fn not_leader(leader_addr: Option<&str>) -> Status {
    let mut st = Status::unavailable("not the leader");
    if let Some(addr) = leader_addr {
        if let Ok(v) = addr.parse() {
            st.metadata_mut().insert(LEADER_KEY, v);
        }
    }
    st
}

pub fn leader_of(st: &Status) -> Option<String> {
    Some(st.metadata().get(LEADER_KEY)?.to_str().ok()?.to_string())
}

#[cfg(test)]
mod fields_tests {
    use super::*;

    #[test]
    fn a_status_survives_being_sent_as_fields() {
        let st = errno_status(28, "disk full");
        let (code, msg, errno) = to_fields(&st);
        let back = from_fields(code, &msg, errno);
        assert_eq!((back.code(), back.message(), errno_of(&back)), (Code::ResourceExhausted, "disk full", Some(28)));
        let plain = Status::unavailable("gone");
        let (code, msg, errno) = to_fields(&plain);
        let back = from_fields(code, &msg, errno);
        assert_eq!((back.code(), back.message(), errno_of(&back)), (Code::Unavailable, "gone", None));
    }
}
