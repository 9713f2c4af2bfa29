//! Encoding of every Raft message between masters: one version byte, then
//! postcard (`codec`), the encoding of log entries on disk and of state
//! values too. On the hot path of every metadata change it costs a
//! fraction of JSON (which spells each byte of a chunk id as decimal
//! text). Streamed appends, unary appends, votes, snapshot headers and all
//! their replies go through `encode`/`decode` here and nowhere else.
//!
//! A message in another version is refused with a message saying so: a
//! master of an older Tessera (which sent bincode, with no version byte)
//! cannot take part until it is upgraded; the others keep their quorum.

use crate::codec::{self, CodecError};
use crate::types::TypeConfig;
use openraft::raft::{AppendEntriesRequest, StreamAppendResult};

type C = TypeConfig;

/// What the follower sends back for each streamed request: the append's
/// result, or why its Raft stopped (then the stream ends).
pub type StreamReply = Result<StreamAppendResult<C>, String>;

/// The version byte of every message this binary sends.
pub const WIRE_V2_POSTCARD: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("bad raft message: {0}")]
    Codec(#[from] CodecError),
    #[error("raft message in encoding version {0}, this master reads {WIRE_V2_POSTCARD}: a master of another Tessera version sent it")]
    Version(u8),
    #[error("empty raft message")]
    Empty,
}

pub fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(256);
    out.push(WIRE_V2_POSTCARD);
    Ok(codec::append(out, v)?)
}

pub fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, WireError> {
    match b.split_first() {
        Some((&WIRE_V2_POSTCARD, rest)) => Ok(codec::from_slice(rest)?),
        Some((&v, _)) => Err(WireError::Version(v)),
        None => Err(WireError::Empty),
    }
}

pub fn encode_request(req: &AppendEntriesRequest<C>) -> Result<Vec<u8>, WireError> {
    encode(req)
}

pub fn decode_request(b: &[u8]) -> Result<AppendEntriesRequest<C>, WireError> {
    decode(b)
}

pub fn encode_reply(r: &StreamReply) -> Result<Vec<u8>, WireError> {
    encode(r)
}

