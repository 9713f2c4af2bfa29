//! The version of the state machine's on-disk encoding. Every value in the
//! `sm` column family is bincode of a record in model.rs, keyed as `key`
//! lays out; log entries carry their own version byte (store/
//! entry_codec.rs). Rather than a byte on each of millions of values, the
//! whole state carries one format number under `FORMAT_KEY`, inside `sm`
//! itself so that it travels in every snapshot. A binary refuses a state
//! (on disk or in a received snapshot) written in a format newer than it
//! reads, with a message saying so, instead of misreading it. A state
//! without the key was written before it existed, in format 1.
//!
//! When a record's layout changes: bump `STATE_FORMAT`, and have `mark`
//! rewrite the older values (one pass at start, before Raft runs). Format
//! 1 was bincode; format 2 is postcard (`codec`), and a format-1 state is
//! converted once (format_v1.rs), on disk at start or as a snapshot from
//! an older master is installed.

use super::{cf, db_err, CF_SM};
use rocksdb::DB;
use std::io;

/// postcard (`codec`) of the records in model.rs. Format 1 was bincode
/// (fixint, little-endian) of the same records.
pub const STATE_FORMAT: u32 = 2;
/// Under the `m` tag with the counters: no prefix scan visits it.
pub const FORMAT_KEY: &[u8] = super::model::key::FORMAT;

/// The format a stored value names (None: written before formats).
pub fn parse(v: &[u8]) -> io::Result<u32> {
    let b: [u8; 4] =
        v.try_into().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "state format value is not 4 bytes"))?;
    Ok(u32::from_le_bytes(b))
}

/// Refuses a state newer than this binary reads.
pub fn check(found: Option<u32>, whose: &str) -> io::Result<()> {
    match found {
        Some(v) if v > STATE_FORMAT => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{whose} is in state format {v}, written by a newer Tessera; this binary reads formats up to \
                 {STATE_FORMAT}: upgrade this master"
            ),
        )),
        _ => Ok(()),
    }
}

/// At start and after a snapshot install: checks the stored format and
/// writes this binary's where there is none.
pub fn mark(db: &DB) -> io::Result<()> {
    let sm = cf(db, CF_SM)?;
    let found = db.get_cf(sm, FORMAT_KEY).map_err(db_err)?.map(|v| parse(&v)).transpose()?;
    check(found, "the state on disk")?;
    // No key: written before formats existed, in format 1 (or empty).
    if found.unwrap_or(1) == 1 {
        let n = super::format_v1::convert_state(db, STATE_FORMAT)?;
        if n > 0 {
            tracing::info!(values = n, from = 1, to = STATE_FORMAT, "state converted to this binary's format");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_marked_once_and_a_newer_one_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        let db = crate::store::open_db(t.path()).expect("db");
        mark(&db).expect("fresh state");
        let sm = cf(&db, CF_SM).expect("cf");
        assert_eq!(db.get_cf(sm, FORMAT_KEY).expect("get").as_deref(), Some(&STATE_FORMAT.to_le_bytes()[..]));
        mark(&db).expect("same format again");
        db.put_cf(sm, FORMAT_KEY, (STATE_FORMAT + 1).to_le_bytes()).expect("put");
        let e = mark(&db).expect_err("newer format");
        assert!(e.to_string().contains("newer Tessera"), "{e}");
        assert!(parse(b"xy").is_err());
    }
}
