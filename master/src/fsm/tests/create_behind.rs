//! Write-behind creates: leased inode numbers, retries, a name taken by
//! another client meanwhile, and a create carried by a commit.

use super::*;

fn lease(ns: &mut Ns, count: u32) -> u64 {
    match ns.run(&ROOT, Op::LeaseInos { count }).unwrap() {
        Reply::Inos(first) => first,
        r => panic!("lease answered {r:?}"),
    }
}

fn behind(parent: u64, name: &str, ino: u64, at: i64) -> BehindCreate {
    behind_by(&ROOT, parent, name, ino, at)
}

fn behind_by(cred: &Cred, parent: u64, name: &str, ino: u64, at: i64) -> BehindCreate {
    BehindCreate { cred: cred.clone(), parent, name: name.into(), mode: 0o640, ino, at: (at, 0), exclusive: false }
}

#[test]
fn an_exclusive_behind_create_fails_on_a_name_that_exists() {
    let mut ns = Ns::new();
    let other = ns.create(&ROOT, 1, "f");
    let ino = lease(&mut ns, 2);
    let excl = |name: &str, ino| BehindCreate { exclusive: true, ..behind(1, name, ino, 5) };
    assert_eq!(ns.errno(&ROOT, Op::CreateBehind(excl("f", ino))), libc::EEXIST);
    assert_eq!(ns.lookup(1, "f").unwrap().ino, other, "the file that had the name keeps it");
    // Its own retry is no conflict, and a free name is taken as usual.
    ns.run(&ROOT, Op::CreateBehind(excl("g", ino + 1))).unwrap();
    ns.run(&ROOT, Op::CreateBehind(excl("g", ino + 1))).unwrap();
    assert_eq!(ns.lookup(1, "g").unwrap().ino, ino + 1);
}

#[test]
fn leased_numbers_are_never_handed_out_again() {
    let mut ns = Ns::new();
    let first = lease(&mut ns, 10);
    let second = lease(&mut ns, 10);
    assert_eq!(second, first + 10);
    let made = ns.create(&ROOT, 1, "plain");
    assert!(made >= second + 10, "a plain create took a leased number");
    assert_eq!(ns.errno(&ROOT, Op::LeaseInos { count: 0 }), libc::EINVAL);
    assert_eq!(ns.errno(&ROOT, Op::LeaseInos { count: u32::MAX }), libc::EINVAL);
}

#[test]
fn a_behind_create_uses_its_number_and_time_and_a_retry_succeeds() {
    let mut ns = Ns::new();
    let d = ns.mkdir(&ROOT, 1, "d", 0o2777);
    let ino = lease(&mut ns, 4);
    let me = user(1000);
    // Created "at" 50, before the master's clock: the file and its
    // directory carry that time, as the mount already told the kernel.
    let r = ns.run(&me, Op::CreateBehind(behind_by(&me, d, "f", ino, 50))).unwrap();
    let Reply::Created { inode, created: true } = r else { panic!("{r:?}") };
    assert_eq!((inode.ino, inode.uid, inode.mode, inode.nlink), (ino, 1000, 0o640, 1));
    assert_eq!(inode.gid, 0, "setgid directory: the directory's group");
    assert_eq!((inode.mtime, inode.ctime), ((50, 0), (50, 0)));
    assert_eq!(ns.inode(d).mtime, (50, 0));
    assert_eq!(ns.lookup(d, "f").unwrap().ino, ino);
    // A time ahead of the master's clock is not believed.
    let later = ns.run(&me, Op::CreateBehind(behind_by(&me, d, "g", ino + 1, i64::MAX))).unwrap();
    let Reply::Created { inode: g, .. } = later else { panic!() };
    assert!(g.mtime.0 < 1000);
    // The same create again (a retry after a lost answer) changes nothing.
    let again = ns.run(&me, Op::CreateBehind(behind_by(&me, d, "f", ino, 50))).unwrap();
    let Reply::Created { inode: same, .. } = again else { panic!() };
    assert_eq!(same, ns.inode(ino));
    assert_eq!(read::counters(&ns.db).unwrap().inodes, 4, "root, d, f, g");
}

