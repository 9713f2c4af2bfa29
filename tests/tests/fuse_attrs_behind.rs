//! Attribute changes of directories written behind (fuse/src/attrs_behind.rs):
//! what tar and `cp -a` do to each directory they fill. Another mount sees
//! them at its next call (the masters recall the directory first), the
//! directory's times end as the calls were made on the mount that made
//! them, and an fsync of the directory makes them durable.

use std::fs::{File, FileTimes, Permissions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};
use tessera_tests::*;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// What tar does to a directory it has filled: owner, mode, times.
fn restore(dir: &Path, mode: u32, mtime: u64) {
    std::os::unix::fs::chown(dir, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(dir, Permissions::from_mode(mode)).unwrap();
    let f = File::open(dir).unwrap();
    f.set_times(FileTimes::new().set_accessed(at(mtime - 1)).set_modified(at(mtime))).unwrap();
}

fn seen(p: &Path) -> (u32, i64, i64) {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.mode() & 0o7777, m.mtime(), m.atime())
}

#[test]
fn directory_attributes_set_behind_are_seen_by_the_next_call_of_another_mount() {
    let c = Cluster::start(3, 3);
    let m1 = c.mount(&["--attr-ttl-ms", "1000"]);
    let m2 = c.mount(&[]);
    // `shared` is looked at by both mounts (no one holds it alone); `own`
    // is made and filled by the first only, as tar would.
    std::fs::create_dir(m1.path().join("shared")).unwrap();
    assert!(names(&m2.path().join("shared")).is_empty());
    std::fs::create_dir(m1.path().join("own")).unwrap();
    for i in 0..30u64 {
        for top in ["shared", "own"] {
            let d = m1.path().join(format!("{top}/d{i:02}"));
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("f"), random_bytes(200, i)).unwrap();
            let (mode, mtime) = (0o700 + (i as u32 % 8) * 0o10, 1_000_000 + i);
            restore(&d, mode, mtime);
            assert_eq!(seen(&d), (mode, mtime as i64, mtime as i64 - 1), "the mount that set them, {}", d.display());
            // Looked up through a directory no one holds (the masters recall
            // the child itself) and through one the first mount holds.
            let other = m2.path().join(format!("{top}/d{i:02}"));
            assert_eq!(seen(&other), (mode, mtime as i64, mtime as i64 - 1), "the other mount, {}", other.display());
            assert_eq!(std::fs::read(other.join("f")).unwrap(), random_bytes(200, i));
        }
    }
    // A listing with attributes (ls -l) on a fresh mount shows them too.
    let own = m1.path().join("own");
    std::fs::create_dir(own.join("late")).unwrap();
    restore(&own.join("late"), 0o751, 2_000_000);
    let m3 = c.mount(&[]);
    let (ok, listed) = sh(m3.path(), "ls -l own");
    assert!(ok, "{listed}");
    assert!(listed.contains("drwxr-x--x") && listed.contains("late"), "ls -l on a third mount:\n{listed}");
    assert_eq!(seen(&m3.path().join("own/late")).1, 2_000_000);
}

#[test]
fn a_directory_s_times_end_as_the_calls_were_made() {
    let c = Cluster::start(3, 3);
    let m1 = c.mount(&["--attr-ttl-ms", "1000"]);
    let m2 = c.mount(&[]);
    let d = m1.path().join("d");
    std::fs::create_dir(&d).unwrap();
    // Set behind, then a create in the directory: the create's time wins.
    restore(&d, 0o755, 1_000);
    std::fs::write(d.join("after"), b"x").unwrap();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let mtime = seen(&m2.path().join("d")).1;
    assert!((now - mtime).abs() < 60, "the create after the setattr left mtime {mtime} (now {now})");
    // Creates and an unlink first, then the times: the set times win.
    std::fs::write(d.join("a"), b"a").unwrap();
    std::fs::remove_file(d.join("after")).unwrap();
    restore(&d, 0o750, 5_000);
    assert_eq!(seen(&m2.path().join("d")), (0o750, 5_000, 4_999));
    assert_eq!(names(&m2.path().join("d")), vec!["a".to_string()]);
    // Many in a row on one directory, the last one wins everywhere, and an
    // fsync of the directory makes them durable.
    for i in 0..20 {
        restore(&d, 0o700 + i % 8, 10_000 + i as u64);
    }
    File::open(&d).unwrap().sync_all().unwrap();
    assert_eq!(seen(&d), (0o703, 10_019, 10_018));
    assert_eq!(seen(&m2.path().join("d")), (0o703, 10_019, 10_018));
    // And it goes away cleanly.
    std::fs::remove_dir_all(&d).unwrap();
    assert!(!m2.path().join("d").exists());
}

