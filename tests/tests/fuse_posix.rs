//! POSIX semantics through a real FUSE mount: errnos, permissions for other
//! uids, sticky directories, hard links, times, O_EXCL, name limits, renames,
//! and a random-operation torture test against a local reference file.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use tessera_tests::{sh, sh_as, Cluster};

fn errno<T>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

fn mode(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

#[test]
fn errnos_permissions_links_times_and_renames() {
    let c = Cluster::start(1, 3);
    let m = c.mount(&[]);
    let r = m.path();

    // ENOENT, EEXIST (O_EXCL and mkdir), ENOTEMPTY, ENOTDIR, EISDIR.
    assert_eq!(errno(std::fs::read(r.join("missing"))), libc::ENOENT);
    std::fs::write(r.join("f"), b"x").unwrap();
    assert_eq!(errno(OpenOptions::new().write(true).create_new(true).open(r.join("f"))), libc::EEXIST);
    std::fs::create_dir(r.join("d")).unwrap();
    assert_eq!(errno(std::fs::create_dir(r.join("d"))), libc::EEXIST);
    std::fs::write(r.join("d/inner"), b"y").unwrap();
    assert_eq!(errno(std::fs::remove_dir(r.join("d"))), libc::ENOTEMPTY);
    assert_eq!(errno(std::fs::create_dir(r.join("f/sub"))), libc::ENOTDIR);
    assert_eq!(errno(OpenOptions::new().write(true).open(r.join("d"))), libc::EISDIR);
    assert_eq!(errno(std::fs::remove_file(r.join("d"))), libc::EISDIR);
    // Names at their limits.
    let n255 = "n".repeat(255);
    std::fs::write(r.join(&n255), b"ok").unwrap();
    assert_eq!(std::fs::read(r.join(&n255)).unwrap(), b"ok");
    assert_eq!(errno(std::fs::write(r.join("n".repeat(256)), b"no")), libc::ENAMETOOLONG);
    // EXDEV: rename across file systems.
    assert_eq!(errno(std::fs::rename(r.join("f"), "/tmp/tessera-exdev-test")), libc::EXDEV);

    // Hard links share one inode and its attributes.
    std::fs::hard_link(r.join("f"), r.join("f-link")).unwrap();
    mode(&r.join("f"), 0o640);
    let (a, b) = (std::fs::metadata(r.join("f")).unwrap(), std::fs::metadata(r.join("f-link")).unwrap());
    assert_eq!((a.ino(), a.nlink(), a.mode() & 0o7777), (b.ino(), 2, 0o640));
    std::fs::write(r.join("f-link"), b"through the link").unwrap();
    assert_eq!(std::fs::read(r.join("f")).unwrap(), b"through the link");
    std::fs::remove_file(r.join("f")).unwrap();
    assert_eq!(std::fs::metadata(r.join("f-link")).unwrap().nlink(), 1);
    assert_eq!(errno(std::fs::hard_link(r.join("d"), r.join("d-link"))), libc::EPERM);

    // Rename corner cases: replace atomically, dir over file, into own subtree.
    std::fs::write(r.join("src"), b"new").unwrap();
    std::fs::write(r.join("dst"), b"old").unwrap();
    std::fs::rename(r.join("src"), r.join("dst")).unwrap();
    assert_eq!(std::fs::read(r.join("dst")).unwrap(), b"new");
    assert!(!r.join("src").exists());
    assert_eq!(errno(std::fs::rename(r.join("d"), r.join("dst"))), libc::ENOTDIR);
    assert_eq!(errno(std::fs::rename(r.join("dst"), r.join("d"))), libc::EISDIR);
    std::fs::create_dir(r.join("d/sub")).unwrap();
    assert_eq!(errno(std::fs::rename(r.join("d"), r.join("d/sub/x"))), libc::EINVAL);
    let (ok, out) = sh(
        r,
        "python3 -c \"
import ctypes, os, errno
libc = ctypes.CDLL(None, use_errno=True)
def rn(a, b, flags):
    r = libc.renameat2(-100, a.encode(), -100, b.encode(), flags)
    return 0 if r == 0 else ctypes.get_errno()
open('x1','w').write('one'); open('x2','w').write('two')
print(rn('x1', 'x2', 1) == errno.EEXIST)
print(rn('x1', 'x2', 2) == 0 and open('x1').read() == 'two' and open('x2').read() == 'one')
\"",
    );
    assert!(ok && !out.contains("False"), "renameat2 NOREPLACE/EXCHANGE: {out}");

    // Times: UTIME_NOW and UTIME_OMIT (touch -m leaves atime, touch -a leaves mtime).
    std::fs::write(r.join("t"), b"t").unwrap();
    let (ok, out) = sh(r, "touch -a -d @1000000000 t && touch -m -d @1200000000 t && stat -c '%X %Y' t");
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "1000000000 1200000000");
    let (ok, out) = sh(r, "touch -m t && stat -c '%X %Y' t");
    assert!(ok, "{out}");
    let v: Vec<i64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(v[0], 1_000_000_000, "atime changed by a UTIME_OMIT");
    assert!(v[1] > 1_700_000_000, "mtime not set to now");
    // relatime: a read updates an atime older than mtime.
    let (ok, out) = sh(r, "cat t >/dev/null && sleep 1 && stat -c '%X' t");
    assert!(ok, "{out}");
    assert!(out.trim().parse::<i64>().unwrap() >= v[1], "atime not updated by a read (relatime): {out}");

    // Permissions for other users, and sticky directories.
    mode(r, 0o755);
    let (ok, out) = sh_as(1000, r, "touch by-alice");
    assert!(!ok && out.contains("Permission denied"), "uid 1000 wrote into a 0755 root dir: {out}");
    std::fs::create_dir(r.join("tmp")).unwrap();
    mode(&r.join("tmp"), 0o1777);
    let (ok, out) = sh_as(1000, &r.join("tmp"), "echo mine > alice-file && chmod 644 alice-file");
    assert!(ok, "{out}");
    assert_eq!(std::fs::metadata(r.join("tmp/alice-file")).unwrap().uid(), 1000);
    let (ok, out) = sh_as(1001, &r.join("tmp"), "rm -f alice-file");
    assert!(!ok && out.contains("Operation not permitted"), "sticky dir let bob delete: {out}");
    let (ok, out) = sh_as(1001, &r.join("tmp"), "echo x >> alice-file");
    assert!(!ok && out.contains("Permission denied"), "bob wrote alice's 0644 file: {out}");
    let (ok, out) = sh_as(1001, &r.join("tmp"), "cat alice-file");
    assert!(ok && out.contains("mine"), "{out}");
    let (ok, out) = sh_as(1001, &r.join("tmp"), "chmod 777 alice-file");
    assert!(!ok, "bob chmodded alice's file: {out}");
    let (ok, out) = sh_as(1000, &r.join("tmp"), "rm alice-file");
    assert!(ok, "{out}");
    std::fs::create_dir(r.join("closed")).unwrap();
    mode(&r.join("closed"), 0o700);
    let (ok, _) = sh_as(1000, r, "ls closed");
    assert!(!ok, "uid 1000 listed a 0700 root dir");
    // chown is root's.
    std::fs::write(r.join("owned"), b"o").unwrap();
    std::os::unix::fs::chown(r.join("owned"), Some(1000), Some(1000)).unwrap();
    let md = std::fs::metadata(r.join("owned")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1000, 1000));
    let (ok, _) = sh_as(1000, r, "chown 1001 owned");
    assert!(!ok, "uid 1000 gave a file away");

    // O_EXCL and O_TRUNC through open(2).
    let f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(r.join("ex")).unwrap();
    f.write_all_at(b"0123456789", 0).unwrap();
    drop(f);
    OpenOptions::new().write(true).truncate(true).open(r.join("ex")).unwrap();
    assert_eq!(std::fs::metadata(r.join("ex")).unwrap().len(), 0);
    assert_eq!(std::fs::metadata(r.join("ex")).unwrap().mode() & 0o777, 0o600);
    assert_eq!(
        OpenOptions::new().write(true).create_new(true).open(r.join("ex")).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );

    // xattrs.
    let (ok, out) = sh(
        r,
        "python3 -c \"
import os
os.setxattr('ex', 'user.k', b'v1')
print(os.getxattr('ex', 'user.k') == b'v1', 'user.k' in os.listxattr('ex'))
os.removexattr('ex', 'user.k')
try:
    os.getxattr('ex', 'user.k'); print(False)
except OSError as e:
    print(e.errno == 61)
# No ACLs: setting one is refused (cp -a then falls back to chmod).
acl = bytes([2,0,0,0, 1,0,6,0,255,255,255,255, 4,0,4,0,255,255,255,255, 32,0,4,0,255,255,255,255])
try:
    os.setxattr('ex', 'system.posix_acl_access', acl); print(False)
except OSError as e:
    print(e.errno == 95)
\"",
    );
    assert!(ok && !out.contains("False"), "xattrs: {out}");
    // cp -a of a file with a trivial ACL keeps its mode.
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("m640"), b"x").unwrap();
    std::fs::set_permissions(src.path().join("m640"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let (ok, out) = sh(r, &format!("cp -a {}/m640 m640 && stat -c %a m640", src.path().display()));
    assert!(ok && out.trim() == "640", "cp -a mode: {out}");

    // statfs reports real capacity.
    let (ok, out) = sh(r, "df -B1 --output=size . | tail -1");
    assert!(ok && out.trim().parse::<u64>().unwrap_or(0) > 0, "statfs: {out}");
}

/// fsx-style: random writes, truncates, reads and reopens on a mount file and
/// a local reference file, compared after every step. Small chunks (64 KiB)
/// so operations cross chunk boundaries all the time.
#[test]
fn random_operation_torture() {
    let c = Cluster::start(1, 3);
    let m = c.mount(&["--chunk-size", "65536"]);
    let work = tempfile::tempdir().unwrap();
    let (tp, rp) = (m.path().join("fsx"), work.path().join("fsx"));
    let open = |p: &Path| OpenOptions::new().read(true).write(true).create(true).truncate(false).open(p).unwrap();
    let (mut t, r) = (open(&tp), open(&rp));
    let mut seed = 0x5eed_u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n.max(1)
    };
    const MAX: u64 = 1 << 20;
    for step in 0..3000 {
        let op = next(100);
        let size = r.metadata().unwrap().len();
        if op < 45 {
            let off = next(MAX);
            let len = 1 + next(70_000);
            let buf = tessera_tests::random_bytes(len as usize, step);
            eprintln!("{step}: write {off}+{len}");
            t.write_all_at(&buf, off).unwrap();
            r.write_all_at(&buf, off).unwrap();
        } else if op < 55 {
            let to = next(MAX);
            eprintln!("{step}: truncate {to}");
            t.set_len(to).unwrap();
            r.set_len(to).unwrap();
        } else if op < 62 {
            // Close and reopen (a commit, then a fresh view).
            eprintln!("{step}: reopen");
            drop(t);
            t = open(&tp);
        } else {
            let off = next(size + 10);
            let len = next(200_000);
            let mut a = vec![0u8; len as usize];
            let mut b = vec![0u8; len as usize];
            let na = read_full(&t, &mut a, off);
            let nb = read_full(&r, &mut b, off);
            assert_eq!(na, nb, "step {step}: read length at {off}+{len}");
            assert!(a[..na] == b[..nb], "step {step}: content differs at {off}+{len}");
        }
        assert_eq!(t.metadata().unwrap().len(), r.metadata().unwrap().len(), "step {step}: size");
    }
    drop(t);
    assert!(std::fs::read(&tp).unwrap() == std::fs::read(&rp).unwrap(), "final content differs");
}

