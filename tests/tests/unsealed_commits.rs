//! Small flushes commit while their chunks upload (master fsm/unsealed.rs).
//! A writer that dies between the two leaves a file naming chunks no
//! server holds: the leader empties it once the grace period has passed.
//! Files whose uploads finished are sealed and never touched.

use std::time::{Duration, Instant};
use tessera_tests::*;

/// The size the masters record for `/name`.
fn size_on_masters(c: &Cluster, rt: &tokio::runtime::Runtime, name: &str) -> Option<u64> {
    let fs = c.client();
    rt.block_on(async { fs.lookup(1, name).await.ok().map(|a| a.size) })
}

#[test]
fn a_writer_killed_mid_upload_leaves_an_empty_file_and_finished_files_are_kept() {
    let master_args = ["--unsealed-grace-s", "30", "--repair-interval-ms", "300"].map(String::from).to_vec();
    let mut c = Cluster::start_with(Opts { masters: 3, chunkservers: 3, master_args, ..Default::default() });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let files: Vec<(String, Vec<u8>)> =
        (0..100).map(|i| (format!("kept{i:03}"), random_bytes(1 + i * 97 % 9000, 7000 + i as u64))).collect();
    {
        let m = c.mount(&[]);
        for (name, data) in &files {
            std::fs::write(m.path().join(name), data).unwrap();
        }
    }

    // The writer: its upload cannot finish (every chunkserver stopped), its
    // commit lands (it carries the file's create, so the name appears).
    let mut writer = c.mount(&[]);
    for cs in c.chunkservers.iter_mut() {
        cs.signal(libc::SIGSTOP);
    }
    let path = writer.path().join("crashed");
    let data = random_bytes(5000, 99);
    // close(2) itself must fail (std's File ignores close errors).
    let blocked = std::thread::spawn(move || {
        use std::io::Write;
        use std::os::fd::IntoRawFd;
        let mut f = std::fs::File::create(path).unwrap();
        f.write_all(&data).unwrap();
        // SAFETY: closing the descriptor this thread owns, once.
        unsafe { libc::close(f.into_raw_fd()) }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while size_on_masters(&c, &rt, "crashed") != Some(5000) {
        assert!(Instant::now() < deadline, "the unsealed commit did not land: {}", writer.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // It dies mid-upload, and so do the chunkservers with whatever reached
    // their sockets: the chunk is nowhere.
    // SAFETY: signalling the mount process this test started.
    unsafe { libc::kill(writer.pid() as i32, libc::SIGKILL) };
    writer.unmount();
    assert_ne!(blocked.join().unwrap(), 0, "a close whose mount was killed mid-upload succeeded");
    for cs in c.chunkservers.iter_mut() {
        cs.kill();
        cs.start();
    }

    // Until the grace period has passed the file names its missing chunk;
    // then the leader empties it, once every chunkserver has reported.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match size_on_masters(&c, &rt, "crashed") {
            Some(0) => break,
            s => assert!(Instant::now() < deadline, "crashed file not emptied (size {s:?})"),
        }
        std::thread::sleep(Duration::from_millis(300));
    }

    // Everything whose close returned is intact, read by a new mount.
    let m = c.mount(&[]);
    for (name, data) in &files {
        assert_eq!(&std::fs::read(m.path().join(name)).unwrap(), data, "{name}");
    }
    assert!(std::fs::read(m.path().join("crashed")).unwrap().is_empty());
    // And a file written now, past all that, is an ordinary one.
    std::fs::write(m.path().join("after"), b"after").unwrap();
    assert_eq!(std::fs::read(m.path().join("after")).unwrap(), b"after");
}

/// An fsync after a small overwrite commits while its chunk uploads too. A
/// writer killed between the two leaves a file naming a chunk nowhere; the
/// leader lays back what the patch replaced: the file reads exactly as
/// before the overwrite, at its old size.
#[test]
fn an_overwrite_whose_writer_was_killed_mid_upload_is_undone() {
    let master_args = ["--unsealed-grace-s", "30", "--repair-interval-ms", "300"].map(String::from).to_vec();
    let mut c = Cluster::start_with(Opts { masters: 3, chunkservers: 3, master_args, ..Default::default() });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let old = random_bytes(64 << 10, 5);
    {
        let m = c.mount(&[]);
        std::fs::write(m.path().join("db"), &old).unwrap();
    }

    let mut writer = c.mount(&[]);
    let path = writer.path().join("db");
    // Opened before the chunkservers stop (the open reads nothing).
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    for cs in c.chunkservers.iter_mut() {
        cs.signal(libc::SIGSTOP);
    }
    // 4 KiB over the last page and 3 KiB past the end, then fsync.
    let blocked = std::thread::spawn(move || {
        use std::os::unix::fs::FileExt;
        f.write_all_at(&random_bytes(7 << 10, 6), 60 << 10).unwrap();
        f.sync_all().is_ok()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while size_on_masters(&c, &rt, "db") != Some(67 << 10) {
        assert!(Instant::now() < deadline, "the unsealed patch did not land: {}", writer.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signalling the mount process this test started.
    unsafe { libc::kill(writer.pid() as i32, libc::SIGKILL) };
    writer.unmount();
    assert!(!blocked.join().unwrap(), "an fsync whose mount was killed mid-upload succeeded");
    for cs in c.chunkservers.iter_mut() {
        cs.kill();
        cs.start();
    }

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match size_on_masters(&c, &rt, "db") {
            Some(s) if s == old.len() as u64 => break,
            s => assert!(Instant::now() < deadline, "overwrite not undone (size {s:?})"),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let m = c.mount(&[]);
    assert!(std::fs::read(m.path().join("db")).unwrap() == old, "the file is not what it was before the overwrite");
    // An overwrite now, with the chunkservers up, is an ordinary one.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(m.path().join("db")).unwrap();
        f.write_all_at(b"fresh", 10).unwrap();
        f.sync_all().unwrap();
    }
    let mut want = old.clone();
    want[10..15].copy_from_slice(b"fresh");
    let m2 = c.mount(&[]);
    assert!(std::fs::read(m2.path().join("db")).unwrap() == want);
}
