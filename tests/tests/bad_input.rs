//! Bad input gets a clear error and a non-zero exit, and changes nothing.

use std::time::{Duration, Instant};
use tessera_tests::Cluster;

fn fails(c: &Cluster, args: &[&str], needle: &str) {
    let out = c.tessera(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "tessera {args:?} succeeded");
    assert!(err.starts_with("tessera: "), "tessera {args:?}: no error line: {err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "tessera {args:?}: not one line: {err:?}");
    assert!(err.to_lowercase().contains(needle), "tessera {args:?}: {err:?} lacks {needle:?}");
}

#[test]
fn cli_rejects_bad_input_without_side_effects() {
    let c = Cluster::start(1, 3);
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("f");
    std::fs::write(&f, b"hello").unwrap();
    c.ok(&["mkdir", "/d"]);
    c.ok(&["put", f.to_str().unwrap(), "/d/file"]);
    let before = c.ok(&["ls", "-l", "/d"]).stdout;
    let root_before = c.ok(&["ls", "-l", "/"]).stdout;

    fails(&c, &["mkdir", "/d/../x"], "'..'");
    let long = format!("/d/{}", "n".repeat(300));
    fails(&c, &["mkdir", &long], "too long");
    fails(&c, &["put", f.to_str().unwrap(), &long], "too long");
    fails(&c, &["get", "/d/missing", work.path().join("m").to_str().unwrap()], "no such file");
    fails(&c, &["rm", "/d"], "not empty");
    fails(&c, &["mkdir", "/d/file"], "exists");
    fails(&c, &["ls", "relative/path"], "absolute");
    fails(&c, &["--masters", "127.0.0.1:1", "--timeout", "2", "ls", "/"], "no master answered");
    assert!(!work.path().join("m").exists(), "a failed get left a file behind");

    assert_eq!(c.ok(&["ls", "-l", "/d"]).stdout, before);
    assert_eq!(c.ok(&["ls", "-l", "/"]).stdout, root_before);
}

/// A wrong --masters (nothing listens there, or the name does not
/// resolve) is a one-line error in about 3 s, not after the 30 s an
/// election or a restart is waited out.
#[test]
fn unreachable_masters_are_a_prompt_one_line_error() {
    let c = Cluster::start(1, 3);
    for (masters, needle) in [("127.0.0.1:1", "refused"), ("no-such-master.invalid:7400", "lookup")] {
        let t = Instant::now();
        fails(&c, &["--masters", masters, "ls", "/"], needle);
        let took = t.elapsed();
        assert!(took < Duration::from_secs(6), "{masters}: error after {took:?}");
        assert!(took >= Duration::from_secs(2), "{masters}: gave up after only {took:?}");
    }
    // A cluster that answered once is waited for as before: the same
    // client keeps retrying through an outage (tested in availability.rs).
}

#[test]
fn api_rejects_slash_and_nul_in_names() {
    let c = Cluster::start(1, 3);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg = tessera_client::ClientConfig {
            masters: c.masters.iter().map(|m| m.addr.clone()).collect(),
            ..Default::default()
        };
        let fs = tessera_client::connect(cfg);
        for bad in ["a/b", "a\0b", "..", "."] {
            let e = fs.create(1, bad, 0o644, false, false).await.unwrap_err();
            assert_eq!(e.errno(), libc::EINVAL, "{bad:?}: {e}");
            // Raw request straight to the master, bypassing client checks.
            let req = tessera_proto::pb::MkdirRequest {
                cred: None,
                parent: 1,
                name: bad.as_bytes().to_vec().into(),
                mode: 0o755,
                request_id: String::new(),
            };
            let e = fs
                .meta
                .call("mkdir", |mut m| {
                    let r = req.clone();
                    async move { m.mkdir(r).await }
                })
                .await
                .unwrap_err();
            assert_eq!(e.errno(), libc::EINVAL, "{bad:?}: {e}");
        }
        let e = fs
            .meta
            .call("mkdir", |mut m| async move {
                m.mkdir(tessera_proto::pb::MkdirRequest {
                    parent: 1,
                    name: vec![b'x'; 256].into(),
                    mode: 0o755,
                    ..Default::default()
                })
                .await
            })
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::ENAMETOOLONG);
        // Write-behind creates that are malformed: one without its time, a
        // number never leased, a commit carrying a create of no number.
        let raw_create = |ino: u64, at: Option<tessera_proto::pb::Timespec>| tessera_proto::pb::CreateRequest {
            parent: 1,
            name: b"behind".to_vec().into(),
            mode: 0o644,
            ino,
            at,
            ..Default::default()
        };
        let create = |r: tessera_proto::pb::CreateRequest| {
            let fs = &fs;
            async move {
                fs.meta
                    .call("create", |mut m| {
                        let r = r.clone();
                        async move { m.create(r).await }
                    })
                    .await
                    .unwrap_err()
            }
        };
        assert_eq!(create(raw_create(5, None)).await.errno(), libc::EINVAL);
        let at = Some(tessera_proto::time::now());
        assert_eq!(create(raw_create(1 << 40, at)).await.errno(), libc::EINVAL);
        let commit = tessera_proto::pb::CommitRequest { ino: 1, create: Some(raw_create(0, at)), ..Default::default() };
        let e = fs
            .meta
            .call("commit", |mut m| {
                let r = commit.clone();
                async move { m.commit(r).await }
            })
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
        assert!(fs.readdir(1, false).await.unwrap().is_empty(), "a bad name created something");
        // A lock whose range is reversed, or of no known type, is EINVAL
        // (not EIO, which would claim an I/O failure).
        for (start, end, typ) in [(10, 5, libc::F_WRLCK), (0, 5, 99)] {
            let req = tessera_proto::pb::LockRequest {
                ino: 1,
                owner: "t".into(),
                pid: 1,
                start,
                end,
                typ,
                flock: false,
                delegate: false,
            };
            let e = fs
                .meta
                .call("set_lock", |mut m| {
                    let r = req.clone();
                    async move { m.set_lock(r).await }
                })
                .await
                .unwrap_err();
            assert_eq!(e.errno(), libc::EINVAL, "lock {start}..{end} type {typ}: {e}");
        }
        // Locks given back must be the returning session's own, and few
        // enough: another session's lock, or 10,001 of them, are refused.
        let lock =
            |owner: &str| tessera_proto::pb::HeldLock { owner: owner.into(), pid: 1, start: 0, end: 9, write: true };
        let give_back = |posix: Vec<tessera_proto::pb::HeldLock>| tessera_proto::pb::ReturnLocksRequest {
            ino: 1,
            session: "m1".into(),
            keep: false,
            posix,
            flock: vec![],
        };
        for (req, errno) in
            [(give_back(vec![lock("m2:1")]), libc::EINVAL), (give_back(vec![lock("m1:1"); 10_001]), libc::E2BIG)]
        {
            let e = fs.return_locks(&req).await.unwrap_err();
            assert_eq!(e.errno(), errno, "{e}");
        }
    });
}

