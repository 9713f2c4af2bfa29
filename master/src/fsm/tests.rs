//! Namespace semantics, checked on a real RocksDB without Raft.

use super::apply::{apply, bootstrap};
use super::model::*;
use super::read;
use super::Txn;
use crate::types::*;
use rocksdb::{WriteBatch, DB};
use std::sync::Arc;

struct Ns {
    _dir: tempfile::TempDir,
    db: Arc<DB>,
    clock: i64,
}

const ROOT: Cred = Cred { uid: 0, gid: 0, groups: Vec::new() };

fn user(uid: u32) -> Cred {
    Cred { uid, gid: uid, groups: vec![] }
}

impl Ns {
    fn new() -> Ns {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::open_db(dir.path()).unwrap();
        let mut txn = Txn::new(&db);
        bootstrap(&mut txn, (1, 0)).unwrap();
        let mut b = WriteBatch::default();
        txn.into_batch(&mut b).unwrap();
        db.write(b).unwrap();
        Ns { _dir: dir, db, clock: 100 }
    }

    fn run(&mut self, cred: &Cred, op: Op) -> CommandResult {
        self.clock += 1;
        let mut txn = Txn::new(&self.db);
        let r = apply(
            &mut txn,
            &Command { cred: cred.clone(), now: (self.clock, 0), op, request_id: String::new() },
            self.clock as u64,
        )
        .unwrap();
        let mut b = WriteBatch::default();
        txn.into_batch(&mut b).unwrap();
        self.db.write(b).unwrap();
        r
    }

    fn ino(&mut self, cred: &Cred, op: Op) -> u64 {
        match self.run(cred, op).unwrap() {
            Reply::Attr(i) | Reply::Created { inode: i, .. } => i.ino,
            _ => panic!("no inode"),
        }
    }

    fn mkdir(&mut self, cred: &Cred, parent: u64, name: &str, mode: u32) -> u64 {
        self.ino(cred, Op::Mkdir { parent, name: name.into(), mode })
    }

    fn create(&mut self, cred: &Cred, parent: u64, name: &str) -> u64 {
        self.ino(
            cred,
            Op::Create { parent, name: name.into(), mode: 0o644, kind: 1, rdev: 0, exclusive: false, truncate: false },
        )
    }

    fn errno(&mut self, cred: &Cred, op: Op) -> i32 {
        self.run(cred, op).unwrap_err().errno
    }

    fn inode(&self, ino: u64) -> Inode {
        read::inode(&self.db, ino).unwrap()
    }

    fn lookup(&self, parent: u64, name: &str) -> Option<Inode> {
        read::lookup(&self.db, &ROOT, parent, name.as_bytes()).ok()
    }
}

/// A whole-list commit making the file `size` bytes.
fn commit(ino: u64, extents: Vec<ExtentRec>, size: u64) -> Op {
    Op::Commit {
        ino,
        extents,
        size,
        gc_epoch: 0,
        mtime: None,
        splice: None,
        create: None,
        unsealed: false,
        attrs: None,
    }
}

/// A setattr that changes only the mode.
fn chmod(ino: u64, mode: u32) -> Op {
    Op::SetAttr { ino, mode: Some(mode), uid: None, gid: None, size: None, atime: None, mtime: None, by_handle: false }
}

/// A setattr that changes only the size.
fn resize(ino: u64, size: u64) -> Op {
    Op::SetAttr { ino, mode: None, uid: None, gid: None, size: Some(size), atime: None, mtime: None, by_handle: false }
}

fn chunk(n: u8) -> Vec<u8> {
    vec![n; 32]
}

mod content;
mod create_behind;
mod hostile_ops;
mod lock_delegation;
mod unsealed;

#[test]
fn mkdir_link_counts_and_rmdir() {
    let mut ns = Ns::new();
    let a = ns.mkdir(&ROOT, 1, "a", 0o755);
    ns.mkdir(&ROOT, a, "b", 0o755);
    assert_eq!(ns.inode(1).nlink, 3);
    assert_eq!(ns.inode(a).nlink, 3);
    assert_eq!(ns.errno(&ROOT, Op::Rmdir { parent: 1, name: "a".into() }), libc::ENOTEMPTY);
    assert_eq!(ns.errno(&ROOT, Op::Mkdir { parent: 1, name: "a".into(), mode: 0o755 }), libc::EEXIST);
    ns.run(&ROOT, Op::Rmdir { parent: a, name: "b".into() }).unwrap();
    ns.run(&ROOT, Op::Rmdir { parent: 1, name: "a".into() }).unwrap();
    assert_eq!(ns.inode(1).nlink, 2);
}

