//! Fuzzing, as proptests that run in CI, of every decoder in the master
//! that takes bytes from outside the process: Raft messages from a peer
//! (appends, votes, snapshot headers, streamed replies) and log entries
//! read back from RocksDB or the journal at replay (postcard, and the
//! bincode of older masters), state values as the state machine reads them
//! and as the one-time format conversion rewrites them (a snapshot's
//! values come from a peer). Each gets arbitrary
//! bytes and mutations (flips, cuts, splices) of real encodings; none may
//! panic, abort or allocate without bound. `TESSERA_FUZZ_CASES` raises the
//! case count for a long run (bench/fuzz.sh).

use crate::raft::wire;
use crate::store::entry_codec;
use crate::types::{Command, Cred, ExtentRec, Op, TypeConfig};
use openraft::alias::{EntryOf, LogIdOf, SnapshotMetaOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::vote::RaftLeaderIdExt;
use proptest::prelude::*;
use tessera_util::damage::{apply, damage};

type C = TypeConfig;

fn cases() -> u32 {
    std::env::var("TESSERA_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000)
}

fn log_id(term: u64, index: u64) -> LogIdOf<C> {
    openraft::LogId::new(openraft::alias::LeaderIdOf::<C>::new_committed(term, 1), index)
}

fn entry(index: u64) -> EntryOf<C> {
    let cmd = Command {
        cred: Cred { uid: 1000, gid: 100, groups: vec![4, 5] },
        now: (1_700_000_000, 5),
        request_id: "r".into(),
        op: Op::Commit {
            ino: 7,
            extents: vec![ExtentRec { id: vec![9; 32], len: 4096, offset: 0 }],
            size: 4096,
            gc_epoch: 3,
            mtime: Some((1, 2)),
            splice: None,
            create: None,
            unsealed: false,
            attrs: None,
        },
    };
    EntryOf::<C>::new_normal(log_id(2, index), cmd)
}

/// Real encodings the mutations start from.
fn seeds() -> Vec<Vec<u8>> {
    let append = AppendEntriesRequest::<C> {
        vote: VoteOf::<C>::new_committed(2, 1),
        prev_log_id: Some(log_id(2, 9)),
        entries: vec![entry(10), entry(11)],
        leader_commit: Some(log_id(2, 9)),
    };
    let vote =
        VoteRequest::<C> { vote: VoteOf::<C>::new(3, 2), last_log_id: Some(log_id(2, 11)), leadership_transfer: false };
    let meta = SnapshotMetaOf::<C> { last_log_id: Some(log_id(2, 11)), last_membership: Default::default() };
    vec![
        wire::encode_request(&append).unwrap(),
        wire::encode(&vote).unwrap(),
        wire::encode(&(VoteOf::<C>::new_committed(2, 1), meta)).unwrap(),
        entry_codec::encode(&entry(12)).unwrap(),
        legacy_entry(13),
        crate::fsm::model::encode(&inode()),
        crate::codec::legacy::to_vec(&inode()),
    ]
}

/// A log entry as a master before postcard wrote it.
fn legacy_entry(index: u64) -> Vec<u8> {
    let mut v = vec![1];
    v.extend(crate::codec::legacy::to_vec(&entry(index)));
    v
}

fn inode() -> crate::fsm::model::Inode {
    crate::fsm::model::Inode {
        ino: 5,
        kind: 1,
        mode: 0o644,
        uid: 1000,
        gid: 100,
        size: 1 << 40,
        atime: (1, 2),
        mtime: (3, 4),
        ctime: (5, 6),
        nlink: 1,
        rdev: 0,
        parent: 1,
        target: b"t".to_vec(),
        version: 9,
        xattrs: 0,
    }
}

/// Runs every decoder on `b`; a result of either kind is fine.
fn decode_all(b: &[u8]) {
    let _ = wire::decode_request(b);
    let _ = wire::decode_reply(b);
    let _ = wire::decode::<VoteRequest<C>>(b);
    let _ = wire::decode::<(VoteOf<C>, SnapshotMetaOf<C>)>(b);
    let _ = entry_codec::decode(b);
    // Behind each log entry version byte, so both paths are reached.
    for version in [1u8, 2] {
        let mut v = Vec::with_capacity(b.len() + 1);
        v.push(version);
        v.extend_from_slice(b);
        let _ = entry_codec::decode(&v);
    }
    use crate::fsm::model::{decode, key, Extents, Inode};
    let _ = decode::<Inode>(b);
    let _ = decode::<Extents>(b);
    let _ = decode::<crate::types::CommandResult>(b);
    let _ = decode::<crate::fsm::locks::SessionRec>(b);
    for k in [&[key::INODE][..], &[key::EXTENTS], &[key::REQUEST], &[key::LOCK], &[key::SESSION], key::COUNTERS] {
        let _ = crate::fsm::format_v1::convert(k, b);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&b);
    }

    #[test]
    fn mutated_real_messages_never_panic_a_decoder(
        seed in 0usize..7,
        muts in proptest::collection::vec(damage(), 1..4),
    ) {
        let b = apply(seeds()[seed].clone(), &muts);
        decode_all(&b);
    }
}

#[test]
fn the_seeds_decode_unmutated() {
    let s = seeds();
    assert!(wire::decode_request(&s[0]).is_ok());
    assert!(wire::decode::<VoteRequest<C>>(&s[1]).is_ok());
    assert!(wire::decode::<(VoteOf<C>, SnapshotMetaOf<C>)>(&s[2]).is_ok());
    assert!(entry_codec::decode(&s[3]).is_ok());
    assert!(entry_codec::decode(&s[4]).is_ok());
    assert_eq!(crate::fsm::model::decode::<crate::fsm::model::Inode>(&s[5]).unwrap(), inode());
    let converted = crate::fsm::format_v1::convert(&[crate::fsm::model::key::INODE], &s[6]).unwrap().unwrap();
    assert_eq!(converted, s[5], "a bincode inode converts to what postcard writes");
}
