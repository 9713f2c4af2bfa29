use super::*;
use crate::store::open_db;

fn logged(db: &DB) -> Vec<(u64, Vec<u8>)> {
    let logs = cf(db, CF_LOGS).unwrap();
    db.iterator_cf(logs, rocksdb::IteratorMode::Start)
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (u64::from_be_bytes(k[..].try_into().unwrap()), v.to_vec())
        })
        .collect()
}

fn entry(index: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (index as usize * 31 + i) as u8).collect()
}

/// Writes and syncs entries `range`, each `len` bytes; retires what fills.
fn append(j: &LogJournal, db: &DB, range: std::ops::Range<u64>, len: usize) {
    for i in range {
        let e = entry(i, len);
        let w = j.write(&[(i, &e)]).unwrap();
        w.sync().unwrap();
        if let Some(full) = w.full {
            j.retire(full, db).unwrap();
        }
    }
}

fn files(dir: &Path, suffix: &str) -> Vec<u64> {
    numbered(dir, suffix).unwrap().into_iter().map(|(s, _)| s).collect()
}

#[test]
fn synced_appends_replay_into_a_store_that_lost_them() {
    let tmp = tempfile::tempdir().unwrap();
    let jdir = tmp.path().join("j");
    {
        let db = open_db(&tmp.path().join("a")).unwrap();
        let (j, n) = LogJournal::open(&jdir, &db, None).unwrap();
        assert_eq!(n, 0);
        append(&j, &db, 1..21, 300);
    }
    // A store that never got them (as if its unsynced WAL was lost).
    let db = open_db(&tmp.path().join("b")).unwrap();
    let (_j, n) = LogJournal::open(&jdir, &db, Some(5)).unwrap();
    assert_eq!(n, 15, "entries up to the purged index stay gone");
    let got = logged(&db);
    assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), (6..21).collect::<Vec<_>>());
    assert!(got.iter().all(|(i, e)| *e == entry(*i, 300)));
}

#[test]
fn a_torn_or_damaged_last_record_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let jdir = tmp.path().join("j");
    {
        let db = open_db(&tmp.path().join("a")).unwrap();
        let (j, _) = LogJournal::open(&jdir, &db, None).unwrap();
        append(&j, &db, 1..4, 100);
    }
    let (_, seg) = numbered(&jdir, ".log").unwrap().pop().unwrap();
    let mut raw = std::fs::read(&seg).unwrap();
    // The last byte of the third record (zeros follow: the file was
    // preallocated).
    let last = FILE_HEADER as usize + 3 * (HEADER + 100) - 1;
    raw[last] ^= 1;
    std::fs::write(&seg, &raw).unwrap();
    let db = open_db(&tmp.path().join("b")).unwrap();
    LogJournal::open(&jdir, &db, None).unwrap();
    assert_eq!(logged(&db).iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1, 2]);
}

#[test]
fn a_recycled_segment_replays_only_its_own_records() {
    let tmp = tempfile::tempdir().unwrap();
    let jdir = tmp.path().join("j");
    let db = open_db(&tmp.path().join("a")).unwrap();
    let (j, _) = LogJournal::open(&jdir, &db, None).unwrap();
    let len = 64 << 10;
    // Entries a segment takes: it is full once it holds SEGMENT_BYTES.
    let per_segment = (SEGMENT_BYTES - FILE_HEADER).div_ceil((HEADER + len) as u64);
    // Segment 1 fills and becomes the spare; segment 2 fills and segment 3
    // is segment 1's file.
    append(&j, &db, 1..2 * per_segment + 4, len);
    assert_eq!(files(&jdir, ".log"), vec![3]);
    let seg3 = numbered(&jdir, ".log").unwrap().pop().unwrap().1;
    assert!(std::fs::metadata(&seg3).unwrap().len() >= SEGMENT_BYTES, "recycled, not new");
    drop(j);
    // Three records of segment 3, the size of the stale ones behind them.
    let db2 = open_db(&tmp.path().join("b")).unwrap();
    LogJournal::open(&jdir, &db2, None).unwrap();
    let replayed: Vec<u64> = logged(&db2).iter().map(|(i, _)| *i).collect();
    assert_eq!(replayed, (2 * per_segment + 1..2 * per_segment + 4).collect::<Vec<_>>());
}

