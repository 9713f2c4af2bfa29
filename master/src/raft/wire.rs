//! Encoding of every Raft message between masters: bincode, the same
//! encoding as log entries on disk (store/entry_codec.rs) and state
//! values. On the hot path of every metadata change it costs a fraction of
//! JSON (which spells each byte of a chunk id as decimal text). Streamed
//! appends, unary appends, votes, snapshot headers and all their replies go
//! through `encode`/`decode` here and nowhere else.

use crate::types::TypeConfig;
use openraft::raft::{AppendEntriesRequest, StreamAppendResult};

type C = TypeConfig;

/// What the follower sends back for each streamed request: the append's
/// result, or why its Raft stopped (then the stream ends).
pub type StreamReply = Result<StreamAppendResult<C>, String>;

#[derive(Debug, thiserror::Error)]
#[error("bad raft message: {0}")]
pub struct WireError(#[from] bincode::Error);

pub fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, WireError> {
    Ok(bincode::serialize(v)?)
}

pub fn decode<T: for<'de> serde::Deserialize<'de>>(b: &[u8]) -> Result<T, WireError> {
    Ok(bincode::deserialize(b)?)
}

pub fn encode_request(req: &AppendEntriesRequest<C>) -> Result<Vec<u8>, WireError> {
    Ok(bincode::serialize(req)?)
}

pub fn decode_request(b: &[u8]) -> Result<AppendEntriesRequest<C>, WireError> {
    Ok(bincode::deserialize(b)?)
}

pub fn encode_reply(r: &StreamReply) -> Result<Vec<u8>, WireError> {
    Ok(bincode::serialize(r)?)
}

pub fn decode_reply(b: &[u8]) -> Result<StreamReply, WireError> {
    Ok(bincode::deserialize(b)?)
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
        assert!(b * 2 < j, "bincode {b} bytes, json {j}");
    }
}
