//! How a Raft log entry is stored (in RocksDB and in the journal): one
//! version byte, then the entry. Version 2 is postcard (`codec`): compact
//! (a name is its bytes, not an array of numbers as in JSON) and fast.
//! Version 1 (bincode, which wrote entries until 2026-12) and entries
//! written before versions existed (JSON objects: they start with `{`) are
//! still read. A change to `Command` that postcard cannot read back (it is
//! positional: a new field is not "missing, so default") gets a new version.

use crate::codec;
use crate::types::TypeConfig;
use openraft::alias::EntryOf;
use std::io;

type Entry = EntryOf<TypeConfig>;

const V1_BINCODE: u8 = 1;
const V2_POSTCARD: u8 = 2;
const LEGACY_JSON: u8 = b'{';

pub fn encode(e: &Entry) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    out.push(V2_POSTCARD);
    Ok(codec::append(out, e)?)
}

pub fn decode(b: &[u8]) -> io::Result<Entry> {
    let bad = |e: String| io::Error::new(io::ErrorKind::InvalidData, format!("raft log entry: {e}"));
    match b.first() {
        Some(&V2_POSTCARD) => codec::from_slice(&b[1..]).map_err(|e| bad(e.to_string())),
        Some(&V1_BINCODE) => codec::legacy::from_slice(&b[1..]).map_err(|e| bad(e.to_string())),
        Some(&LEGACY_JSON) => serde_json::from_slice(b).map_err(|e| bad(e.to_string())),
        Some(v) => Err(bad(format!("unknown encoding version {v}"))),
        None => Err(bad("empty".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Command, Cred, Op};
    use openraft::entry::RaftEntry;
    use openraft::vote::RaftLeaderIdExt;

    fn entry(name: &[u8]) -> Entry {
        let log_id = openraft::LogId::new(openraft::alias::LeaderIdOf::<TypeConfig>::new_committed(3, 1), 42);
        let cmd = Command {
            cred: Cred { uid: 1000, gid: 100, groups: vec![4, 5] },
            now: (1_700_000_000, 5),
            request_id: "r".into(),
            op: Op::Mkdir { parent: 1, name: name.to_vec(), mode: 0o755 },
        };
        Entry::new_normal(log_id, cmd)
    }

    #[test]
    fn round_trips_and_is_smaller_than_json() {
        let e = entry(b"a-directory-name-\xff");
        let b = encode(&e).unwrap();
        assert_eq!(b[0], V2_POSTCARD);
        assert_eq!(format!("{:?}", decode(&b).unwrap()), format!("{e:?}"));
        let json = serde_json::to_vec(&e).unwrap();
        assert!(b.len() * 2 < json.len(), "{} bytes vs {} as JSON", b.len(), json.len());
    }

    #[test]
    fn reads_entries_written_as_json_and_refuses_unknown_versions() {
        let e = entry(b"old");
        let json = serde_json::to_vec(&e).unwrap();
        assert_eq!(format!("{:?}", decode(&json).unwrap()), format!("{e:?}"));
        assert!(decode(&[9, 1, 2]).is_err());
        assert!(decode(&[]).is_err());
        assert!(decode(&[V1_BINCODE, 1]).is_err(), "a torn entry is an error, not garbage");
        assert!(decode(&[V2_POSTCARD, 1]).is_err(), "a torn entry is an error, not garbage");
    }

    #[test]
    fn reads_entries_bincode_wrote() {
        let e = entry(b"written-by-an-older-master");
        let mut old = vec![V1_BINCODE];
        old.extend(crate::codec::legacy::to_vec(&e));
        assert_eq!(format!("{:?}", decode(&old).unwrap()), format!("{e:?}"));
        assert!(encode(&e).unwrap().len() < old.len());
    }
}
