use super::*;
use crate::store::ChunkStore;

async fn put(store: &ChunkStore, data: &[u8]) -> ChunkId {
    let id = ChunkId::of(data);
    let mut w = store.begin(id, data.len() as u64).await.unwrap();
    w.write(bytes::Bytes::copy_from_slice(data)).await.unwrap();
    w.finish().await.unwrap();
    id
}

fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn segment_files(root: &Path) -> Vec<PathBuf> {
    segments(&root.join("journal")).unwrap().into_iter().map(|(_, p)| p).collect()
}

#[tokio::test]
async fn small_chunks_are_served_from_the_journal_then_from_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ChunkStore::open(dir.path(), 0).unwrap();
    let bytes = data(1, 4096);
    let id = put(&store, &bytes).await;
    assert!(store.has(&id));
    assert!(!store.chunk_path(&id).exists(), "acknowledged through the journal, not yet a file");
    assert_eq!(store.read(&id).await.unwrap(), bytes);
    assert!(store.verify(&id).await.unwrap());
    assert_eq!(store.list().unwrap(), vec![id]);
    assert_eq!((store.count(), store.used()), (1, 4096));
    assert_eq!(store.take_changes().0, vec![id]);

    store.journal().checkpoint().await.unwrap();
    assert_eq!(std::fs::read(store.chunk_path(&id)).unwrap(), bytes);
    assert!(store.journaled(&id).is_none(), "released from memory once a durable file");
    assert_eq!(store.list().unwrap(), vec![id]);
    let segs = segment_files(dir.path());
    assert_eq!(segs.len(), 1, "the checkpointed segment is gone");
    let (seq, _) = segments(&dir.path().join("journal")).unwrap()[0].clone();
    assert!(materialize(dir.path(), &segs[0], seq).unwrap().is_empty(), "the new segment holds no record");
    // Putting it again is a no-op.
    put(&store, &bytes).await;
    assert_eq!(store.count(), 1);
}

#[tokio::test]
async fn acknowledged_records_replay_after_a_crash_and_a_torn_tail_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ChunkStore::open(dir.path(), 0).unwrap();
    let datas: Vec<Vec<u8>> = (0..5).map(|i| data(10 + i, 1000 + i as usize * 3000)).collect();
    let mut ids = Vec::new();
    for d in &datas {
        ids.push(put(&store, d).await);
    }
    // The process dies without a checkpoint ...
    drop(store);
    let (seq, seg) = segments(&dir.path().join("journal")).unwrap().pop().unwrap();
    let mut raw = std::fs::read(&seg).unwrap();
    // ... one whole record was damaged on disk ...
    let second = HEADER + datas[0].len() + HEADER + 10;
    raw[second] ^= 0xff;
    // ... and a sixth put was cut off mid-record.
    let torn = data(99, 5000);
    raw.extend_from_slice(&header(seq, torn.len(), &ChunkId::of(&torn)));
    raw.extend_from_slice(&torn[..1234]);
    std::fs::write(&seg, &raw).unwrap();

    let (store, mut found) = ChunkStore::open(dir.path(), 0).unwrap();
    found.sort();
    let mut want: Vec<ChunkId> = ids.iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, id)| *id).collect();
    want.sort();
    assert_eq!(found, want, "the damaged record is skipped, those after it kept");
    for (i, d) in datas.iter().enumerate().filter(|(i, _)| *i != 1) {
        assert_eq!(&std::fs::read(store.chunk_path(&ids[i])).unwrap(), d);
    }
    assert!(!store.has(&ChunkId::of(&torn)));
    assert_eq!(segment_files(dir.path()).len(), 1, "replayed segments are removed");
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn a_deleted_journaled_chunk_stays_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ChunkStore::open(dir.path(), 0).unwrap();
    let gone = put(&store, &data(3, 777)).await;
    let kept = put(&store, &data(4, 778)).await;
    assert!(store.delete(&gone).await.unwrap());
    assert!(!store.has(&gone));
    drop(store);
    let (store, found) = ChunkStore::open(dir.path(), 0).unwrap();
    assert_eq!(found, vec![kept]);
    assert!(!store.has(&gone));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ChunkStore::open(dir.path(), 0).unwrap();
    let store = Arc::new(store);
    // Checkpoints run alongside the puts, and are stopped by a flag, not by
    // aborting the task: an aborted checkpoint would go on in the blocking
    // pool and race the reopen below.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checkpoints = {
        let (j, stop) = (store.journal().clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                j.checkpoint().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let d = data(100 + i, 512 + (i as usize * 997) % 60_000);
            (put(&s, &d).await, d)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.unwrap());
    }
    assert_eq!(store.count(), 64);
    for (id, d) in &all {
        assert_eq!(&store.read(id).await.unwrap()[..], &d[..]);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    checkpoints.await.unwrap();
    drop(store);
    let (store, found) = ChunkStore::open(dir.path(), 0).unwrap();
    assert_eq!(found.len(), 64);
    for (id, d) in &all {
        assert_eq!(&std::fs::read(store.chunk_path(id)).unwrap(), d);
    }
}

