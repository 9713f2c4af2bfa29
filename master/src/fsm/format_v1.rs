//! The one-time conversion of a state in format 1 (every value bincode, as
//! masters wrote until 2026-12) to format 2 (postcard, `codec`). Each value
//! is read as the record its key's table holds and written again; the new
//! values and the new format number go in one RocksDB write batch, so a
//! crash leaves the state wholly in one format or the other, and the next
//! start converts again. A key of a table this binary does not know stops
//! the conversion (and the master) rather than guessing.

use super::locks::SessionRec;
use super::model::key::FORMAT as FORMAT_KEY;
use super::model::{key, ChunkRefs, ChunkServerRec, CollectRec, Counters, Dentry, Extents, Held, Inode};
use super::unsealed::UnsealedRec;
use super::{cf, db_err, CF_SM};
use crate::codec::{self, CodecError};
use crate::types::CommandResult;
use crate::values::Time;
use rocksdb::{IteratorMode, WriteBatch, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io;

fn again<T: DeserializeOwned + Serialize>(v: &[u8]) -> Result<Vec<u8>, CodecError> {
    let rec: T = codec::legacy::from_slice(v)?;
    codec::to_vec(&rec)
}

/// `v` (format 1) re-encoded in format 2; None for a value that is not a
/// record (an xattr's bytes, the format number itself).
pub(crate) fn convert(k: &[u8], v: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let r = match k {
        FORMAT_KEY => return Ok(None),
        key::COUNTERS => again::<Counters>(v),
        key::COLLECT_FLOOR => again::<u64>(v),
        key::TOKEN_KEYS => again::<Vec<super::model::TokenKeyRec>>(v),
        [t, ..] => match *t {
            key::INODE => again::<Inode>(v),
            key::DENTRY => again::<Dentry>(v),
            key::EXTENTS => again::<Extents>(v),
            key::XATTR => return Ok(None),
            key::CHUNK => again::<ChunkRefs>(v),
            key::SERVER => again::<ChunkServerRec>(v),
            key::GARBAGE | key::ORPHAN => again::<Time>(v),
            key::COLLECT => again::<CollectRec>(v),
            key::REQUEST => again::<CommandResult>(v),
            key::REQUEST_ORDER => again::<String>(v),
            key::UNSEALED => again::<UnsealedRec>(v),
            key::UNSEALED_PATCH => again::<super::unsealed::UnsealedPatchRec>(v),
            key::LOCK | key::FLOCK => again::<Vec<Held>>(v),
            key::SESSION => again::<SessionRec>(v),
            key::LOCK_DELEGATION => again::<String>(v),
            key::REVOKED => again::<super::model::RevokedRec>(v),
            _ => {
                return Err(bad(format!(
                    "state key {:?} of an unknown table: not converting",
                    String::from_utf8_lossy(k)
                )))
            }
        },
        [] => return Err(bad("an empty state key".into())),
    };
    r.map(Some).map_err(|e| bad(format!("state value under {:?}: {e}", String::from_utf8_lossy(k))))
}

/// Converts every value of the state and names format 2; returns how many
/// values it rewrote.
pub fn convert_state(db: &DB, new_format: u32) -> io::Result<usize> {
    let sm = cf(db, CF_SM)?;
    let mut batch = WriteBatch::default();
    let mut n = 0;
    for item in db.iterator_cf(sm, IteratorMode::Start) {
        let (k, v) = item.map_err(db_err)?;
        if let Some(nv) = convert(&k, &v)? {
            batch.put_cf(sm, &k, nv);
            n += 1;
        }
    }
    batch.put_cf(sm, FORMAT_KEY, new_format.to_le_bytes());
    let mut o = rocksdb::WriteOptions::default();
    o.set_sync(true);
    db.write_opt(batch, &o).map_err(db_err)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::model::{decode, ServerState};
    use crate::types::{FsErr, Reply};
    use crate::values::ExtentRec;

    fn inode() -> Inode {
        Inode {
            ino: 7,
            kind: 1,
            mode: 0o4755,
            uid: 1000,
            gid: 100,
            size: 5 << 30,
            atime: (-1, 999_999_999),
            mtime: (1_700_000_000, 0),
            ctime: (1_700_000_001, 5),
            nlink: 2,
            rdev: 0,
            parent: 1,
            target: Vec::new(),
            version: 3,
            xattrs: 1,
        }
    }

    #[test]
    fn a_format_1_state_reads_the_same_after_its_conversion() {
        let t = tempfile::tempdir().expect("tempdir");
        let db = crate::store::open_db(t.path()).expect("db");
        let sm = cf(&db, CF_SM).expect("cf");
        let old = |k: Vec<u8>, v: Vec<u8>| db.put_cf(sm, k, v).expect("put");
        let extents: Extents = vec![ExtentRec { id: vec![3; 32], offset: 4096, len: 1 << 20 }];
        let held = vec![Held { owner: "s:o".into(), pid: 4, start: 0, end: u64::MAX, write: true }];
        let server = ChunkServerRec {
            id: "cs-1".into(),
            addr: "127.0.0.1:1".into(),
            capacity: 1 << 40,
            zone: "z".into(),
            state: ServerState::Alive,
        };
        let results: Vec<CommandResult> =
            vec![Ok(Reply::Attr(inode())), Err(FsErr { errno: 2, msg: "gone".into() }), Ok(Reply::None)];
        old(key::ino(key::INODE, 7), codec::legacy::to_vec(&inode()));
        old(key::ino_name(key::DENTRY, 1, b"f\xff"), codec::legacy::to_vec(&Dentry { ino: 7, kind: 1 }));
        old(key::ino(key::EXTENTS, 7), codec::legacy::to_vec(&extents));
        old(key::ino_name(key::XATTR, 7, b"user.k"), b"raw bytes".to_vec());
        old(key::bytes(key::CHUNK, &[3; 32]), codec::legacy::to_vec(&ChunkRefs { refs: 2, len: 1 << 20 }));
        old(key::bytes(key::SERVER, b"cs-1"), codec::legacy::to_vec(&server));
        old(key::bytes(key::GARBAGE, &[4; 32]), codec::legacy::to_vec(&(5i64, 6u32)));
        old(key::bytes(key::COLLECT, &[4; 32]), codec::legacy::to_vec(&CollectRec { started: 8, done: Some(9) }));
        for (i, r) in results.iter().enumerate() {
            old(key::bytes(key::REQUEST, format!("rid{i}").as_bytes()), codec::legacy::to_vec(r));
        }
        old(key::ino(key::REQUEST_ORDER, 10), codec::legacy::to_vec(&"rid0".to_string()));
        old(key::ino(key::ORPHAN, 7), codec::legacy::to_vec(&(1i64, 2u32)));
        old(key::ino(key::UNSEALED, 7), codec::legacy::to_vec(&UnsealedRec { version: 3, at: (4, 5) }));
        old(key::ino(key::LOCK, 7), codec::legacy::to_vec(&held));
        old(key::ino(key::FLOCK, 7), codec::legacy::to_vec(&held));
        old(key::bytes(key::SESSION, b"s"), codec::legacy::to_vec(&SessionRec { expires: (9, 9), inos: vec![7] }));
        old(
            key::COUNTERS.to_vec(),
            codec::legacy::to_vec(&Counters { next_ino: 8, inodes: 2, chunks: 1, chunk_bytes: 1 << 20 }),
        );
        old(key::COLLECT_FLOOR.to_vec(), codec::legacy::to_vec(&11u64));

        super::super::format::mark(&db).expect("conversion");
        let get = |k: &[u8]| db.get_cf(sm, k).expect("get").expect("value");
        assert_eq!(get(FORMAT_KEY), super::super::format::STATE_FORMAT.to_le_bytes());
        assert_eq!(decode::<Inode>(&get(&key::ino(key::INODE, 7))).unwrap(), inode());
        assert_eq!(decode::<Extents>(&get(&key::ino(key::EXTENTS, 7))).unwrap(), extents);
        assert_eq!(get(&key::ino_name(key::XATTR, 7, b"user.k")), b"raw bytes", "xattr values are not records");
        assert_eq!(decode::<ChunkServerRec>(&get(&key::bytes(key::SERVER, b"cs-1"))).unwrap(), server);
        for (i, r) in results.iter().enumerate() {
            let back: CommandResult = decode(&get(&key::bytes(key::REQUEST, format!("rid{i}").as_bytes()))).unwrap();
            assert_eq!(format!("{back:?}"), format!("{r:?}"));
        }
        assert_eq!(decode::<Vec<Held>>(&get(&key::ino(key::FLOCK, 7))).unwrap(), held);
        assert_eq!(decode::<u64>(&get(key::COLLECT_FLOOR)).unwrap(), 11);
        assert_eq!(decode::<Counters>(&get(key::COUNTERS)).unwrap().next_ino, 8);
        // Converted once: a second start leaves it alone.
        let before = get(&key::ino(key::INODE, 7));
        super::super::format::mark(&db).expect("second start");
        assert_eq!(get(&key::ino(key::INODE, 7)), before);
    }

    #[test]
    fn a_key_of_an_unknown_table_stops_the_conversion() {
        let t = tempfile::tempdir().expect("tempdir");
        let db = crate::store::open_db(t.path()).expect("db");
        let sm = cf(&db, CF_SM).expect("cf");
        db.put_cf(sm, b"Zmystery", b"x").expect("put");
        let e = super::super::format::mark(&db).expect_err("unknown table");
        assert!(e.to_string().contains("unknown table"), "{e}");
        assert!(db.get_cf(sm, FORMAT_KEY).expect("get").is_none(), "nothing half-converted");
    }
}
