//! Unsealed commits: the marker, the healer's verdict, and settling.

use super::*;
use crate::fsm::unsealed::{old_markers, old_patch_markers, patch_verdict, verdict, Verdict};

fn unsealed(ino: u64, keep: u64, id: u8, size: u64) -> Op {
    Op::Commit {
        ino,
        extents: vec![],
        size,
        gc_epoch: 0,
        mtime: None,
        splice: Some(Splice { keep, patches: vec![(0, vec![ExtentRec { id: chunk(id), offset: 0, len: size }])] }),
        create: None,
        unsealed: true,
        attrs: None,
    }
}

fn version(r: CommandResult) -> u64 {
    match r.unwrap() {
        Reply::Attr(i) => i.version,
        r => panic!("{r:?}"),
    }
}

/// An unsealed commit laying chunk `id` (`len` bytes) at `at` over the
/// file's first `keep` bytes, at `size`.
fn unsealed_patch(ino: u64, keep: u64, at: u64, id: u8, len: u64, size: u64) -> Op {
    let mut op = unsealed(ino, keep, id, len);
    if let Op::Commit { splice: Some(sp), size: s, .. } = &mut op {
        sp.patches[0].0 = at;
        *s = size;
    }
    op
}

/// The file's content as (chunk id byte, offset in the chunk) per byte
/// (0 for a hole), whatever pieces the list is cut into.
fn content(ns: &Ns, ino: u64) -> Vec<(u8, u64)> {
    let mut out = Vec::new();
    for e in read::extents(&ns.db, ino).unwrap() {
        for k in 0..e.len {
            out.push((e.id.first().copied().unwrap_or(0), if e.id.is_empty() { 0 } else { e.offset + k }));
        }
    }
    out
}

#[test]
fn an_unsealed_patch_whose_chunk_is_lost_is_undone_exactly() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    ns.run(&ROOT, commit(f, vec![ExtentRec { id: chunk(1), offset: 0, len: 10 }], 10)).unwrap();
    let before = content(&ns, f);
    // Overwrites bytes 8..10 and grows the file to 14.
    let v = version(ns.run(&ROOT, unsealed_patch(f, 10, 8, 2, 6, 14)));
    assert_eq!(ns.inode(f).size, 14);
    let old = old_patch_markers(&ns.db, (i64::MAX, 0)).unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].1.new_ids, vec![chunk(2)]);
    // The patch's own chunk is what must be held; chunk 1 was there before.
    let only_1 = |id: &[u8]| id == chunk(1).as_slice();
    assert_eq!(patch_verdict(&ns.db, f, &old[0].1, only_1).unwrap(), Verdict::Revert);
    assert_eq!(patch_verdict(&ns.db, f, &old[0].1, |_| true).unwrap(), Verdict::Seal);
    ns.run(&ROOT, Op::SettleUnsealed { seal: vec![], revert: vec![(f, v)] }).unwrap();
    assert_eq!(ns.inode(f).size, 10);
    assert!(ns.inode(f).version > v, "a revert is a change of content");
    assert_eq!(content(&ns, f), before);
    assert!(old_patch_markers(&ns.db, (i64::MAX, 0)).unwrap().is_empty());
    // Only chunk 1 is referenced again (chunk 2 is garbage).
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 1);
}

#[test]
fn an_unsealed_patch_that_cut_the_file_is_undone_to_the_old_size() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    ns.run(&ROOT, commit(f, vec![ExtentRec { id: chunk(1), offset: 0, len: 20 }], 20)).unwrap();
    let before = content(&ns, f);
    // Keeps 6 bytes (a truncate) and writes 2 at 3.
    let v = version(ns.run(&ROOT, unsealed_patch(f, 6, 3, 2, 2, 6)));
    ns.run(&ROOT, Op::SettleUnsealed { seal: vec![], revert: vec![(f, v)] }).unwrap();
    assert_eq!(ns.inode(f).size, 20);
    assert_eq!(content(&ns, f), before);
}

