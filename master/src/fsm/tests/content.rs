//! File content: commits, splices, truncation, holes and the chunk
//! reference counts and GC epochs they move.

use super::*;

#[test]
fn exclusive_create_and_truncate() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    ns.run(&ROOT, commit(f, vec![ExtentRec { id: chunk(1), offset: 0, len: 100 }], 100)).unwrap();
    let excl =
        Op::Create { parent: 1, name: "f".into(), mode: 0o644, kind: 1, rdev: 0, exclusive: true, truncate: false };
    assert_eq!(ns.errno(&ROOT, excl), libc::EEXIST);
    let trunc =
        Op::Create { parent: 1, name: "f".into(), mode: 0o644, kind: 1, rdev: 0, exclusive: false, truncate: true };
    ns.run(&ROOT, trunc).unwrap();
    assert_eq!(ns.inode(f).size, 0);
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 0);
}

#[test]
fn a_commit_moves_only_the_counts_that_change() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    let g = ns.create(&ROOT, 1, "g");
    let e = |n: u8, offset: u64| ExtentRec { id: chunk(n), offset, len: 10 };
    let commit = |ino, extents: Vec<ExtentRec>| {
        let size = extents.iter().map(|e| e.len).sum();
        commit(ino, extents, size)
    };
    // f: three pieces of chunk 1 around two small chunks; g shares chunk 1.
    ns.run(&ROOT, commit(f, vec![e(1, 0), e(2, 0), e(1, 20), e(3, 0), e(1, 40)])).unwrap();
    ns.run(&ROOT, commit(g, vec![e(1, 0)])).unwrap();
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 3);
    // A splice keeps two pieces of 1, drops 2 and 3, adds 4.
    ns.run(&ROOT, commit(f, vec![e(1, 0), e(4, 0), e(1, 40)])).unwrap();
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 2, "1 and 4 live, 2 and 3 garbage");
    // Chunk 1 stays referenced through g when f lets go of it entirely.
    ns.run(&ROOT, commit(f, vec![e(4, 0)])).unwrap();
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 2);
    ns.run(&ROOT, commit(g, vec![])).unwrap();
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 1, "only 4 is left");
}

#[test]
fn a_splice_commit_changes_only_what_it_names() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    let e = |n: u8, offset: u64, len: u64| ExtentRec { id: if n == 0 { vec![] } else { chunk(n) }, offset, len };
    let full = vec![e(1, 0, 10), e(2, 0, 10)];
    ns.run(&ROOT, commit(f, full, 20)).unwrap();
    let splice = |keep, size, patches: Vec<(u64, Vec<ExtentRec>)>| Op::Commit {
        ino: f,
        extents: vec![],
        size,
        gc_epoch: 0,
        mtime: None,
        splice: Some(Splice { keep, patches }),
        create: None,
        unsealed: false,
        attrs: None,
    };
    // A 4-byte patch inside chunk 1, size unchanged.
    ns.run(&ROOT, splice(20, 20, vec![(3, vec![e(3, 0, 4)])])).unwrap();
    assert_eq!(read::extents(&ns.db, f).unwrap(), vec![e(1, 0, 3), e(3, 0, 4), e(1, 7, 3), e(2, 0, 10)]);
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 3);
    // Cut at 5, grown to 30, a patch at the end: chunk 2 drops out.
    ns.run(&ROOT, splice(5, 30, vec![(25, vec![e(4, 0, 5)])])).unwrap();
    assert_eq!(read::extents(&ns.db, f).unwrap(), vec![e(1, 0, 3), e(3, 0, 2), e(0, 0, 20), e(4, 0, 5)]);
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 3);
    assert_eq!(ns.inode(f).size, 30);
    // A patch past the size is refused and changes nothing.
    assert_eq!(ns.errno(&ROOT, splice(30, 30, vec![(28, vec![e(5, 0, 4)])])), libc::EINVAL);
    assert_eq!(read::extents(&ns.db, f).unwrap().len(), 4);
}