#[tokio::test]
async fn chunks_over_the_limit_are_written_as_files_directly() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ChunkStore::open(dir.path(), 0).unwrap();
    let big = data(5, JOURNAL_MAX + 1);
    let id = put(&store, &big).await;
    assert!(store.journaled(&id).is_none());
    assert_eq!(std::fs::read(store.chunk_path(&id)).unwrap(), big);
}

#[tokio::test]
async fn a_checkpoint_redoes_a_segment_an_earlier_one_failed_on() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ChunkStore::open(dir.path(), 0).unwrap();
    let a = put(&store, &data(6, 3000)).await;
    // A segment older than the current one, left by a failed checkpoint
    // (and by the previous version: records of the first format).
    let b_data = data(7, 2000);
    let b = ChunkId::of(&b_data);
    let mut rec = MAGIC_V1.to_vec();
    rec.extend_from_slice(&(b_data.len() as u32).to_le_bytes());
    rec.extend_from_slice(b.as_bytes());
    rec.extend_from_slice(&b_data);
    std::fs::write(segment_path(&dir.path().join("journal"), 0), rec).unwrap();
    store.journal().checkpoint().await.unwrap();
    assert!(store.chunk_path(&a).exists());
    assert_eq!(std::fs::read(store.chunk_path(&b)).unwrap(), b_data);
    assert_eq!(segment_files(dir.path()).len(), 1, "only the new, empty segment is left");
}

#[tokio::test]
async fn after_a_failed_fsync_puts_bypass_the_segment_until_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ChunkStore::open(dir.path(), 0).unwrap();
    let journaled = put(&store, &data(8, 1000)).await;
    assert!(store.journaled(&journaled).is_some());
    // As if the segment's fdatasync had failed.
    lock(&store.journal().writer).seg.failed.store(true, Ordering::Relaxed);
    let direct = put(&store, &data(9, 1000)).await;
    assert!(store.journaled(&direct).is_none() && store.chunk_path(&direct).exists(), "written as a file");
    // Nothing more is acknowledged through the failed segment.
    assert!(store.journal().append(ChunkId::of(&data(10, 10)), Bytes::from(data(10, 10))).is_err());
    store.journal().checkpoint().await.unwrap();
    assert!(store.chunk_path(&journaled).exists());
    let again = put(&store, &data(11, 1000)).await;
    assert!(store.journaled(&again).is_some(), "a fresh segment takes puts again");
}

fn spares(root: &Path) -> Vec<(u64, PathBuf)> {
    numbered(&root.join("journal"), ".spare").unwrap()
}