#[test]
fn directory_attributes_fsynced_survive_the_mount_being_killed() {
    let c = Cluster::start(3, 3);
    let mut m1 = c.mount(&["--attr-ttl-ms", "1000"]);
    let d = m1.path().join("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("f"), b"x").unwrap();
    restore(&d, 0o705, 7_000);
    File::open(&d).unwrap().sync_all().unwrap();
    let pid = m1.pid();
    // SAFETY: a plain kill(2) of the mount process this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    m1.unmount();
    let m2 = c.mount(&[]);
    assert_eq!(seen(&m2.path().join("d")), (0o705, 7_000, 6_999));
    assert_eq!(std::fs::read(m2.path().join("d/f")).unwrap(), b"x");
}

/// GNU tar as it is used: a tree whose directories carry their own modes
/// and times, extracted into one mount; the other mount sees every
/// directory exactly as in the source, at once.
#[test]
fn a_tree_extracted_by_tar_shows_its_directory_modes_and_times_on_another_mount() {
    let c = Cluster::start(3, 3);
    let m1 = c.mount(&["--attr-ttl-ms", "1000"]);
    let m2 = c.mount(&[]);
    let src = tempfile::tempdir().unwrap();
    let (ok, out) = sh(
        src.path(),
        "set -e; mkdir tree; cd tree
         for i in $(seq 0 11); do
           mkdir -p d$i/sub/deeper
           for j in 1 2 3; do head -c $((1000 * j + i)) /dev/urandom > d$i/sub/f$j; done
           echo $i > d$i/top
           chmod 7$((i % 8))0 d$i/sub; chmod 75$((i % 6)) d$i
           touch -d @$((2000000 + i)) d$i/sub/deeper; touch -d @$((3000000 + i)) d$i/sub; touch -d @$((4000000 + i)) d$i
         done
         cd .. && tar -cf tree.tar tree",
    );
    assert!(ok, "{out}");
    let tar = src.path().join("tree.tar");
    let (ok, out) = sh(m1.path(), &format!("tar -xpf {}", tar.display()));
    assert!(ok, "{out}");
    let (ok, dirs) = sh(&src.path().join("tree"), "find . -type d | sort");
    assert!(ok, "{dirs}");
    let dirs: Vec<&str> = dirs.lines().collect();
    assert_eq!(dirs.len(), 1 + 12 * 3, "{dirs:?}");
    for d in dirs {
        // Mode and mtime (tar gives atime the time of extraction).
        let mode_mtime = |p: &Path| {
            let (mode, mtime, _) = seen(p);
            (mode, mtime)
        };
        let want = mode_mtime(&src.path().join("tree").join(d));
        assert_eq!(mode_mtime(&m2.path().join("tree").join(d)), want, "{d} on the other mount");
        assert_eq!(mode_mtime(&m1.path().join("tree").join(d)), want, "{d} on the mount tar wrote to");
    }
    let (ok, out) = sh(m2.path(), &format!("diff -r tree {}", src.path().join("tree").display()));
    assert!(ok, "{out}");
}

/// Sets a file's times by path, as rsync does once the file is closed.
fn utimes(p: &Path, atime: i64, mtime: i64) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let ts = [libc::timespec { tv_sec: atime, tv_nsec: 0 }, libc::timespec { tv_sec: mtime, tv_nsec: 0 }];
    // SAFETY: a NUL-terminated path and two timespecs, as utimensat(2) takes.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), 0) };
    assert_eq!(r, 0, "utimensat {}: {}", p.display(), std::io::Error::last_os_error());
}

