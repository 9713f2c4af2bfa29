//! Write-behind unlinks through a real mount: acknowledged at once, sent in
//! batches, never visible out of order on their own mount, durable once the
//! directory is fsynced, and undone in the mount's view when the master
//! refuses one.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};
use tessera_tests::*;

#[test]
fn unlinks_behind_are_in_order_on_their_mount_and_durable_at_fsync() {
    let c = Cluster::start(3, 3);
    let mut m1 = c.mount(&["--unlink-behind"]);
    let m2 = c.mount(&[]);
    let d = m1.path().join("d");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    for i in 0..300 {
        std::fs::write(d.join(format!("f{i:03}")), random_bytes(50 + i, i as u64)).unwrap();
    }
    for i in 0..40 {
        std::fs::write(d.join("sub").join(format!("s{i}")), b"x").unwrap();
    }
    std::fs::write(d.join("h"), b"linked").unwrap();
    std::fs::hard_link(d.join("h"), d.join("h2")).unwrap();

    // Unlink everything as fast as the kernel sends it.
    for i in 0..300 {
        std::fs::remove_file(d.join(format!("f{i:03}"))).unwrap();
    }
    std::fs::remove_file(d.join("h")).unwrap();
    // At once, on the same mount: nothing unlinked is seen any more.
    for i in (0..300).step_by(7) {
        assert_eq!(errno_of(&d.join(format!("f{i:03}"))), Some(libc::ENOENT), "f{i:03}");
    }
    assert_eq!(names(&d), vec!["h2", "sub"]);
    assert_eq!(std::fs::metadata(d.join("h2")).unwrap().nlink(), 1, "the other link's count");
    // A name unlinked a moment ago can be created anew.
    for i in 0..20 {
        std::fs::write(d.join(format!("f{i:03}")), format!("new {i}")).unwrap();
    }
    for i in 0..20 {
        assert_eq!(std::fs::read_to_string(d.join(format!("f{i:03}"))).unwrap(), format!("new {i}"));
    }
    // A directory emptied by unlinks just acknowledged can be removed.
    for i in 0..40 {
        std::fs::remove_file(d.join("sub").join(format!("s{i}"))).unwrap();
    }
    std::fs::remove_dir(d.join("sub")).unwrap();
    // More unlinks, then fsync of the directory: from then on they survive
    // the mount process being killed.
    for i in 0..20 {
        std::fs::remove_file(d.join(format!("f{i:03}"))).unwrap();
    }
    std::fs::File::open(&d).unwrap().sync_all().unwrap();
    let pid = m1.pid();
    // SAFETY: a plain kill(2) of the mount process this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    m1.unmount();
    let d2 = m2.path().join("d");
    eventually(Duration::from_secs(5), "the other mount sees only h2", || names(&d2) == vec!["h2"]);
    assert_eq!(std::fs::read(d2.join("h2")).unwrap(), b"linked");
    assert_eq!(std::fs::metadata(d2.join("h2")).unwrap().nlink(), 1);
}