#[test]
fn hard_links_share_inode_and_free_on_last_unlink() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    ns.run(&ROOT, commit(f, vec![ExtentRec { id: chunk(1), offset: 0, len: 10 }], 10)).unwrap();
    ns.run(&ROOT, Op::Link { ino: f, new_parent: 1, new_name: "g".into() }).unwrap();
    assert_eq!(ns.lookup(1, "g").unwrap().ino, f);
    assert_eq!(ns.inode(f).nlink, 2);
    ns.run(&ROOT, chmod(f, 0o600)).unwrap();
    assert_eq!(ns.lookup(1, "g").unwrap().mode, 0o600, "attributes are shared");
    ns.run(&ROOT, Op::Unlink { parent: 1, name: "f".into(), open: vec![] }).unwrap();
    assert_eq!(ns.inode(f).nlink, 1);
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 1);
    ns.run(&ROOT, Op::Unlink { parent: 1, name: "g".into(), open: vec![] }).unwrap();
    assert!(read::inode(&ns.db, f).is_err());
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 0, "chunk reference dropped");
    let d = ns.mkdir(&ROOT, 1, "d", 0o755);
    assert_eq!(ns.errno(&ROOT, Op::Link { ino: d, new_parent: 1, new_name: "d2".into() }), libc::EPERM);
}

/// A rename sent behind applies only while the names name what its
/// mount saw: the file at the old name, and at the new one the file it
/// replaces (or nothing).
#[test]
fn a_rename_sent_behind_checks_what_its_mount_saw() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    let g = ns.create(&ROOT, 1, "g");
    let seen = |name: &str, new_name: &str, ino: u64, replaces: u64| Op::RenameSeen {
        parent: 1,
        name: name.into(),
        new_parent: 1,
        new_name: new_name.into(),
        flags: 0,
        open: vec![],
        ino,
        replaces,
    };
    // The old name names another file now.
    assert_eq!(ns.errno(&ROOT, seen("f", "x", g, 0)), libc::ENOENT);
    // The new name, expected free, names a file made since.
    assert_eq!(ns.errno(&ROOT, seen("f", "g", f, 0)), libc::EEXIST);
    // Expected to replace a file that is gone from the name.
    assert_eq!(ns.errno(&ROOT, seen("f", "x", f, g)), libc::EEXIST);
    assert_eq!(ns.lookup(1, "f").unwrap().ino, f);
    // As seen: applied, replacing g.
    ns.run(&ROOT, seen("f", "g", f, g)).unwrap();
    assert_eq!(ns.lookup(1, "g").unwrap().ino, f);
    assert!(ns.lookup(1, "f").is_none());
    ns.run(&ROOT, seen("g", "h", f, 0)).unwrap();
    assert_eq!(ns.lookup(1, "h").unwrap().ino, f);
}

