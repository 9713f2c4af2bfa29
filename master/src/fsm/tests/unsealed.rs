//! Unsealed commits: the marker, the healer's verdict, and settling.

use super::*;
use crate::fsm::unsealed::{old_markers, verdict, Verdict};

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

#[test]
fn only_a_commit_replacing_the_whole_content_may_be_unsealed() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    ns.run(&ROOT, commit(f, vec![ExtentRec { id: chunk(1), offset: 0, len: 10 }], 10)).unwrap();
    assert_eq!(ns.errno(&ROOT, unsealed(f, 10, 2, 20)), libc::EINVAL);
    // Refused: no marker, content unchanged.
    assert!(old_markers(&ns.db, (i64::MAX, 0)).unwrap().is_empty());
    assert_eq!(ns.inode(f).size, 10);
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