#[test]
fn an_unsealed_patch_keeps_what_it_replaced_from_gc_until_settled() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    ns.run(&ROOT, commit(f, vec![ExtentRec { id: chunk(1), offset: 0, len: 4 }], 4)).unwrap();
    // Replaces every byte chunk 1 gave the file.
    let v = version(ns.run(&ROOT, unsealed_patch(f, 4, 0, 2, 4, 4)));
    let chunks = || read::counters(&ns.db).unwrap().chunks;
    assert_eq!(chunks(), 2, "chunk 1 is held by the marker");
    // A sealed commit over it: the patch is no one's to undo any more.
    ns.run(&ROOT, commit(f, vec![ExtentRec { id: chunk(3), offset: 0, len: 4 }], 4)).unwrap();
    let old = old_patch_markers(&ns.db, (i64::MAX, 0)).unwrap();
    assert_eq!(patch_verdict(&ns.db, f, &old[0].1, |_| false).unwrap(), Verdict::Seal);
    ns.run(&ROOT, Op::SettleUnsealed { seal: vec![(f, v)], revert: vec![] }).unwrap();
    assert!(old_patch_markers(&ns.db, (i64::MAX, 0)).unwrap().is_empty());
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 1, "only chunk 3 is left");
    assert_eq!(content(&ns, f), vec![(3, 0), (3, 1), (3, 2), (3, 3)]);
}

#[test]
fn a_marker_is_sealed_when_its_chunks_are_held_and_reverted_when_not() {
    let mut ns = Ns::new();
    let (a, b) = (ns.create(&ROOT, 1, "a"), ns.create(&ROOT, 1, "b"));
    let va = version(ns.run(&ROOT, unsealed(a, 0, 1, 10)));
    let vb = version(ns.run(&ROOT, unsealed(b, 0, 2, 10)));
    // Markers are listed only once older than the cutoff.
    assert!(old_markers(&ns.db, (0, 0)).unwrap().is_empty());
    let old = old_markers(&ns.db, (i64::MAX, 0)).unwrap();
    assert_eq!(old.iter().map(|(i, r)| (*i, r.version)).collect::<Vec<_>>(), vec![(a, va), (b, vb)]);
    // Chunk 1 is held somewhere, chunk 2 nowhere.
    let held = |id: &[u8]| id == chunk(1).as_slice();
    assert_eq!(verdict(&ns.db, a, &old[0].1, held).unwrap(), Verdict::Seal);
    assert_eq!(verdict(&ns.db, b, &old[1].1, held).unwrap(), Verdict::Revert);
    ns.run(&ROOT, Op::SettleUnsealed { seal: vec![(a, va)], revert: vec![(b, vb)] }).unwrap();
    assert!(old_markers(&ns.db, (i64::MAX, 0)).unwrap().is_empty());
    assert_eq!((ns.inode(a).size, ns.inode(b).size), (10, 0));
    assert!(read::extents(&ns.db, b).unwrap().is_empty());
    // The reverted file's chunk is no longer referenced: garbage.
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 1);
}

#[test]
fn content_written_over_an_unsealed_commit_is_never_reverted() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    let v1 = version(ns.run(&ROOT, unsealed(f, 0, 1, 10)));
    // Someone commits over it before the healer looks.
    ns.run(&ROOT, commit(f, vec![ExtentRec { id: chunk(3), offset: 0, len: 4 }], 4)).unwrap();
    let old = old_markers(&ns.db, (i64::MAX, 0)).unwrap();
    assert_eq!(verdict(&ns.db, f, &old[0].1, |_| false).unwrap(), Verdict::Seal);
    // Even a stale revert verdict leaves the newer content alone.
    ns.run(&ROOT, Op::SettleUnsealed { seal: vec![], revert: vec![(f, v1)] }).unwrap();
    assert_eq!(ns.inode(f).size, 4);
    assert!(old_markers(&ns.db, (i64::MAX, 0)).unwrap().is_empty());
}

#[test]
fn a_newer_unsealed_commit_keeps_its_marker_against_an_older_verdict() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    let v1 = version(ns.run(&ROOT, unsealed(f, 0, 1, 10)));
    let v2 = version(ns.run(&ROOT, unsealed(f, 0, 2, 20)));
    assert!(v2 > v1);
    ns.run(&ROOT, Op::SettleUnsealed { seal: vec![(f, v1)], revert: vec![(f, v1)] }).unwrap();
    let old = old_markers(&ns.db, (i64::MAX, 0)).unwrap();
    assert_eq!(old.iter().map(|(i, r)| (*i, r.version)).collect::<Vec<_>>(), vec![(f, v2)]);
    assert_eq!(ns.inode(f).size, 20);
}

#[test]
fn a_removed_file_s_marker_is_sealed() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    ns.run(&ROOT, unsealed(f, 0, 1, 10)).unwrap();
    ns.run(&ROOT, Op::Unlink { parent: 1, name: "f".into(), open: vec![] }).unwrap();
    let old = old_markers(&ns.db, (i64::MAX, 0)).unwrap();
    assert_eq!(verdict(&ns.db, f, &old[0].1, |_| false).unwrap(), Verdict::Seal);
}