#[test]
fn rename_corner_cases() {
    let mut ns = Ns::new();
    let a = ns.mkdir(&ROOT, 1, "a", 0o755);
    let b = ns.mkdir(&ROOT, a, "b", 0o755);
    let f = ns.create(&ROOT, 1, "f");
    let g = ns.create(&ROOT, 1, "g");
    // Into its own subtree.
    assert_eq!(
        ns.errno(
            &ROOT,
            Op::Rename { parent: 1, name: "a".into(), new_parent: b, new_name: "x".into(), flags: 0, open: vec![] }
        ),
        libc::EINVAL
    );
    // File over directory and directory over file.
    assert_eq!(
        ns.errno(
            &ROOT,
            Op::Rename { parent: 1, name: "f".into(), new_parent: 1, new_name: "a".into(), flags: 0, open: vec![] }
        ),
        libc::EISDIR
    );
    assert_eq!(
        ns.errno(
            &ROOT,
            Op::Rename { parent: a, name: "b".into(), new_parent: 1, new_name: "f".into(), flags: 0, open: vec![] }
        ),
        libc::ENOTDIR
    );
    // Over a non-empty directory.
    let c = ns.mkdir(&ROOT, 1, "c", 0o755);
    assert_eq!(
        ns.errno(
            &ROOT,
            Op::Rename { parent: 1, name: "c".into(), new_parent: 1, new_name: "a".into(), flags: 0, open: vec![] }
        ),
        libc::ENOTEMPTY
    );
    // NOREPLACE.
    assert_eq!(
        ns.errno(
            &ROOT,
            Op::Rename { parent: 1, name: "f".into(), new_parent: 1, new_name: "g".into(), flags: 1, open: vec![] }
        ),
        libc::EEXIST
    );
    // Replacing a file frees the target.
    ns.run(
        &ROOT,
        Op::Rename { parent: 1, name: "f".into(), new_parent: 1, new_name: "g".into(), flags: 0, open: vec![] },
    )
    .unwrap();
    assert_eq!(ns.lookup(1, "g").unwrap().ino, f);
    assert!(ns.lookup(1, "f").is_none());
    assert!(read::inode(&ns.db, g).is_err());
    // Renaming onto a hard link of itself does nothing.
    ns.run(&ROOT, Op::Link { ino: f, new_parent: 1, new_name: "h".into() }).unwrap();
    ns.run(
        &ROOT,
        Op::Rename { parent: 1, name: "g".into(), new_parent: 1, new_name: "h".into(), flags: 0, open: vec![] },
    )
    .unwrap();
    assert!(ns.lookup(1, "g").is_some() && ns.lookup(1, "h").is_some());
    // Moving a directory fixes link counts and its parent.
    ns.run(
        &ROOT,
        Op::Rename { parent: a, name: "b".into(), new_parent: c, new_name: "b".into(), flags: 0, open: vec![] },
    )
    .unwrap();
    assert_eq!(ns.inode(a).nlink, 2);
    assert_eq!(ns.inode(c).nlink, 3);
    assert_eq!(ns.inode(b).parent, c);
    // EXCHANGE swaps a file and a directory.
    ns.run(
        &ROOT,
        Op::Rename { parent: 1, name: "h".into(), new_parent: 1, new_name: "a".into(), flags: 2, open: vec![] },
    )
    .unwrap();
    assert_eq!(ns.lookup(1, "a").unwrap().ino, f);
    assert_eq!(ns.lookup(1, "h").unwrap().ino, a);
    // Directory over an empty directory replaces it.
    let e = ns.mkdir(&ROOT, 1, "e", 0o755);
    ns.run(
        &ROOT,
        Op::Rename { parent: 1, name: "c".into(), new_parent: 1, new_name: "e".into(), flags: 0, open: vec![] },
    )
    .unwrap();
    assert!(read::inode(&ns.db, e).is_err());
    assert_eq!(ns.lookup(1, "e").unwrap().ino, c);
}

