//! Write-behind creates through a real mount: a new file's create rides on
//! its first commit (one Raft entry for a small file), is never visible out
//! of order on its own mount, reaches other mounts at close (close-to-open)
//! or within an attribute lifetime, is durable at fsync, and takes over a
//! name another mount created meanwhile.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;
use tessera_tests::*;

/// The highest Raft commit index among the masters.
fn raft_index(c: &Cluster) -> u64 {
    let s = c.status();
    let masters = s["masters"].as_array().cloned().unwrap_or_default();
    masters.iter().filter_map(|m| m["commit_index"].as_u64()).max().expect("no master answered")
}

/// Two mounts; the first with the default attribute lifetime (1 s: the
/// tests' 200 ms would let its knowledge of a directory lapse between
/// steps), where directory `d` was made, and a file `warm` put in it by the
/// CLI (synchronously: its inode number comes after the mounts' leased
/// ones). Returns the mounts, `d` on the first, and the inode number of
/// `warm`.
fn writer_and_reader(c: &Cluster, extra: &[&str]) -> (Mount, Mount, std::path::PathBuf, u64) {
    let mut args = vec!["--attr-ttl-ms", "1000"];
    args.extend_from_slice(extra);
    let m1 = c.mount(&args);
    let m2 = c.mount(&[]);
    let d = m1.path().join("d");
    std::fs::create_dir(&d).unwrap();
    let local = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(local.path(), b"w").unwrap();
    c.ok(&["put", local.path().to_str().unwrap(), "/d/warm"]);
    let warm = std::fs::metadata(d.join("warm")).unwrap().ino();
    // The put changed `d`: the mount learns its attributes again.
    std::fs::metadata(&d).unwrap();
    (m1, m2, d, warm)
}

/// A create was held (written behind): its number came from the lease the
/// mount got when it started, below the numbers of synchronous creates.
fn assert_held(p: &Path, warm: u64) {
    let ino = std::fs::metadata(p).unwrap().ino();
    assert!(ino < warm, "{} (inode {ino}) was created synchronously", p.display());
}

#[test]
fn small_files_cost_one_raft_entry_and_are_seen_at_close() {
    let c = Cluster::start(3, 3);
    let (m1, m2, d, warm) = writer_and_reader(&c, &[]);
    let before = raft_index(&c);
    let n = 200;
    for i in 0..n {
        std::fs::write(d.join(format!("f{i:03}")), random_bytes(100 + i, i as u64)).unwrap();
    }
    let used = raft_index(&c) - before;
    assert_held(&d.join("f000"), warm);
    // One entry per file, and a few for everything else going on (leases,
    // heartbeats of state, a create sent on its own).
    assert!(used < n as u64 + n as u64 / 4, "{used} Raft entries for {n} new files");
    // Every file is there, with its bytes, on the other mount at once
    // (close-to-open), and stat shows what the first mount was told.
    for i in 0..n {
        let p = format!("d/f{i:03}");
        assert_eq!(std::fs::read(m2.path().join(&p)).unwrap(), random_bytes(100 + i, i as u64), "{p}");
        let (a, b) = (std::fs::metadata(m1.path().join(&p)).unwrap(), std::fs::metadata(m2.path().join(&p)).unwrap());
        assert_eq!((a.ino(), a.mode(), a.uid(), a.nlink()), (b.ino(), b.mode(), b.uid(), b.nlink()), "{p}");
    }
    assert_eq!(names(&m2.path().join("d")).len(), n + 1);
}

#[test]
fn a_file_held_open_is_listed_here_and_reaches_other_mounts_within_a_lifetime() {
    let c = Cluster::start(3, 3);
    let (_m1, m2, d, warm) = writer_and_reader(&c, &[]);
    let mut f = std::fs::File::create(d.join("open")).unwrap();
    f.write_all(b"not yet committed").unwrap();
    assert_held(&d.join("open"), warm);
    let _g = std::fs::File::create(d.join("listed")).unwrap();
    assert_held(&d.join("listed"), warm);
    assert_eq!(std::fs::metadata(d.join("open")).unwrap().len(), 17);
    // Another mount sees the (still empty) file within an attribute
    // lifetime, though nothing on the first mount asked for it.
    eventually(Duration::from_secs(5), "the other mount sees the name", || m2.path().join("d/open").exists());
    assert_eq!(std::fs::metadata(m2.path().join("d/open")).unwrap().len(), 0);
    // Its own mount lists them.
    assert_eq!(names(&d), vec!["listed", "open", "warm"]);
    f.write_all(b", now it is").unwrap();
    drop(f);
    // The other mount's kernel may keep the size it saw for an attribute
    // lifetime; then it reads what was closed.
    eventually(Duration::from_secs(5), "the other mount reads the closed file", || {
        std::fs::read(m2.path().join("d/open")).is_ok_and(|b| b == b"not yet committed, now it is")
    });
}