/// The master refuses an unlink the mount already acknowledged when another
/// mount took the permission away meanwhile: the file stays, and the mount
/// that acknowledged it shows it again.
#[test]
fn a_refused_unlink_behind_leaves_the_file_and_the_mount_shows_it_again() {
    let c = Cluster::start(3, 3);
    // A long attribute lifetime: the first mount's kernel keeps believing
    // the directory is writable for everyone.
    let m1 = c.mount(&["--attr-ttl-ms", "30000", "--unlink-behind"]);
    let m2 = c.mount(&[]);
    let d1 = m1.path().join("open");
    std::fs::create_dir(&d1).unwrap();
    std::fs::set_permissions(&d1, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(d1.join("x"), b"keep me").unwrap();
    std::fs::set_permissions(d1.join("x"), std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(std::fs::metadata(d1.join("x")).is_ok());
    std::fs::set_permissions(m2.path().join("open"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (ok, out) = sh_as(65534, m1.path(), "rm -f open/x");
    eprintln!("write-behind path taken: {ok}");
    if !ok {
        // The kernel saw the new mode after all (its cache was dropped):
        // then the refusal is synchronous, which is also right.
        assert!(out.contains("Permission denied"), "{out}");
    }
    eventually(Duration::from_secs(10), "x is back on the first mount", || {
        std::fs::read(d1.join("x")).map(|b| b == b"keep me").unwrap_or(false)
    });
    assert_eq!(std::fs::read(m2.path().join("open/x")).unwrap(), b"keep me");
    if ok {
        assert!(m1.log().contains("write-behind unlink not applied"), "the refusal is logged");
    }
}

/// `--sync-unlink`: every unlink waits for its commit, so another mount
/// sees it as soon as its own caches allow, and a refusal is the unlink's
/// own error.
#[test]
fn sync_unlink_reports_the_masters_refusal() {
    let c = Cluster::start(3, 3);
    let m1 = c.mount(&["--attr-ttl-ms", "30000", "--sync-unlink"]);
    let m2 = c.mount(&[]);
    let d1 = m1.path().join("open");
    std::fs::create_dir(&d1).unwrap();
    std::fs::set_permissions(&d1, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(d1.join("x"), b"keep me").unwrap();
    assert!(std::fs::metadata(d1.join("x")).is_ok());
    std::fs::set_permissions(m2.path().join("open"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (ok, out) = sh_as(65534, m1.path(), "rm -f open/x");
    assert!(!ok && out.contains("Permission denied"), "{out}");
    assert_eq!(std::fs::read(d1.join("x")).unwrap(), b"keep me");
    std::fs::remove_file(d1.join("x")).unwrap();
    eventually(Duration::from_secs(5), "the other mount sees x gone", || {
        errno_of(&m2.path().join("open/x")) == Some(libc::ENOENT)
    });
}

/// Inodes in use, from statfs (the mount reports them over a fixed free count).
fn inodes_in_use(m: &Path) -> u64 {
    let (ok, out) = sh(m, "stat -f -c %c .");
    assert!(ok, "{out}");
    out.trim().parse::<u64>().unwrap() - 1_000_000_000
}

/// POSIX keeps a file unlinked (or renamed over) while open until its last
/// close: readable, writable, fstat showing no links. Freed after it.
#[test]
fn a_file_unlinked_while_open_lives_until_its_last_close() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let c = Cluster::start(3, 3);
    let m = c.mount(&[]);
    let before = inodes_in_use(m.path());
    let p = m.path().join("o");
    std::fs::write(&p, random_bytes(3000, 1)).unwrap();
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    assert_eq!(errno_of(&p), Some(libc::ENOENT));
    assert_eq!(f.metadata().unwrap().nlink(), 0);
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).unwrap();
    assert_eq!(buf, random_bytes(3000, 1));
    f.write_all(b"appended").unwrap();
    f.sync_all().unwrap();
    f.seek(SeekFrom::Start(2990)).unwrap();
    buf.clear();
    f.read_to_end(&mut buf).unwrap();
    assert_eq!(&buf[10..], b"appended");
    assert_eq!(f.metadata().unwrap().len(), 3008);
    // Renamed over while open: the same.
    std::fs::write(m.path().join("t"), b"old target").unwrap();
    std::fs::write(m.path().join("s"), b"source").unwrap();
    let mut t = std::fs::File::open(m.path().join("t")).unwrap();
    std::fs::rename(m.path().join("s"), m.path().join("t")).unwrap();
    assert_eq!(t.metadata().unwrap().nlink(), 0);
    buf.clear();
    t.read_to_end(&mut buf).unwrap();
    assert_eq!(buf, b"old target");
    assert_eq!(std::fs::read(m.path().join("t")).unwrap(), b"source");
    assert_eq!(inodes_in_use(m.path()), before + 3, "t, and the two open orphans");
    drop(f);
    drop(t);
    eventually(Duration::from_secs(10), "the orphans are freed after their last close", || {
        inodes_in_use(m.path()) == before + 1
    });
}

/// With no master answering, an unlink already acknowledged is lost once
/// its batch gives up (logged), and from then on unlinks wait for their
/// commit and fail with EIO, until a master answers again.
#[test]
fn without_a_master_unlinks_stop_being_written_behind() {
    let mut c = Cluster::start(1, 3);
    let m = c.mount(&["--attr-ttl-ms", "30000", "--timeout", "3", "--unlink-behind"]);
    for n in ["f1", "f2", "f3"] {
        std::fs::write(m.path().join(n), n).unwrap();
        assert!(std::fs::metadata(m.path().join(n)).is_ok());
    }
    c.masters[0].kill();
    std::fs::remove_file(m.path().join("f1")).unwrap();
    eventually(Duration::from_secs(20), "the batch gives up", || m.log().contains("write-behind unlink not applied"));
    let t = Instant::now();
    let e = std::fs::remove_file(m.path().join("f2")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert!(t.elapsed() >= Duration::from_secs(2), "the unlink waited for a master");
    c.start_all();
    eventually(Duration::from_secs(30), "the master is back", || std::fs::read(m.path().join("f3")).is_ok());
    assert_eq!(std::fs::read(m.path().join("f1")).unwrap(), b"f1", "the lost unlink left f1");
    assert_eq!(std::fs::read(m.path().join("f2")).unwrap(), b"f2");
    std::fs::remove_file(m.path().join("f2")).unwrap();
    eventually(Duration::from_secs(10), "f2 is gone", || errno_of(&m.path().join("f2")) == Some(libc::ENOENT));
}

/// A file kept open after its unlink outlives the masters' orphan age as
/// long as its mount renews it; one whose mount died is freed after it.
#[test]
fn orphans_are_renewed_while_open_and_freed_when_their_mount_dies() {
    use std::io::Read;
    let c = Cluster::start_with(Opts {
        masters: 3,
        chunkservers: 3,
        master_args: ["--orphan-file-max-age-s", "3", "--repair-interval-ms", "300"].map(String::from).to_vec(),
        ..Default::default()
    });
    let m1 = c.mount(&["--orphan-renew-s", "1"]);
    let mut m2 = c.mount(&["--orphan-renew-s", "1"]);
    let before = inodes_in_use(m1.path());
    std::fs::write(m1.path().join("kept"), random_bytes(5000, 7)).unwrap();
    std::fs::write(m1.path().join("abandoned"), b"x").unwrap();
    let mut kept = std::fs::File::open(m1.path().join("kept")).unwrap();
    std::fs::remove_file(m1.path().join("kept")).unwrap();
    let abandoned = std::fs::File::open(m2.path().join("abandoned")).unwrap();
    std::fs::remove_file(m2.path().join("abandoned")).unwrap();
    assert_eq!(abandoned.metadata().unwrap().nlink(), 0);
    eventually(Duration::from_secs(10), "both orphans counted", || inodes_in_use(m1.path()) == before + 2);
    // SAFETY: a plain kill(2) of the mount process this test started.
    unsafe { libc::kill(m2.pid() as i32, libc::SIGKILL) };
    drop(abandoned);
    m2.unmount();
    eventually(Duration::from_secs(30), "the abandoned orphan is freed", || inodes_in_use(m1.path()) == before + 1);
    // Twice the orphan age later, the renewed one is still whole.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(inodes_in_use(m1.path()), before + 1);
    assert_eq!(kept.metadata().unwrap().nlink(), 0);
    let mut buf = Vec::new();
    kept.read_to_end(&mut buf).unwrap();
    assert_eq!(buf, random_bytes(5000, 7));
    drop(kept);
    eventually(Duration::from_secs(10), "freed after its last close", || inodes_in_use(m1.path()) == before);
}