#[test]
fn permissions_for_other_users_and_sticky_dirs() {
    let mut ns = Ns::new();
    let alice = user(1000);
    let bob = user(1001);
    let shared = ns.mkdir(&ROOT, 1, "tmp", 0o1777);
    let private = ns.mkdir(&ROOT, 1, "private", 0o700);
    assert_eq!(ns.errno(&alice, Op::Mkdir { parent: 1, name: "x".into(), mode: 0o755 }), libc::EACCES);
    assert_eq!(ns.errno(&alice, Op::Mkdir { parent: private, name: "x".into(), mode: 0o755 }), libc::EACCES);
    assert!(read::lookup(&ns.db, &alice, private, b"x").unwrap_err().errno == libc::EACCES);
    let f = ns.create(&alice, shared, "alice-file");
    assert_eq!(ns.inode(f).uid, 1000);
    // Sticky: bob cannot remove or rename alice's file, alice can.
    assert_eq!(ns.errno(&bob, Op::Unlink { parent: shared, name: "alice-file".into(), open: vec![] }), libc::EPERM);
    assert_eq!(
        ns.errno(
            &bob,
            Op::Rename {
                parent: shared,
                name: "alice-file".into(),
                new_parent: shared,
                new_name: "y".into(),
                flags: 0,
                open: vec![],
            }
        ),
        libc::EPERM
    );
    // chmod and chown rules.
    let set_mode = |m| chmod(f, m);
    assert_eq!(ns.errno(&bob, set_mode(0o777)), libc::EPERM);
    ns.run(&alice, set_mode(0o600)).unwrap();
    let chown = |u| Op::SetAttr {
        ino: f,
        mode: None,
        uid: Some(u),
        gid: None,
        size: None,
        atime: None,
        mtime: None,
        by_handle: false,
    };
    assert_eq!(ns.errno(&alice, chown(1001)), libc::EPERM);
    // Times: explicit value needs ownership, "now" needs write access.
    let touch = |t| Op::SetAttr {
        ino: f,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        atime: None,
        mtime: Some(t),
        by_handle: false,
    };
    assert_eq!(ns.errno(&bob, touch(TimeSet::Now)), libc::EACCES);
    assert_eq!(ns.errno(&bob, touch(TimeSet::At((5, 0)))), libc::EPERM);
    ns.run(&alice, touch(TimeSet::At((5, 7)))).unwrap();
    assert_eq!(ns.inode(f).mtime, (5, 7));
    // Truncate needs write permission.
    let trunc = resize(f, 0);
    assert_eq!(ns.errno(&bob, trunc.clone()), libc::EACCES);
    // ...unless it comes through a handle opened for writing (ftruncate):
    // the permission was checked when that handle was opened.
    let Op::SetAttr { ino, mode, uid, gid, size, atime, mtime, .. } = trunc.clone() else { unreachable!() };
    ns.run(&bob, Op::SetAttr { ino, mode, uid, gid, size, atime, mtime, by_handle: true }).unwrap();
    // A write by a non-owner clears setuid/setgid (the kernel's chmod as
    // the writer): allowed with write permission, and for nothing more.
    ns.run(&alice, set_mode(0o6666)).unwrap();
    ns.run(&bob, set_mode(0o0666)).unwrap();
    assert_eq!(ns.inode(f).mode & 0o7777, 0o0666);
    ns.run(&alice, set_mode(0o6664)).unwrap();
    assert_eq!(ns.errno(&bob, set_mode(0o0664)), libc::EPERM, "no write permission");
    ns.run(&alice, set_mode(0o6666)).unwrap();
    assert_eq!(ns.errno(&bob, set_mode(0o0777)), libc::EPERM, "adds bits");
    ns.run(&bob, set_mode(0o2666)).unwrap(); // setuid alone
    ns.run(&alice, Op::Unlink { parent: shared, name: "alice-file".into(), open: vec![] }).unwrap();
}

#[test]
fn names_are_validated() {
    let mut ns = Ns::new();
    for bad in ["", ".", "..", "a/b", "a\0b"] {
        assert_eq!(ns.errno(&ROOT, Op::Mkdir { parent: 1, name: bad.into(), mode: 0o755 }), libc::EINVAL, "{bad:?}");
    }
    let long = "x".repeat(256);
    assert_eq!(ns.errno(&ROOT, Op::Mkdir { parent: 1, name: long.into(), mode: 0o755 }), libc::ENAMETOOLONG);
    ns.mkdir(&ROOT, 1, &"y".repeat(255), 0o755);
}

#[test]
fn readdir_pages_in_name_order() {
    let mut ns = Ns::new();
    for i in 0..25 {
        ns.create(&ROOT, 1, &format!("f{i:02}"));
    }
    let p1 = read::readdir(&ns.db, &ROOT, 1, b"", 10, false).unwrap();
    assert_eq!(p1.entries.len(), 10);
    assert!(p1.more);
    let last = p1.entries.last().unwrap().0.clone();
    let p2 = read::readdir(&ns.db, &ROOT, 1, &last, 100, true).unwrap();
    assert_eq!(p2.entries.len(), 15);
    assert!(!p2.more);
    assert_eq!(p2.entries[0].0, b"f10");
    assert!(p2.entries[0].2.is_some());
}