#[test]
fn changes_to_a_held_file_before_its_close_land_in_order() {
    let c = Cluster::start(3, 3);
    let (m1, m2, d, warm) = writer_and_reader(&c, &[]);

    // Renamed while open and unflushed.
    let mut a = std::fs::File::create(d.join("a")).unwrap();
    a.write_all(b"renamed").unwrap();
    assert_held(&d.join("a"), warm);
    std::fs::rename(d.join("a"), d.join("b")).unwrap();
    drop(a);
    // Mode changed, hard-linked, then written and closed.
    let mut e = std::fs::File::create(d.join("e")).unwrap();
    assert_held(&d.join("e"), warm);
    std::fs::set_permissions(d.join("e"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::hard_link(d.join("e"), d.join("e2")).unwrap();
    e.write_all(b"linked").unwrap();
    drop(e);
    // fchmod right after the create, closed without data (rsync's temp
    // files): the held create carries the mode.
    let m = std::fs::File::create(d.join("m")).unwrap();
    m.set_permissions(std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_held(&d.join("m"), warm);
    assert_eq!(std::fs::metadata(d.join("m")).unwrap().mode() & 0o7777, 0o640, "this mount's stat");
    drop(m);
    // Unlinked while open: gone everywhere, and its data never shows up.
    let mut u = std::fs::File::create(d.join("u")).unwrap();
    assert_held(&d.join("u"), warm);
    u.write_all(b"doomed").unwrap();
    std::fs::remove_file(d.join("u")).unwrap();
    assert_eq!(errno_of(&d.join("u")), Some(libc::ENOENT));
    drop(u);
    // An old file unlinked, then a new one of the same name: the new one wins.
    std::fs::write(d.join("same"), b"old").unwrap();
    std::fs::remove_file(d.join("same")).unwrap();
    std::fs::write(d.join("same"), b"new").unwrap();
    assert_held(&d.join("same"), warm);
    // A directory filled with new files, emptied and removed at once.
    std::fs::create_dir(d.join("t")).unwrap();
    for i in 0..20 {
        std::fs::write(d.join(format!("t/x{i}")), b"x").unwrap();
    }
    for i in 0..20 {
        std::fs::remove_file(d.join(format!("t/x{i}"))).unwrap();
    }
    std::fs::remove_dir(d.join("t")).unwrap();
    std::fs::File::open(&d).unwrap().sync_all().unwrap();

    let d2 = m2.path().join("d");
    eventually(Duration::from_secs(5), "the other mount's view", || {
        names(&d2) == vec!["b", "e", "e2", "m", "same", "warm"]
    });
    assert_eq!(std::fs::read(d2.join("b")).unwrap(), b"renamed");
    assert_eq!(std::fs::read(d2.join("e2")).unwrap(), b"linked");
    let e = std::fs::metadata(d2.join("e")).unwrap();
    assert_eq!((e.mode() & 0o7777, e.nlink()), (0o600, 2));
    let m = std::fs::metadata(d2.join("m")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.len()), (0o640, 0));
    assert_eq!(std::fs::read(d2.join("same")).unwrap(), b"new");
    assert!(!m1.log().contains("write-behind create not applied"), "{}", m1.log());
}

#[test]
fn an_fsynced_create_survives_the_mount_being_killed() {
    let c = Cluster::start(3, 3);
    let (mut m1, m2, d, warm) = writer_and_reader(&c, &[]);
    let mut f = std::fs::File::create(d.join("kept")).unwrap();
    f.write_all(b"fsynced").unwrap();
    assert_held(&d.join("kept"), warm);
    f.sync_all().unwrap();
    // An empty file, fsynced: its create alone lands.
    let g = std::fs::File::create(d.join("empty")).unwrap();
    assert_held(&d.join("empty"), warm);
    g.sync_all().unwrap();
    let pid = m1.pid();
    // SAFETY: a plain kill(2) of the mount process this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    drop((f, g));
    m1.unmount();
    let d2 = m2.path().join("d");
    eventually(Duration::from_secs(5), "the other mount sees both", || {
        d2.join("kept").exists() && d2.join("empty").exists()
    });
    assert_eq!(std::fs::read(d2.join("kept")).unwrap(), b"fsynced");
    assert_eq!(std::fs::metadata(d2.join("empty")).unwrap().len(), 0);
}

/// Two mounts create the same name: the one whose create is held takes the
/// name over when its commit lands (the later writer wins, no error).
#[test]
fn a_name_another_mount_created_is_seen_by_a_create_here() {
    let c = Cluster::start(3, 3);
    // A long attribute lifetime: only the cache lease's revoke tells the
    // first mount that the name now exists.
    let (_m1, m2, d, _warm) = writer_and_reader(&c, &["--attr-ttl-ms", "30000"]);
    // Lookups of missing names: the first mount lists the directory and
    // answers from that listing (x absent).
    for n in ["x", "y1", "y2", "y3", "y4", "y5"] {
        assert_eq!(errno_of(&d.join(n)), Some(libc::ENOENT));
    }
    std::fs::write(m2.path().join("d/x"), b"from the second mount").unwrap();
    let theirs = std::fs::metadata(m2.path().join("d/x")).unwrap().ino();
    // O_CREAT without O_EXCL on the first mount opens the second's file
    // (the revoke dropped the listing that said "no x"): no new inode.
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(d.join("x")).unwrap();
    f.write_all(b"from the first mount").unwrap();
    assert_eq!(std::fs::metadata(d.join("x")).unwrap().ino(), theirs);
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(std::fs::read(m2.path().join("d/x")).unwrap(), b"from the first mount");
    assert_eq!(names(&m2.path().join("d")), vec!["warm", "x"]);
    // O_EXCL is never held: it fails where the name exists.
    let e = std::fs::OpenOptions::new().write(true).create_new(true).open(d.join("x")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
}

/// `--sync-create`: each create waits for its own commit (two Raft entries
/// for a small file).
#[test]
fn sync_create_commits_each_create_on_its_own() {
    let c = Cluster::start(3, 3);
    let (_m1, _m2, d, warm) = writer_and_reader(&c, &["--sync-create"]);
    let before = raft_index(&c);
    for i in 0..50 {
        std::fs::write(d.join(format!("f{i}")), b"data").unwrap();
    }
    let used = raft_index(&c) - before;
    assert!(used >= 100, "{used} Raft entries for 50 files created synchronously");
    assert_eq!(names(&d).len(), 51);
    assert!(std::fs::metadata(d.join("f0")).unwrap().ino() > warm, "f0 was not created synchronously");
}