#[test]
fn a_hole_may_be_longer_than_a_chunk_but_data_may_not() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "sparse");
    let big = 3 * tessera_proto::MAX_CHUNK_SIZE;
    let ext = vec![ExtentRec { id: Vec::new(), offset: 0, len: big }, ExtentRec { id: chunk(1), offset: 0, len: 4 }];
    ns.run(&ROOT, commit(f, ext, big + 4)).unwrap();
    assert_eq!(ns.inode(f).size, big + 4);
    let ext = vec![ExtentRec { id: chunk(2), offset: 0, len: big }];
    assert_eq!(ns.errno(&ROOT, commit(f, ext, big)), libc::EINVAL);
    let ext =
        vec![ExtentRec { id: Vec::new(), offset: 0, len: u64::MAX }, ExtentRec { id: Vec::new(), offset: 0, len: 2 }];
    assert_eq!(ns.errno(&ROOT, commit(f, ext, 1)), libc::EFBIG);
}

#[test]
fn truncate_keeps_prefix_and_grows_with_holes() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    let ext = vec![ExtentRec { id: chunk(1), offset: 0, len: 10 }, ExtentRec { id: chunk(2), offset: 0, len: 10 }];
    ns.run(&ROOT, commit(f, ext, 20)).unwrap();
    let size = |s| resize(f, s);
    ns.run(&ROOT, size(5)).unwrap();
    assert_eq!(read::extents(&ns.db, f).unwrap(), vec![ExtentRec { id: chunk(1), offset: 0, len: 5 }]);
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 1);
    ns.run(&ROOT, size(12)).unwrap();
    assert_eq!(
        read::extents(&ns.db, f).unwrap(),
        vec![ExtentRec { id: chunk(1), offset: 0, len: 5 }, ExtentRec { id: vec![], offset: 0, len: 7 }]
    );
    assert_eq!(ns.inode(f).size, 12);
}

/// A commit of 10 bytes of chunk `id` to `ino`, with GC epoch `epoch`.
fn commit_chunk(ino: u64, id: u8, epoch: u64) -> Op {
    Op::Commit {
        ino,
        extents: vec![ExtentRec { id: chunk(id), offset: 0, len: 10 }],
        size: 10,
        gc_epoch: epoch,
        mtime: None,
        splice: None,
        create: None,
        unsealed: false,
        attrs: None,
    }
}

#[test]
fn commit_refuses_chunks_collected_since_its_epoch() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    let commit = |epoch: u64| commit_chunk(f, 9, epoch);
    ns.run(&ROOT, commit(0)).unwrap();
    // Truncating drops the only reference: chunk 9 becomes garbage.
    ns.run(&ROOT, resize(f, 0)).unwrap();
    let far_future = (i64::MAX, 0);
    let marked =
        ns.run(&ROOT, Op::CollectGarbage { ids: vec![chunk(9)], older_than: far_future, orphans: false }).unwrap();
    assert!(matches!(marked, Reply::Ids(ref v) if v.len() == 1));
    let epoch_before_delete = ns.clock as u64;
    // Deletion in progress: any commit of chunk 9 is refused.
    assert_eq!(ns.errno(&ROOT, commit(epoch_before_delete)), libc::EAGAIN);
    ns.run(&ROOT, Op::GarbageDeleted { ids: vec![chunk(9)] }).unwrap();
    let done_at = ns.clock as u64;
    // A client whose epoch predates the deletion may have seen the old copy.
    assert_eq!(ns.errno(&ROOT, commit(epoch_before_delete)), libc::EAGAIN);
    // One that looked after the deletion re-uploaded: accepted.
    ns.run(&ROOT, commit(done_at)).unwrap();
    // A referenced chunk is never collected.
    let marked =
        ns.run(&ROOT, Op::CollectGarbage { ids: vec![chunk(9)], older_than: far_future, orphans: true }).unwrap();
    assert!(matches!(marked, Reply::Ids(ref v) if v.is_empty()));
}