/// The GC protocol: a commit that adds the first reference to a chunk being
/// collected is refused unless every deletion finished before its epoch.
#[test]
fn the_inode_counts_its_extended_attributes() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, tessera_proto::ROOT_INO, "f");
    let set = |name: &str, value: &str| Op::SetXattr { ino: f, name: name.into(), value: value.into(), flags: 0 };
    ns.run(&ROOT, set("user.a", "1")).unwrap();
    ns.run(&ROOT, set("user.a", "2")).unwrap(); // a replacement, not a new one
    ns.run(&ROOT, set("user.b", "1")).unwrap();
    assert_eq!(ns.inode(f).xattrs, 2);
    ns.run(&ROOT, Op::RemoveXattr { ino: f, name: "user.a".into() }).unwrap();
    assert_eq!(ns.inode(f).xattrs, 1);
    // A refused removal changes nothing.
    assert_eq!(ns.errno(&ROOT, Op::RemoveXattr { ino: f, name: "user.a".into() }), libc::ENODATA);
    assert_eq!(ns.inode(f).xattrs, 1);
}

#[test]
fn a_read_updates_atime_only_when_relatime_says_so() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, tessera_proto::ROOT_INO, "f");
    // Fresh file: atime == mtime, so the first read is due.
    let before = ns.inode(f);
    ns.run(&ROOT, Op::TouchAtimes { inos: vec![f] }).unwrap();
    let after_first = ns.inode(f);
    assert!(after_first.atime > after_first.mtime, "first read did not set atime");
    assert_eq!(after_first.ctime, before.ctime, "a read changed ctime");
    // Atime now after mtime and ctime: a second read changes nothing.
    ns.run(&ROOT, Op::TouchAtimes { inos: vec![f] }).unwrap();
    assert_eq!(ns.inode(f).atime, after_first.atime);
    // A removed file in the batch is skipped, not an error.
    ns.run(&ROOT, Op::Unlink { parent: tessera_proto::ROOT_INO, name: "f".into(), open: vec![] }).unwrap();
    ns.run(&ROOT, Op::TouchAtimes { inos: vec![f] }).unwrap();
}

#[test]
fn unlink_many_applies_each_item_on_its_own() {
    let mut ns = Ns::new();
    let shared = ns.mkdir(&ROOT, 1, "shared", 0o1777);
    let alice = user(1000);
    let a = ns.create(&alice, shared, "a");
    let b = ns.create(&ROOT, shared, "b");
    let c = ns.create(&alice, shared, "c");
    let item = |cred: &Cred, name: &str| UnlinkItem { cred: cred.clone(), parent: shared, name: name.into(), ino: 0 };
    let bob = user(1001);
    let items = vec![
        item(&alice, "a"),
        item(&alice, "b"),    // sticky directory, root's file: EPERM
        item(&bob, "c"),      // sticky directory, alice's file: EPERM
        item(&alice, "gone"), // ENOENT
        item(&alice, "a"),    // removed by the first item: ENOENT
        item(&ROOT, "b"),
    ];
    let Reply::Outcomes(out, _) = ns.run(&ROOT, Op::UnlinkMany { items, open: vec![] }).unwrap() else {
        panic!("no outcomes")
    };
    let errnos: Vec<i32> = out.iter().map(|o| o.as_ref().map_or(0, |e| e.errno)).collect();
    assert_eq!(errnos, vec![0, libc::EPERM, libc::EPERM, libc::ENOENT, libc::ENOENT, 0]);
    assert!(ns.lookup(shared, "a").is_none() && ns.lookup(shared, "b").is_none());
    assert_eq!(ns.lookup(shared, "c").unwrap().ino, c, "a refused item changes nothing");
    assert!(read::inode(&ns.db, a).is_err() && read::inode(&ns.db, b).is_err());
    assert_eq!(ns.inode(shared).mtime, (ns.clock, 0));
}

#[test]
fn a_late_unlink_leaves_a_file_made_under_the_name_since() {
    let mut ns = Ns::new();
    let old = ns.create(&ROOT, 1, "x");
    ns.run(&ROOT, Op::Unlink { parent: 1, name: "x".into(), open: vec![] }).unwrap();
    let new = ns.create(&ROOT, 1, "x");
    assert_ne!(old, new);
    let items = vec![UnlinkItem { cred: ROOT, parent: 1, name: "x".into(), ino: old }];
    let Reply::Outcomes(out, _) = ns.run(&ROOT, Op::UnlinkMany { items, open: vec![] }).unwrap() else {
        panic!("no outcomes")
    };
    assert_eq!(out[0].as_ref().map(|e| e.errno), Some(libc::ENOENT));
    assert_eq!(ns.lookup(1, "x").unwrap().ino, new);
    let items = vec![UnlinkItem { cred: ROOT, parent: 1, name: "x".into(), ino: new }];
    ns.run(&ROOT, Op::UnlinkMany { items, open: vec![] }).unwrap();
    assert!(ns.lookup(1, "x").is_none());
}