#[test]
fn after_a_truncation_no_earlier_record_is_replayed() {
    let tmp = tempfile::tempdir().unwrap();
    let jdir = tmp.path().join("j");
    let db = open_db(&tmp.path().join("a")).unwrap();
    let (j, _) = LogJournal::open(&jdir, &db, None).unwrap();
    append(&j, &db, 1..11, 200);
    // The log is cut after 5 (RocksDB synced by the caller), then 6.. come
    // again from another leader, fewer of them.
    j.restart().unwrap();
    append(&j, &db, 6..8, 50);
    assert_eq!(files(&jdir, ".log").len(), 1, "older segments retired");
    drop(j);
    let db2 = open_db(&tmp.path().join("b")).unwrap();
    LogJournal::open(&jdir, &db2, None).unwrap();
    let got = logged(&db2);
    assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![6, 7]);
    assert!(got.iter().all(|(i, e)| *e == entry(*i, 50)));
}

#[test]
fn segment_numbers_grow_past_the_spare() {
    let tmp = tempfile::tempdir().unwrap();
    let jdir = tmp.path().join("j");
    let db = open_db(&tmp.path().join("a")).unwrap();
    for round in 0..3 {
        let (j, _) = LogJournal::open(&jdir, &db, None).unwrap();
        append(&j, &db, round * 10..round * 10 + 3, 10);
        let spare = files(&jdir, ".spare");
        let now = files(&jdir, ".log");
        assert_eq!(now.len(), 1);
        assert!(spare.iter().all(|s| *s < now[0]), "round {round}: spare {spare:?}, segment {now:?}");
    }
}

#[test]
fn a_record_without_the_segment_nonce_is_not_replayed() {
    let tmp = tempfile::tempdir().unwrap();
    let jdir = tmp.path().join("j");
    {
        let db = open_db(&tmp.path().join("a")).unwrap();
        let (j, _) = LogJournal::open(&jdir, &db, None).unwrap();
        append(&j, &db, 1..3, 100);
    }
    // Right after them, a well-formed record (right check) that guesses the
    // nonce: as if client bytes in a recycled file's stale tail formed one.
    let (seq, seg) = numbered(&jdir, ".log").unwrap().pop().unwrap();
    let mut forged = Vec::new();
    record(seq, 3, &entry(3, 100), &mut forged);
    let at = FILE_HEADER + 2 * (HEADER as u64 + 100);
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().write_all_at(&forged, at).unwrap();
    let db = open_db(&tmp.path().join("b")).unwrap();
    LogJournal::open(&jdir, &db, None).unwrap();
    assert_eq!(logged(&db).iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1, 2]);
}

#[test]
fn an_entry_replay_would_skip_is_never_written() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_db(&tmp.path().join("a")).unwrap();
    let (j, _) = LogJournal::open(&tmp.path().join("j"), &db, None).unwrap();
    let big = vec![7u8; MAX_ENTRY + 1];
    let e = j.write(&[(1, &big)]).err().expect("refused");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    append(&j, &db, 1..3, MAX_ENTRY.min(1 << 20));
}

/// Fuzzing of replay: a segment of real records, then flipped, cut,
/// spliced or given a huge length anywhere. Replay may only ever return
/// the records as written, in order, up to the first damaged one: never a
/// panic, never a record nobody wrote.
mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use tessera_util::damage::{apply, damage};

    fn cases() -> u32 {
        let all: u32 = std::env::var("TESSERA_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000);
        (all / 6).max(20)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn replay_returns_a_prefix_of_what_was_written(
            lens in prop::collection::vec(0usize..300, 1..8),
            damages in prop::collection::vec(damage(), 0..3),
            nonce in any::<u64>(),
        ) {
            let written: Vec<(u64, Vec<u8>)> =
                lens.iter().enumerate().map(|(i, &len)| (10 + i as u64, entry(10 + i as u64, len))).collect();
            let mut bytes = file_header(5, nonce).to_vec();
            for (i, e) in &written {
                record(nonce, *i, e, &mut bytes);
            }
            let bytes = apply(bytes, &damages);
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("seg");
            std::fs::write(&path, &bytes).unwrap();
            let got = read_segment(&path, 5).unwrap();
            prop_assert!(got.len() <= written.len());
            prop_assert_eq!(&got[..], &written[..got.len()]);
            if damages.is_empty() {
                prop_assert_eq!(got.len(), written.len());
            }
        }
    }
}
