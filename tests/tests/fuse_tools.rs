//! Ordinary tools on a real FUSE mount of a real cluster.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use tessera_tests::{errno_of, random_bytes, sh, sh_as, Cluster};

/// A tree with files of many sizes, symlinks, hard links, empty dirs, modes.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(root.join("private")).unwrap();
    for (i, size) in [0usize, 1, 4095, 4096, (1 << 20) + 3, (5 << 20) + 7, 300_000].iter().enumerate() {
        std::fs::write(root.join(format!("a/f{i}")), random_bytes(*size, 40 + i as u64)).unwrap();
    }
    std::fs::write(root.join("a/b/c/deep"), b"deep file\n").unwrap();
    std::fs::hard_link(root.join("a/f2"), root.join("a/b/hardlink")).unwrap();
    std::os::unix::fs::symlink("../f1", root.join("a/b/rel-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
    std::fs::set_permissions(root.join("a/f1"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(root.join("a/f3"), std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(root.join("a/f4"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(root.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<(String, u32, u64, u64)>) {
    let p = root.join(rel);
    let md = std::fs::symlink_metadata(&p).unwrap();
    let size = if md.is_dir() { 0 } else { md.len() };
    out.push((rel.display().to_string(), md.mode(), size, md.nlink()));
    if md.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        for n in names {
            walk(root, &rel.join(n), out);
        }
    }
}

#[test]
fn cp_a_tar_rsync_git_and_a_build() {
    let c = Cluster::start(3, 3);
    let m = c.mount(&[]);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src);
    let mnt = m.path();

    // cp -a: identical content, modes, sizes and link counts.
    let (ok, out) = sh(
        work.path(),
        &format!("cp -a src {}/copy && diff -r --no-dereference src {}/copy", mnt.display(), mnt.display()),
    );
    assert!(ok, "cp -a / diff: {out}\n{}", m.log());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    walk(&src, Path::new(""), &mut a);
    walk(&mnt.join("copy"), Path::new(""), &mut b);
    assert_eq!(a, b, "stat of the copy differs");

    // tar out of and into the mount.
    let (ok, out) = sh(mnt, "tar cf /tmp/tessera-test-$$.tar copy && mkdir untar && tar xf /tmp/tessera-test-$$.tar -C untar && rm /tmp/tessera-test-$$.tar && diff -r --no-dereference copy untar/copy");
    assert!(ok, "tar: {out}");

    // rsync twice: the second run transfers nothing.
    let (ok, out) =
        sh(work.path(), &format!("rsync -a src/ {m}/rs/ && rsync -a --stats src/ {m}/rs/", m = mnt.display()));
    assert!(ok, "rsync: {out}");
    assert!(out.contains("Number of regular files transferred: 0"), "second rsync transferred files: {out}");

    // git init/add/commit/status/log inside the mount.
    let (ok, out) = sh(
        mnt,
        "mkdir repo && cd repo && git init -q && git config user.email t@t && git config user.name t \
         && cp -r ../copy/a . && git add -A && git commit -qm first && echo more >> a/f1 && git commit -qam second \
         && git status --porcelain && git log --oneline | wc -l",
    );
    assert!(ok, "git: {out}");
    assert!(out.trim_end().ends_with('2'), "git log: {out}");

    // Compile and run a C program inside the mount.
    let (ok, out) = sh(
        mnt,
        "mkdir cc && cd cc && cat > m.c <<'EOF'\n#include <stdio.h>\nint main(void) { printf(\"built %d\\n\", 6 * 7); return 0; }\nEOF\n\
         printf 'm: m.c\\n\\tgcc -O1 -o m m.c\\n' > Makefile && make -s && ./m",
    );
    assert!(ok && out.contains("built 42"), "build: {out}");
}

#[test]
fn two_mounts_close_to_open_and_namespace_changes() {
    let c = Cluster::start(3, 3);
    let m1 = c.mount(&[]);
    let m2 = c.mount(&[]);
    let data = random_bytes(3 << 20, 9);
    std::fs::write(m1.path().join("shared"), &data).unwrap();
    // close() on mount 1 made it durable and committed: mount 2 opens and sees it.
    assert!(std::fs::read(m2.path().join("shared")).unwrap() == data);
    // Overwrite part of it on mount 2; mount 1 sees the change after reopen.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(m2.path().join("shared")).unwrap();
        f.write_all_at(b"XYZ", 1 << 20).unwrap();
    }
    let got = std::fs::read(m1.path().join("shared")).unwrap();
    assert_eq!(&got[(1 << 20)..(1 << 20) + 3], b"XYZ");
    assert_eq!(got.len(), data.len());
    // A rename and an unlink on one mount are seen by the other.
    std::fs::rename(m1.path().join("shared"), m1.path().join("renamed")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400)); // attr/entry TTL in tests
    assert!(!m2.path().join("shared").exists());
    assert_eq!(std::fs::read(m2.path().join("renamed")).unwrap().len(), data.len());
    std::fs::remove_file(m2.path().join("renamed")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert!(!m1.path().join("renamed").exists());

    // flock and fcntl locks taken through one mount exclude the other.
    std::fs::write(m1.path().join("lockfile"), b"0123456789").unwrap();
    let script = r#"
import fcntl, subprocess, sys
a, b = sys.argv[1], sys.argv[2]
fa = open(a, 'r+'); fcntl.flock(fa, fcntl.LOCK_EX)
fb = open(b, 'r+')
try:
    fcntl.flock(fb, fcntl.LOCK_EX | fcntl.LOCK_NB); print('flock-not-excluded')
except BlockingIOError:
    print('flock-excluded')
fcntl.flock(fa, fcntl.LOCK_UN)
fcntl.flock(fb, fcntl.LOCK_EX | fcntl.LOCK_NB); print('flock-after-unlock'); fcntl.flock(fb, fcntl.LOCK_UN)
fcntl.lockf(fa, fcntl.LOCK_EX, 100, 0)
child = '''
import fcntl, sys
f = open(sys.argv[1], 'r+')
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 11, 50); print('range-not-excluded')
except OSError:
    print('range-excluded')
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 200); print('range-disjoint-ok')
'''
print(subprocess.run([sys.executable, '-c', child, b], capture_output=True, text=True).stdout)
fa.close()
print(subprocess.run([sys.executable, '-c', child.replace('range-', 'after-close-'), b], capture_output=True, text=True).stdout)
"#;
    let (ok, out) = sh(
        m1.path(),
        &format!("python3 -c \"$S\" {} {}", m1.path().join("lockfile").display(), m2.path().join("lockfile").display())
            .replace("$S", &script.replace('"', "\\\"")),
    );
    assert!(ok, "lock script: {out}");
    for want in
        ["flock-excluded", "flock-after-unlock", "range-excluded", "range-disjoint-ok", "after-close-not-excluded"]
    {
        assert!(out.contains(want), "locks: missing {want}: {out}");
    }
}

#[test]
fn write_survives_chunkserver_sigkill() {
    let mut c = Cluster::start(3, 4);
    let m = c.mount(&[]);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("big");
    let size = 500usize << 20;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&src).unwrap();
        for i in 0..(size >> 20) {
            f.write_all(&random_bytes(1 << 20, 7_000 + i as u64)).unwrap();
        }
    }
    let dst = m.path().join("big");
    let writer = std::thread::spawn(move || {
        let (ok, out) =
            sh(Path::new("/"), &format!("dd if={} of={} bs=1M status=none conv=fsync", src.display(), dst.display()));
        (ok, out, src)
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    c.chunkservers[1].kill();
    let (ok, out, src) = writer.join().unwrap();
    assert!(ok, "write through the mount failed: {out}\n{}", m.log());
    // Read back cold, through the kernel read-ahead the mount set (4 MiB,
    // not FUSE's 128 KiB).
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(m.path()).unwrap().dev();
    let ra = std::fs::read_to_string(format!("/sys/class/bdi/{}:{}/read_ahead_kb", libc::major(dev), libc::minor(dev)));
    assert_eq!(ra.unwrap().trim(), "4096", "{}", m.log());
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
    let (ok, out) = sh(Path::new("/"), &format!("cmp {} {}", src.display(), m.path().join("big").display()));
    assert!(ok, "content differs: {out}");
}

/// Forgets the kernel's dentries and inodes, so the next stat of a name
/// reaches the mount (and its lookup cache) again.
fn drop_dentries() {
    std::fs::write("/proc/sys/vm/drop_caches", "2").expect("drop_caches needs root");
}

/// The mount answers lookups in a directory it has listed (after a run of
/// lookups there) for one attribute lifetime: its own changes show at once,
/// another mount's within the lifetime, and search permission still counts.
#[test]
fn lookup_cache_sees_own_changes_at_once_and_others_within_ttl() {
    let c = Cluster::start(3, 3);
    // A long lifetime, so every check below runs while the listing is fresh.
    let m1 = c.mount(&["--attr-ttl-ms", "4000"]);
    let m2 = c.mount(&[]);
    let d1 = m1.path().join("d");
    std::fs::create_dir(&d1).unwrap();
    for i in 0..40 {
        std::fs::write(d1.join(format!("f{i}")), random_bytes(100 + i, i as u64)).unwrap();
    }
    let listed = |check: bool| {
        drop_dentries();
        for i in 0..40 {
            let md = std::fs::metadata(d1.join(format!("f{i}")));
            if check {
                assert_eq!(md.unwrap().len(), 100 + i as u64, "f{i}");
            }
        }
        // The listing is read in the background.
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop_dentries();
    };
    listed(true);
    // Own changes, each seen through a fresh lookup.
    std::fs::remove_file(d1.join("f1")).unwrap();
    drop_dentries();
    assert_eq!(errno_of(&d1.join("f1")), Some(libc::ENOENT));
    std::fs::write(d1.join("new"), b"0123456789").unwrap();
    drop_dentries();
    assert_eq!(std::fs::metadata(d1.join("new")).unwrap().len(), 10);
    std::fs::rename(d1.join("f2"), d1.join("f2b")).unwrap();
    drop_dentries();
    assert_eq!(errno_of(&d1.join("f2")), Some(libc::ENOENT));
    assert_eq!(std::fs::metadata(d1.join("f2b")).unwrap().len(), 102);
    // rename over an existing name: the replaced file's link goes.
    std::fs::hard_link(d1.join("f4"), d1.join("f4-link")).unwrap();
    std::fs::rename(d1.join("f3"), d1.join("f4")).unwrap();
    drop_dentries();
    assert_eq!(std::fs::metadata(d1.join("f4")).unwrap().len(), 103);
    assert_eq!(std::fs::metadata(d1.join("f4-link")).unwrap().nlink(), 1);
    // Hard links: unlinking one name updates the other's link count.
    std::fs::hard_link(d1.join("f5"), d1.join("f5-link")).unwrap();
    drop_dentries();
    assert_eq!(std::fs::metadata(d1.join("f5")).unwrap().nlink(), 2);
    std::fs::remove_file(d1.join("f5-link")).unwrap();
    drop_dentries();
    assert_eq!(std::fs::metadata(d1.join("f5")).unwrap().nlink(), 1);
    // Writes and truncates: new sizes and times.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(d1.join("f6")).unwrap();
        f.write_all(&[7u8; 1000]).unwrap();
    }
    drop_dentries();
    assert_eq!(std::fs::metadata(d1.join("f6")).unwrap().len(), 1106);
    std::fs::OpenOptions::new().write(true).open(d1.join("f7")).unwrap().set_len(3).unwrap();
    drop_dentries();
    assert_eq!(std::fs::metadata(d1.join("f7")).unwrap().len(), 3);
    std::fs::set_permissions(d1.join("f8"), std::fs::Permissions::from_mode(0o600)).unwrap();
    drop_dentries();
    assert_eq!(std::fs::metadata(d1.join("f8")).unwrap().mode() & 0o777, 0o600);
    // The directory's own attributes after changes in it (post-op attributes).
    let before = std::fs::metadata(&d1).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::create_dir(d1.join("sub")).unwrap();
    let after = std::fs::metadata(&d1).unwrap();
    assert_eq!(after.nlink(), before.nlink() + 1);
    assert!(after.mtime_nsec() != before.mtime_nsec() || after.mtime() != before.mtime(), "mtime after mkdir");
    drop_dentries();
    assert!(std::fs::metadata(d1.join("sub")).unwrap().is_dir());
    std::fs::remove_dir(d1.join("sub")).unwrap();
    assert_eq!(std::fs::metadata(&d1).unwrap().nlink(), before.nlink());
    drop_dentries();
    assert_eq!(errno_of(&d1.join("sub")), Some(libc::ENOENT));

    // Another mount's changes: seen once the lifetime has passed.
    let d2 = m2.path().join("d");
    std::fs::write(d2.join("from-m2"), b"abc").unwrap();
    std::fs::remove_file(d2.join("f9")).unwrap();
    std::fs::write(d2.join("f10"), b"rewritten").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(4300));
    drop_dentries();
    assert_eq!(std::fs::metadata(d1.join("from-m2")).unwrap().len(), 3);
    assert_eq!(errno_of(&d1.join("f9")), Some(libc::ENOENT));
    assert_eq!(std::fs::read(d1.join("f10")).unwrap(), b"rewritten");

    // Search permission: a listing made for root does not let others in.
    std::fs::set_permissions(&d1, std::fs::Permissions::from_mode(0o700)).unwrap();
    listed(false);
    let (ok, out) = sh_as(65534, m1.path(), "stat d/f11");
    assert!(!ok && out.contains("Permission denied"), "stat as nobody in a 0700 directory: {out}");
    std::fs::set_permissions(&d1, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop_dentries();
    let (ok, out) = sh_as(65534, m1.path(), "stat d/f11");
    assert!(ok, "stat as nobody after chmod 755: {out}");
}

/// Small chunks a mount has written stay in its read cache: with every
/// chunkserver gone, that mount still reads its files (the chunk id is the
/// content's hash, so the copy cannot be stale), while a second mount, which
/// never had them, fails with EIO rather than returning anything else.
#[test]
fn written_small_chunks_are_read_from_the_writers_cache() {
    let mut c = Cluster::start(3, 3);
    let m1 = c.mount(&[]);
    let m2 = c.mount(&[]);
    let files: Vec<(String, Vec<u8>)> =
        (0..20).map(|i| (format!("small{i}"), random_bytes(3000 + i * 100, 77 + i as u64))).collect();
    for (name, data) in &files {
        std::fs::write(m1.path().join(name), data).unwrap();
    }
    for cs in c.chunkservers.iter_mut() {
        cs.kill();
    }
    drop_dentries();
    for (name, data) in &files {
        assert!(&std::fs::read(m1.path().join(name)).unwrap() == data, "{name} through the writing mount");
    }
    let err = std::fs::read(m2.path().join(&files[0].0)).expect_err("no chunkserver holds the data");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
}

#[test]
fn a_small_write_into_a_big_file_uploads_a_small_chunk() {
    let c = Cluster::start(3, 3);
    let m1 = c.mount(&[]);
    let m2 = c.mount(&[]);
    let mut want = random_bytes((9 << 20) + 5, 91);
    std::fs::write(m1.path().join("big"), &want).unwrap();
    let before = c.stored_bytes();
    // Scattered 4 KiB writes, each fsynced: each uploads its 4 KiB (three
    // replicas), not the 4 MiB chunk around it. After enough of them in one
    // chunk, a flush rewrites that chunk whole (bounded fragmentation).
    let f = std::fs::OpenOptions::new().write(true).open(m1.path().join("big")).unwrap();
    for (i, off) in [5u64 << 20, 100, (9 << 20) + 1, 4 << 20, 77_777].iter().enumerate() {
        let piece = random_bytes(4096, 200 + i as u64);
        std::os::unix::fs::FileExt::write_all_at(&f, &piece, *off).unwrap();
        f.sync_all().unwrap();
        let end = *off as usize + piece.len();
        if want.len() < end {
            want.resize(end, 0);
        }
        want[*off as usize..end].copy_from_slice(&piece);
    }
    let grown = c.stored_bytes() - before;
    assert!(grown < 3 * 5 * 8192, "5 fsynced 4 KiB writes stored {grown} new bytes");
    // 100 more scattered writes into one slot: past its share of pieces
    // (128 at most), a flush rewrites the slot whole, 3 copies of 4 MiB.
    let before = c.stored_bytes();
    for i in 0..100u64 {
        let piece = random_bytes(512, 300 + i);
        let off = (6 << 20) + i * 9000;
        std::os::unix::fs::FileExt::write_all_at(&f, &piece, off).unwrap();
        f.sync_all().unwrap();
        want[off as usize..off as usize + 512].copy_from_slice(&piece);
    }
    let grown = c.stored_bytes() - before;
    assert!(grown >= 3 * (4 << 20), "the fragmented slot was never rewritten whole ({grown} new bytes)");
    drop(f);
    assert!(std::fs::read(m1.path().join("big")).unwrap() == want, "the writing mount reads it back");
    drop_dentries();
    assert!(std::fs::read(m2.path().join("big")).unwrap() == want, "another mount reads it back");
}

#[test]
fn a_file_left_open_after_a_full_chunk_commits_before_gc_could_take_it() {
    // GC takes unreferenced chunks after 2 s here; the writer pauses longer
    // than that between two writes, holding a full chunk uploaded but not
    // yet committed.
    let (master_args, cs_args) = tessera_tests::fast_healing();
    let c = Cluster::start_with(tessera_tests::Opts {
        masters: 3,
        chunkservers: 3,
        master_args,
        cs_args,
        ..Default::default()
    });
    let m = c.mount(&["--commit-idle-s", "1"]);
    let first = random_bytes((4 << 20) + 100, 61);
    let second = random_bytes(5000, 62);
    let mut f = std::fs::File::create(m.path().join("slow")).unwrap();
    std::io::Write::write_all(&mut f, &first).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(8));
    std::io::Write::write_all(&mut f, &second).unwrap();
    f.sync_all().expect("fsync after a pause longer than the GC grace");
    drop(f);
    let want = [first, second].concat();
    assert!(std::fs::read(m.path().join("slow")).unwrap() == want, "content after the pause\n{}", m.log());
}