#[tokio::test]
async fn a_recycled_segment_replays_only_its_own_records() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ChunkStore::open(dir.path(), 0).unwrap();
    // Segment 1 fills up with three records, is checkpointed and kept.
    let mut old = Vec::new();
    for i in 0..3 {
        old.push(put(&store, &data(20 + i, 3000)).await);
    }
    store.journal().checkpoint().await.unwrap();
    assert_eq!(spares(dir.path()).len(), 1, "the checkpointed segment is the spare");
    // Segment 2 is new; at the next checkpoint segment 3 is segment 1's file.
    put(&store, &data(30, 100)).await;
    store.journal().checkpoint().await.unwrap();
    let (seq, seg) = segments(&dir.path().join("journal")).unwrap().pop().unwrap();
    assert_eq!(seq, 3);
    assert!(std::fs::metadata(&seg).unwrap().len() >= 3 * (HEADER as u64 + 3000), "recycled, not new");
    // GC deletes two of segment 1's chunks; one small put overwrites the
    // start of the recycled file; then the process dies.
    assert!(store.delete(&old[1]).await.unwrap());
    assert!(store.delete(&old[2]).await.unwrap());
    // Same size as the stale records: the next header read is a stale one.
    let fresh = put(&store, &data(40, 3000)).await;
    assert_eq!(segments(&dir.path().join("journal")).unwrap().pop().unwrap().0, 3, "no checkpoint since");
    drop(store);
    let (store, found) = ChunkStore::open(dir.path(), 0).unwrap();
    assert!(found.contains(&fresh));
    assert_eq!(std::fs::read(store.chunk_path(&fresh)).unwrap(), data(40, 3000));
    assert!(!store.has(&old[1]) && !store.has(&old[2]), "stale records of the file's earlier use stay dead");
    assert!(store.has(&old[0]));
    // Numbers keep growing past the spare's.
    let spare = spares(dir.path()).last().map_or(0, |(s, _)| *s);
    let (now, _) = segments(&dir.path().join("journal")).unwrap().pop().unwrap();
    assert!(now > spare.max(3), "segment {now} after spare {spare}");
}

#[tokio::test]
async fn a_segment_whose_fsync_failed_is_not_recycled() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ChunkStore::open(dir.path(), 0).unwrap();
    put(&store, &data(50, 1000)).await;
    lock(&store.journal().writer).seg.failed.store(true, Ordering::Relaxed);
    store.journal().checkpoint().await.unwrap();
    assert!(spares(dir.path()).is_empty());
}

/// Fuzzing of replay: a segment of real records, then flipped, cut,
/// spliced or given a huge length anywhere. Replay may only ever make
/// chunk files of records as written (each file's bytes hash to its name),
/// never panic, and never allocate past one record's limit.
mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use tessera_util::damage::{apply, damage};

    fn cases() -> u32 {
        let all: u32 = std::env::var("TESSERA_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000);
        (all / 10).max(20)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn replay_makes_only_chunks_that_were_written(
            lens in prop::collection::vec(0usize..2000, 1..6),
            damages in prop::collection::vec(damage(), 0..3),
        ) {
            let seq = 3;
            let chunks: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, &n)| data(i as u64 + 1, n)).collect();
            let mut bytes = Vec::new();
            for c in &chunks {
                bytes.extend_from_slice(&header(seq, c.len(), &ChunkId::of(c)));
                bytes.extend_from_slice(c);
            }
            let bytes = apply(bytes, &damages);
            let root = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(root.path().join("tmp")).unwrap();
            for c in &chunks {
                let p = chunk_path(root.path(), &ChunkId::of(c));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            }
            let seg = root.path().join("seg");
            std::fs::write(&seg, &bytes).unwrap();
            // A record that damage made point elsewhere fails to be written
            // (no such directory) or is refused: an error, not a panic.
            let made = match materialize(root.path(), &seg, seq) {
                Ok(m) => m,
                Err(_) => return Ok(()),
            };
            let written: Vec<ChunkId> = chunks.iter().map(|c| ChunkId::of(c)).collect();
            for id in &made {
                prop_assert!(written.contains(id), "replay made a chunk nobody wrote: {}", id);
                let on_disk = std::fs::read(chunk_path(root.path(), id)).unwrap();
                prop_assert_eq!(ChunkId::of(&on_disk), *id);
            }
            if damages.is_empty() {
                let mut unique = written.clone();
                unique.sort();
                unique.dedup();
                prop_assert_eq!(made.len(), unique.len());
            }
        }
    }
}