#[test]
fn pruned_collection_records_raise_the_floor_for_old_epochs() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    let commit = |id: u8, epoch: u64| commit_chunk(f, id, epoch);
    ns.run(&ROOT, commit(9, 0)).unwrap();
    ns.run(&ROOT, resize(f, 0)).unwrap();
    let far_future = (i64::MAX, 0);
    ns.run(&ROOT, Op::CollectGarbage { ids: vec![chunk(9)], older_than: far_future, orphans: false }).unwrap();
    ns.run(&ROOT, Op::GarbageDeleted { ids: vec![chunk(9)] }).unwrap();
    let done_at = ns.clock as u64;
    let prune = |floor: u64| Op::PruneCollected { floor, limit: 100 };
    // A floor below the deletion keeps its record.
    assert!(matches!(ns.run(&ROOT, prune(done_at - 1)), Ok(Reply::Count(0))));
    assert!(matches!(ns.run(&ROOT, prune(done_at)), Ok(Reply::Count(1))));
    assert!(read::collection_records(&ns.db).unwrap() == 0);
    // Below the floor no commit may add a first reference, to a pruned
    // chunk or to any other (a pruned record looks like none).
    assert_eq!(ns.errno(&ROOT, commit(9, done_at - 2)), libc::EAGAIN);
    assert_eq!(ns.errno(&ROOT, commit(7, done_at - 2)), libc::EAGAIN);
    // At or above it, as before.
    ns.run(&ROOT, commit(9, done_at)).unwrap();
    // A chunk already referenced needs no check: any epoch will do.
    ns.run(&ROOT, commit(9, 0)).unwrap();
    // A lower floor later never lowers it.
    ns.run(&ROOT, prune(1)).unwrap();
    assert_eq!(ns.errno(&ROOT, commit(7, done_at - 2)), libc::EAGAIN);
}

#[test]
fn a_commit_needs_write_permission_or_ownership_and_extents_read_or_write() {
    let mut ns = Ns::new();
    ns.run(&ROOT, chmod(1, 0o777)).unwrap();
    let f = ns.create(&user(1000), 1, "f");
    let data = || commit(f, vec![ExtentRec { id: chunk(1), offset: 0, len: 10 }], 10);
    // Its owner writes a file it made read-only (tar writes a 0444 file
    // through the descriptor that created it).
    ns.run(&user(1000), chmod(f, 0o444)).unwrap();
    ns.run(&user(1000), data()).unwrap();
    // Anyone else needs write permission, checked at apply.
    assert_eq!(ns.errno(&user(2000), data()), libc::EACCES);
    ns.run(&user(1000), chmod(f, 0o602)).unwrap();
    ns.run(&user(2000), data()).unwrap();
    // Extents: read or write permission, or ownership.
    let may = |ns: &Ns, c: &Cred| read::may_read_content(&ns.inode(f), c).is_ok();
    assert!(may(&ns, &user(2000)), "write-only other");
    ns.run(&user(1000), chmod(f, 0o600)).unwrap();
    assert!(!may(&ns, &user(2000)));
    assert!(may(&ns, &user(1000)) && may(&ns, &ROOT));
    ns.run(&user(1000), chmod(f, 0o000)).unwrap();
    assert!(may(&ns, &user(1000)), "the owner");
}

#[test]
fn a_splice_patch_past_a_chunk_is_refused_before_it_is_laid() {
    // Found by fuzzing (tests/hostile_ops.rs): this commit, from any
    // client, overflowed the splice arithmetic and so panicked every
    // master applying it.
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    let evil = ExtentRec { id: vec![0; 32], offset: u64::MAX, len: 120_647 };
    let op = Op::Commit {
        ino: f,
        extents: vec![],
        size: 263_473,
        gc_epoch: 0,
        mtime: None,
        splice: Some(crate::values::Splice {
            keep: 0,
            patches: vec![(142_826, vec![evil]), (77_359, vec![ExtentRec { id: vec![], offset: 0, len: 65_468 }])],
        }),
        create: None,
        unsealed: false,
        attrs: None,
    };
    assert_eq!(ns.errno(&ROOT, op), libc::EINVAL);
}