#[test]
fn a_file_open_on_the_callers_mount_outlives_its_last_name() {
    let mut ns = Ns::new();
    let f = ns.create(&ROOT, 1, "f");
    let extents = vec![ExtentRec { id: chunk(1), offset: 0, len: 10 }];
    ns.run(&ROOT, commit(f, extents.clone(), 10)).unwrap();
    // Open elsewhere only: freed at once.
    let g = ns.create(&ROOT, 1, "g");
    let r = ns.run(&ROOT, Op::Unlink { parent: 1, name: "g".into(), open: vec![f] }).unwrap();
    assert!(matches!(r, Reply::Orphaned(ref o) if o.is_empty()));
    assert!(read::inode(&ns.db, g).is_err());
    // Open on the caller's mount: kept, nameless, content and chunks intact.
    let r = ns.run(&ROOT, Op::Unlink { parent: 1, name: "f".into(), open: vec![f] }).unwrap();
    assert!(matches!(r, Reply::Orphaned(ref o) if o == &vec![f]));
    assert!(ns.lookup(1, "f").is_none());
    assert_eq!(ns.inode(f).nlink, 0);
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 1);
    assert_eq!(read::orphan_files(&ns.db, (ns.clock + 1, 0)).unwrap(), vec![f]);
    assert!(read::orphan_files(&ns.db, (ns.clock, 0)).unwrap().is_empty(), "not older than its unlink");
    // Renewed by its mount: its age starts again.
    ns.run(&ROOT, Op::RenewOrphans { inos: vec![f, 999] }).unwrap();
    assert!(read::orphan_files(&ns.db, (ns.clock, 0)).unwrap().is_empty(), "renewed at the latest clock");
    assert_eq!(read::orphan_files(&ns.db, (ns.clock + 1, 0)).unwrap(), vec![f]);
    // Still writable through the open file.
    let two = vec![ExtentRec { id: chunk(2), offset: 0, len: 20 }];
    ns.run(&ROOT, commit(f, two, 20)).unwrap();
    assert_eq!(ns.inode(f).size, 20);
    ns.run(&ROOT, Op::ReleaseOrphans { inos: vec![f, 999] }).unwrap();
    assert!(read::inode(&ns.db, f).is_err(), "freed at release");
    assert!(read::orphan_files(&ns.db, (i64::MAX, 0)).unwrap().is_empty());
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 0);
    // A second release (a retry) changes nothing.
    ns.run(&ROOT, Op::ReleaseOrphans { inos: vec![f] }).unwrap();
    // A rename over an open target orphans it too; a relinked name would not.
    let a = ns.create(&ROOT, 1, "a");
    let b = ns.create(&ROOT, 1, "b");
    let r = ns
        .run(
            &ROOT,
            Op::Rename { parent: 1, name: "a".into(), new_parent: 1, new_name: "b".into(), flags: 0, open: vec![a, b] },
        )
        .unwrap();
    assert!(matches!(r, Reply::Orphaned(ref o) if o == &vec![b]));
    assert_eq!(ns.inode(b).nlink, 0);
    assert_eq!(ns.lookup(1, "b").unwrap().ino, a);
    // In a batch: per item, collected for the whole.
    let c = ns.create(&ROOT, 1, "c");
    let items = vec![UnlinkItem { cred: ROOT, parent: 1, name: "c".into(), ino: 0 }];
    let r = ns.run(&ROOT, Op::UnlinkMany { items, open: vec![c] }).unwrap();
    assert!(matches!(r, Reply::Outcomes(_, ref o) if o == &vec![c]));
}