/// rsync's way with each file, in a directory one mount made and holds
/// alone: write it under a temporary name, set its mode and times, rename
/// it into place (one replacing an older file). The mode, times and
/// renames are written behind (the mount counts them), and the other
/// mount's next look finds every file in place, with its bytes, mode and
/// times, no temporary name left, the replaced file gone; renames after
/// that look are synchronous and seen at once too.
#[test]
fn files_written_as_rsync_does_are_in_place_on_another_mount_at_once() {
    use std::io::Write;
    let c = Cluster::start(3, 3);
    let metrics = format!("127.0.0.1:{}", ports(1));
    let m1 = c.mount(&["--metrics-listen", &metrics]);
    let m2 = c.mount(&[]);
    let dest = m1.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("f05"), b"older").unwrap();
    let file = |i: u64| random_bytes(1000 + i as usize, 900 + i);
    for i in 0..40u64 {
        let tmp = dest.join(format!(".f{i:02}.Xyz12"));
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).unwrap();
        f.write_all(&file(i)).unwrap();
        drop(f);
        std::fs::set_permissions(&tmp, Permissions::from_mode(0o640)).unwrap();
        utimes(&tmp, 3_000_000 + i as i64, 2_000_000 + i as i64);
        std::fs::rename(&tmp, dest.join(format!("f{i:02}")))
            .unwrap_or_else(|e| panic!("rename {i}: {e}\n{}", m1.log()));
        // This mount sees it at once.
        assert_eq!(seen(&dest.join(format!("f{i:02}"))), (0o640, 2_000_000 + i as i64, 3_000_000 + i as i64));
    }
    let scraped = http_get(&metrics);
    let behind = |kind: &str| sample(&scraped, &format!("tessera_mount_write_behind_total{{kind=\"{kind}\"}} "));
    assert!(behind("rename").is_some_and(|n| n >= 40.0), "renames not written behind:\n{scraped}");
    // A chmod that meets the close's release (sent after close(2)
    // returned) holding the file goes synchronously: most go behind.
    assert!(behind("fresh_file_attrs").is_some_and(|n| n >= 60.0), "mode and times not written behind:\n{scraped}");
    let other = m2.path().join("dest");
    let want: Vec<String> = (0..40).map(|i| format!("f{i:02}")).collect();
    assert_eq!(names(&other), want, "the other mount's listing");
    for i in 0..40u64 {
        let p = other.join(format!("f{i:02}"));
        assert_eq!(seen(&p), (0o640, 2_000_000 + i as i64, 3_000_000 + i as i64), "{}", p.display());
        assert_eq!(std::fs::read(&p).unwrap(), file(i), "{}", p.display());
    }
    // The other mount has looked: renames on the first are synchronous now.
    std::fs::rename(dest.join("f00"), dest.join("g00")).unwrap();
    assert!(other.join("g00").exists() && !other.join("f00").exists());
}

/// A rename written behind and then fsynced (its directory) survives the
/// mount being killed at once; so do the file's times set behind.
#[test]
fn a_rename_behind_fsynced_survives_the_mount_being_killed() {
    let c = Cluster::start(3, 3);
    let mut m1 = c.mount(&[]);
    let d = m1.path().join("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join(".t"), b"content").unwrap();
    utimes(&d.join(".t"), 8_000, 9_000);
    std::fs::rename(d.join(".t"), d.join("f")).unwrap();
    File::open(&d).unwrap().sync_all().unwrap();
    let pid = m1.pid();
    // SAFETY: a plain kill(2) of the mount process this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    m1.unmount();
    let m2 = c.mount(&[]);
    assert_eq!(names(&m2.path().join("d")), vec!["f".to_string()]);
    assert_eq!(std::fs::read(m2.path().join("d/f")).unwrap(), b"content");
    assert_eq!(seen(&m2.path().join("d/f")).1, 9_000);
}