/// A full disk (free space below every chunkserver's reserve): put fails with
/// one clear line and a non-zero exit, and nothing already stored is lost.
#[test]
fn full_disk_is_a_clear_error_and_loses_nothing() {
    let c = Cluster::start_with(tessera_tests::Opts {
        masters: 1,
        chunkservers: 3,
        cs_args: vec!["--reserve-bytes".into(), "18000000000000000000".into()],
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("f");
    std::fs::write(&f, tessera_tests::random_bytes(300_000, 9)).unwrap();
    let out = c.tessera(&["put", f.to_str().unwrap(), "/f"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "put succeeded on a full disk");
    assert!(err.contains("disk full"), "no clear disk-full error: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert_eq!(c.stored_bytes(), 0);
    // The file was created but never committed: it is empty, not corrupt.
    assert!(c.ok(&["cat", "/f"]).stdout.is_empty());
}

/// A chunkserver verifies what a client stores: a small chunk whose bytes
/// do not hash to its id, or too big for one message, is refused and
/// leaves nothing behind; the right one is stored once.
#[test]
fn chunkservers_refuse_small_chunks_that_do_not_match_their_id() {
    let c = Cluster::start(1, 3);
    let addr = c.chunkservers[0].addr.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let io = c.chunk_io(&rt, std::time::Duration::from_secs(10));
    rt.block_on(async {
        let data = bytes::Bytes::from(tessera_tests::random_bytes(5000, 7));
        let id = tessera_proto::ChunkId::of(&data);
        let other = tessera_proto::ChunkId::of(b"something else");
        let e = io.put_small(&addr, other, data.clone()).await.unwrap_err();
        assert!(e.to_string().contains("hash"), "{e}");
        assert_eq!(io.has(&addr, &[other, id]).await.unwrap(), vec![false, false]);
        let big = bytes::Bytes::from(vec![1u8; tessera_proto::MAX_FRAME + 1]);
        io.put_small(&addr, tessera_proto::ChunkId::of(&big), big).await.unwrap_err();
        io.put_small(&addr, id, data.clone()).await.unwrap();
        io.put_small(&addr, id, data).await.unwrap(); // already there: fine
        assert_eq!(io.has(&addr, &[id]).await.unwrap(), vec![true]);
    });
    let tmp = c.cs_dir(0).join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(left.is_empty(), "temp files left in {}: {left:?}", tmp.display());
}

/// A master whose disk is nearly full refuses what adds to the namespace
/// with a clear error, and keeps serving reads and removals.
#[test]
fn a_master_with_a_nearly_full_disk_refuses_new_files_and_serves_reads() {
    let mut c = Cluster::start(3, 3);
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("f");
    let data = tessera_tests::random_bytes(300_000, 9);
    std::fs::write(&f, &data).unwrap();
    c.ok(&["put", f.to_str().unwrap(), "/kept"]);
    c.ok(&["put", f.to_str().unwrap(), "/removed"]);
    // Every master restarts needing more free space than any disk has.
    for m in c.masters.iter_mut() {
        m.stop();
        m.add_arg("--min-free-mb");
        m.add_arg("1000000000");
        m.start();
    }
    c.wait_ready();
    fails(&c, &["put", f.to_str().unwrap(), "/new"], "nearly full");
    fails(&c, &["mkdir", "/dir"], "nearly full");
    let back = work.path().join("back");
    c.ok(&["get", "/kept", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), data, "reads go on");
    c.ok(&["rm", "/removed"]);
    let ls = String::from_utf8_lossy(&c.ok(&["ls", "/"]).stdout).to_string();
    assert!(ls.contains("kept") && !ls.contains("removed") && !ls.contains("new"), "{ls}");
    // Every master says so once it is up (the last one restarted may still
    // be opening its store when the leader already answers).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = c.status();
        if s["masters"].as_array().is_some_and(|m| m.iter().all(|m| m["disk_full"] == true)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "status: {s}\n{}", c.logs_tail());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let text = String::from_utf8_lossy(&c.ok(&["cluster", "status"]).stdout).to_string();
    assert!(text.contains("DISK NEARLY FULL"), "{text}");
}

/// A follower whose disk is nearly full makes the leader refuse what adds
/// to the namespace (every entry is written on the followers too), with a
/// message naming that master; reads and removals go on.
#[test]
fn a_follower_with_a_nearly_full_disk_makes_the_leader_refuse_new_files() {
    let mut c = Cluster::start(3, 3);
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("f");
    let data = tessera_tests::random_bytes(200_000, 10);
    std::fs::write(&f, &data).unwrap();
    c.ok(&["put", f.to_str().unwrap(), "/kept"]);
    c.ok(&["put", f.to_str().unwrap(), "/removed"]);
    let leader = c.wait_leader(None, Duration::from_secs(20));
    let full = (leader + 1) % c.masters.len();
    c.masters[full].stop();
    c.masters[full].add_arg("--min-free-mb");
    c.masters[full].add_arg("1000000000");
    c.masters[full].start();
    c.wait_ready();
    // The guard under test is the leader's view of a follower: if the full
    // master was elected meanwhile, restart it so that another leads.
    while c.wait_leader(None, Duration::from_secs(20)) == full {
        c.masters[full].stop();
        let _ = c.wait_leader(Some(full), Duration::from_secs(20));
        c.masters[full].start();
        c.wait_ready();
    }
    let name = format!("master {}", full + 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.tessera(&["mkdir", "/probe"]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        if !out.status.success() && err.contains("nearly full") {
            assert!(err.contains(&name), "the refusal does not name the full master: {err}");
            break;
        }
        if out.status.success() {
            c.ok(&["rm", "-r", "/probe"]);
        }
        assert!(Instant::now() < deadline, "the leader kept accepting new files: {err}\n{}", c.logs_tail());
        std::thread::sleep(Duration::from_millis(200));
    }
    fails(&c, &["put", f.to_str().unwrap(), "/new"], "nearly full");
    let back = work.path().join("back");
    c.ok(&["get", "/kept", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), data, "reads go on");
    c.ok(&["rm", "/removed"]);
}