#[test]
fn a_lock_session_lists_only_the_files_it_holds_locks_on() {
    use super::locks::{SessionRec, F_UNLCK, F_WRLCK};
    let mut ns = Ns::new();
    let lock =
        |ino: u64, typ: i32| Op::SetLock { ino, owner: "m1:1".into(), pid: 1, start: 0, end: 9, typ, lease_ms: 10_000 };
    let session = |ns: &Ns| -> Vec<u64> {
        let cf = super::cf(&ns.db, super::CF_SM).unwrap();
        let raw = ns.db.get_cf(cf, key::bytes(key::SESSION, b"m1")).unwrap().unwrap();
        decode::<SessionRec>(&raw).unwrap().inos
    };
    ns.run(&ROOT, lock(10, F_WRLCK)).unwrap();
    ns.run(&ROOT, lock(11, F_WRLCK)).unwrap();
    assert_eq!(session(&ns), vec![10, 11]);
    ns.run(&ROOT, lock(10, F_UNLCK)).unwrap();
    assert_eq!(session(&ns), vec![11]);
    ns.run(&ROOT, Op::ReleaseLocks { ino: 11, owner: "m1:1".into() }).unwrap();
    assert!(session(&ns).is_empty());
    // The session itself lives on until its lease ends.
    ns.run(&ROOT, Op::RenewSession { session: "m1".into(), lease_ms: 10_000 }).unwrap();
}

#[test]
fn flock_and_fcntl_locks_do_not_conflict_but_each_kind_excludes_itself() {
    use super::locks::{SessionRec, F_UNLCK, F_WRLCK};
    let mut ns = Ns::new();
    // The whole file, as flock(2) asks and as lockf(0) does.
    let (ino, pid, start, end, lease_ms) = (10, 1, 0, u64::MAX, 10_000);
    let posix = |owner: &str, typ| Op::SetLock { ino, owner: owner.into(), pid, start, end, typ, lease_ms };
    let flock = |owner: &str, typ| Op::SetFlock { ino, owner: owner.into(), pid, start, end, typ, lease_ms };
    let granted = |r: CommandResult| matches!(r, Ok(Reply::Lock(None)));
    assert!(granted(ns.run(&ROOT, flock("m1:f1", F_WRLCK))));
    // Another owner's fcntl lock on the whole file: a different kind.
    assert!(granted(ns.run(&ROOT, posix("m2:p1", F_WRLCK))));
    // Each kind still excludes itself.
    assert!(!granted(ns.run(&ROOT, flock("m2:f2", F_WRLCK))));
    assert!(!granted(ns.run(&ROOT, posix("m1:p2", F_WRLCK))));
    // The session keeps listing the file while it holds either kind.
    let session = |ns: &Ns, name: &[u8]| -> Vec<u64> {
        let cf = super::cf(&ns.db, super::CF_SM).unwrap();
        ns.db
            .get_cf(cf, key::bytes(key::SESSION, name))
            .unwrap()
            .map_or(vec![], |raw| decode::<SessionRec>(&raw).unwrap().inos)
    };
    assert!(granted(ns.run(&ROOT, posix("m1:p3", F_UNLCK))));
    assert_eq!(session(&ns, b"m1"), vec![10]);
    // Releasing the owner's locks releases its flock too.
    ns.run(&ROOT, Op::ReleaseLocks { ino: 10, owner: "m1:f1".into() }).unwrap();
    assert!(session(&ns, b"m1").is_empty());
    assert!(granted(ns.run(&ROOT, flock("m2:f2", F_WRLCK))));
}

#[test]
fn a_command_too_large_for_the_log_is_refused_before_it_is_proposed() {
    let cmd = |len: usize| Command {
        cred: ROOT,
        now: (0, 0),
        op: Op::SetXattr { ino: 1, name: b"user.x".to_vec(), value: vec![200u8; len], flags: 0 },
        request_id: String::new(),
    };
    assert!(cmd(65536).check_size().is_ok());
    assert!(cmd((16 << 20) - 1024).check_size().is_ok());
    // The limit is on the encoded entry: 16 MiB of value and its header.
    let e = cmd(16 << 20).check_size().unwrap_err();
    assert_eq!(e.errno, libc::E2BIG);
    assert!(e.msg.contains(&MAX_COMMAND_BYTES.to_string()), "{}", e.msg);
}