fn read_full(f: &std::fs::File, buf: &mut [u8], off: u64) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], off + n as u64).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// With no master, calls fail with EIO after the configured timeout and work
/// again once masters are back; SIGTERM unmounts cleanly.
#[test]
fn eio_without_masters_then_recovery_and_sigterm_unmount() {
    use std::io::Write;
    let mut c = Cluster::start(1, 3);
    // A full attribute lifetime: the directory's listing below lasts.
    let mut m = c.mount(&["--timeout", "3", "--attr-ttl-ms", "1000"]);
    std::fs::write(m.path().join("before"), b"x").unwrap();
    let d = m.path().join("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("warm"), b"w").unwrap();
    // Lookups of missing names: the mount lists d and answers from that, so
    // no lookup of a new name below gets the creates before it sent.
    for i in 0..5 {
        assert_eq!(errno(std::fs::metadata(d.join(format!("miss{i}")))), libc::ENOENT);
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    // New files whose creates are written behind (the directory's
    // attributes are fresh from the create before), open when the master dies.
    let mut held: Vec<std::fs::File> =
        (0..8).map(|i| std::fs::File::create(d.join(format!("held{i}"))).unwrap()).collect();
    for f in &mut held {
        f.write_all(b"z").unwrap();
    }
    c.masters[0].kill();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // attribute cache TTL
    let t = std::time::Instant::now();
    assert_eq!(errno(std::fs::metadata(m.path().join("other"))), libc::EIO);
    assert!(t.elapsed() < std::time::Duration::from_secs(20), "EIO took {:?}", t.elapsed());
    // The last one's fsync cannot commit it: EIO, and the files are given
    // up. Once one create found no master, the others are not each tried
    // for the whole timeout (8 x 3 s) before it.
    let t = std::time::Instant::now();
    assert_eq!(errno(held[7].sync_all()), libc::EIO);
    assert!(t.elapsed() < std::time::Duration::from_secs(20), "EIO took {:?}", t.elapsed());
    drop(held);
    c.start_all();
    assert_eq!(std::fs::read(m.path().join("before")).unwrap(), b"x");
    std::fs::write(m.path().join("after"), b"y").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // the kernel's entry lifetime
    for i in 0..8 {
        assert_eq!(errno(std::fs::metadata(d.join(format!("held{i}")))), libc::ENOENT, "held{i}");
    }
    // Creates are written behind again, and land.
    for i in 0..10 {
        std::fs::write(m.path().join(format!("again{i}")), b"w").unwrap();
    }
    assert_eq!(std::fs::read(m.path().join("again9")).unwrap(), b"w");
    assert!(m.terminate(), "SIGTERM did not unmount cleanly: {}", m.log());
}