pub fn decode_reply(b: &[u8]) -> Result<StreamReply, WireError> {
    decode(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Command, Cred, ExtentRec, Op};
    use openraft::alias::{EntryOf, LogIdOf, VoteOf};
    use openraft::entry::RaftEntry;
    use openraft::raft::StreamAppendError;
    use openraft::{BasicNode, Membership};
    use std::collections::{BTreeMap, BTreeSet};

    fn log_id(term: u64, index: u64) -> LogIdOf<C> {
        use openraft::vote::RaftLeaderIdExt;
        openraft::LogId::new(openraft::alias::LeaderIdOf::<C>::new_committed(term, 1), index)
    }

    fn commit_entry(index: u64) -> EntryOf<C> {
        let cmd = Command {
            cred: Cred { uid: 1000, gid: 100, groups: vec![4, 27] },
            now: (1_764_900_000, 123_456_789),
            op: Op::Commit {
                ino: 77,
                extents: vec![ExtentRec { id: (0u8..32).collect(), offset: 0, len: 4096 }],
                size: 4096,
                gc_epoch: 3,
                mtime: None,
                splice: None,
                create: None,
                unsealed: true,
                attrs: None,
            },
            request_id: "abc-1".into(),
        };
        EntryOf::<C>::new_normal(log_id(2, index), cmd)
    }

    fn membership_entry(index: u64) -> EntryOf<C> {
        let nodes: BTreeMap<u64, BasicNode> = (1..=3).map(|i| (i, BasicNode::new(format!("127.0.0.1:{i}")))).collect();
        let m = Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes).expect("membership");
        EntryOf::<C>::new_membership(log_id(2, index), m)
    }

    #[test]
    fn requests_round_trip() {
        let req = AppendEntriesRequest::<C> {
            vote: VoteOf::<C>::new_committed(2, 1),
            prev_log_id: Some(log_id(2, 9)),
            entries: vec![commit_entry(10), membership_entry(11), EntryOf::<C>::new_blank(log_id(2, 12))],
            leader_commit: Some(log_id(2, 9)),
        };
        let back = decode_request(&encode_request(&req).expect("encode")).expect("decode");
        assert_eq!(format!("{req:?}"), format!("{back:?}"));
        // A commit-only request (no entries, nothing before it).
        let empty =
            AppendEntriesRequest::<C> { vote: req.vote, prev_log_id: None, entries: vec![], leader_commit: None };
        let back = decode_request(&encode_request(&empty).expect("encode")).expect("decode");
        assert_eq!(format!("{empty:?}"), format!("{back:?}"));
    }

    #[test]
    fn replies_round_trip() {
        let replies: Vec<StreamReply> = vec![
            Ok(Ok(Some(log_id(3, 5)))),
            Ok(Ok(None)),
            Ok(Err(StreamAppendError::Conflict(log_id(1, 4)))),
            Ok(Err(StreamAppendError::HigherVote(VoteOf::<C>::new(4, 2)))),
            Err("raft stopped".into()),
        ];
        for r in replies {
            let back = decode_reply(&encode_reply(&r).expect("encode")).expect("decode");
            assert_eq!(format!("{r:?}"), format!("{back:?}"));
        }
    }

    #[test]
    fn votes_snapshot_headers_and_their_replies_round_trip() {
        use openraft::alias::{SnapshotMetaOf, StoredMembershipOf};
        use openraft::raft::{SnapshotResponse, VoteRequest, VoteResponse};
        fn trip<T: serde::Serialize + for<'de> serde::Deserialize<'de> + std::fmt::Debug>(v: T) {
            let back: T = decode(&encode(&v).expect("encode")).expect("decode");
            assert_eq!(format!("{v:?}"), format!("{back:?}"));
        }
        trip(VoteRequest::<C>::new(VoteOf::<C>::new(5, 2), Some(log_id(4, 40))));
        trip::<Result<VoteResponse<C>, String>>(Ok(VoteResponse::new(VoteOf::<C>::new(5, 2), None, true)));
        type RaftError = openraft::error::RaftError<C>;
        trip::<Result<VoteResponse<C>, RaftError>>(Err(RaftError::Fatal(openraft::error::Fatal::Stopped)));
        let nodes: BTreeMap<u64, BasicNode> = (1..=3).map(|i| (i, BasicNode::new(format!("127.0.0.1:{i}")))).collect();
        let m = Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes).expect("membership");
        let meta = SnapshotMetaOf::<C> {
            last_log_id: Some(log_id(3, 99)),
            last_membership: StoredMembershipOf::<C>::new(Some(log_id(1, 2)), m),
        };
        trip((VoteOf::<C>::new_committed(3, 1), meta));
        trip::<Result<SnapshotResponse<C>, String>>(Ok(SnapshotResponse::new(VoteOf::<C>::new_committed(3, 1))));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_request(&[1, 2, 3]).is_err());
        assert!(matches!(decode_request(&[WIRE_V2_POSTCARD, 0xff, 0xff]), Err(WireError::Codec(_))));
        // What an older master sends (bincode, no version byte) is refused
        // by name, not misread.
        let old = crate::codec::legacy::to_vec(&commit_entry(3));
        assert!(matches!(decode::<EntryOf<C>>(&old), Err(WireError::Version(_)) | Err(WireError::Codec(_))));
        assert!(decode_reply(&[]).is_err());
    }

    #[test]
    fn smaller_than_json() {
        let req = AppendEntriesRequest::<C> {
            vote: VoteOf::<C>::new_committed(2, 1),
            prev_log_id: Some(log_id(2, 9)),
            entries: vec![commit_entry(10)],
            leader_commit: Some(log_id(2, 9)),
        };
        let b = encode_request(&req).expect("encode").len();
        let j = serde_json::to_vec(&req).expect("json").len();
        assert!(b * 2 < j, "postcard {b} bytes, json {j}");
    }
}