#[test]
fn a_behind_create_refuses_numbers_not_leased_or_in_use() {
    let mut ns = Ns::new();
    let taken = ns.create(&ROOT, 1, "taken");
    assert_eq!(ns.errno(&ROOT, Op::CreateBehind(behind(1, "a", 1_000_000, 5))), libc::EINVAL);
    assert_eq!(ns.errno(&ROOT, Op::CreateBehind(behind(1, "a", taken, 5))), libc::EEXIST);
    assert!(ns.lookup(1, "a").is_none());
    let ino = lease(&mut ns, 1);
    // The kernel checked the directory's permission at create; the master
    // checks it again when the create lands.
    let d = ns.mkdir(&ROOT, 1, "ro", 0o755);
    assert_eq!(ns.errno(&ROOT, Op::CreateBehind(behind_by(&user(7), d, "a", ino, 5))), libc::EACCES);
    assert_eq!(ns.errno(&ROOT, Op::CreateBehind(behind(d, "a/b", ino, 5))), libc::EINVAL);
}

#[test]
fn a_name_taken_meanwhile_is_replaced_but_not_a_directory() {
    let mut ns = Ns::new();
    let other = ns.create(&ROOT, 1, "f");
    ns.run(&ROOT, commit(other, vec![ExtentRec { id: chunk(1), offset: 0, len: 10 }], 10)).unwrap();
    let ino = lease(&mut ns, 2);
    ns.run(&ROOT, Op::CreateBehind(behind(1, "f", ino, 5))).unwrap();
    assert_eq!(ns.lookup(1, "f").unwrap().ino, ino);
    assert!(read::inode(&ns.db, other).is_err(), "the replaced file is freed");
    assert_eq!(read::counters(&ns.db).unwrap().chunks, 0, "and its chunk reference dropped");
    ns.mkdir(&ROOT, 1, "dir", 0o755);
    assert_eq!(ns.errno(&ROOT, Op::CreateBehind(behind(1, "dir", ino + 1, 5))), libc::EISDIR);
}

#[test]
fn a_commit_carrying_its_create_lands_whole_or_not_at_all() {
    let mut ns = Ns::new();
    let d = ns.mkdir(&ROOT, 1, "d", 0o777);
    let ino = lease(&mut ns, 2);
    let with_create = |ino: u64, name: &str, epoch: u64| Op::Commit {
        ino,
        extents: vec![],
        size: 10,
        gc_epoch: epoch,
        mtime: None,
        splice: Some(Splice { keep: 0, patches: vec![(0, vec![ExtentRec { id: chunk(3), offset: 0, len: 10 }])] }),
        create: Some(behind_by(&user(5), d, name, ino, 5)),
        unsealed: false,
        attrs: None,
    };
    // Sent by the mount (root here), made as its creator.
    let r = ns.run(&ROOT, with_create(ino, "new", 0)).unwrap();
    let Reply::Attr(a) = r else { panic!("{r:?}") };
    assert_eq!((a.ino, a.size, a.uid), (ino, 10, 5));
    assert_eq!(ns.lookup(d, "new").unwrap().ino, ino);
    assert_eq!(read::extents(&ns.db, ino).unwrap().len(), 1);
    // A commit refused (its chunk 4 was collected after its epoch) takes
    // its create with it.
    ns.run(&ROOT, Op::CollectGarbage { ids: vec![chunk(4)], older_than: (i64::MAX, 0), orphans: true }).unwrap();
    let mut refused = with_create(ino + 1, "second", 0);
    if let Op::Commit { splice: Some(sp), .. } = &mut refused {
        sp.patches = vec![(0, vec![ExtentRec { id: chunk(4), offset: 0, len: 10 }])];
    }
    assert_eq!(ns.errno(&ROOT, refused), libc::EAGAIN);
    assert!(ns.lookup(d, "second").is_none(), "a refused commit creates nothing");
    assert!(read::inode(&ns.db, ino + 1).is_err());
    // The create must be of the committed inode.
    let mut mismatched = with_create(ino, "third", 0);
    if let Op::Commit { create, .. } = &mut mismatched {
        *create = Some(behind(d, "third", ino + 1, 5));
    }
    assert_eq!(ns.errno(&ROOT, mismatched), libc::EINVAL);
}
