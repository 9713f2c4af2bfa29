//! Metadata high availability: failover under concurrent load without lost
//! or duplicated operations, membership changes, snapshot catch-up, restarts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tessera_proto::pb::FileKind;
use tessera_tests::{Cluster, Opts};

/// Every path in the namespace with its inode, kind, mode, size and nlink.
async fn dump(fs: &tessera_client::Fs) -> BTreeMap<String, (u64, i32, u32, u64, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![("/".to_string(), 1u64)];
    while let Some((path, ino)) = stack.pop() {
        for e in fs.readdir(ino, true).await.unwrap() {
            let a = e.attr.unwrap();
            let p = format!(
                "{}{}",
                if path == "/" { "/".to_string() } else { format!("{path}/") },
                String::from_utf8_lossy(&e.name)
            );
            if a.kind == FileKind::Directory as i32 {
                stack.push((p.clone(), a.ino));
            }
            out.insert(p, (a.ino, a.kind, a.mode, a.size, a.nlink));
        }
    }
    out
}

/// 4 clients create directories while the leader is SIGSTOPped, later a new
/// leader SIGKILLed: every acknowledged create exists afterwards, none was
/// applied twice (a retried create is answered, not refused with EEXIST).
/// The clients run until told to stop, and each fault is checked to have
/// hit them mid-run (creates acknowledged before it and after it).
#[test]
fn failover_under_load_loses_nothing_and_applies_nothing_twice() {
    let mut c = Cluster::start(3, 3);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fs = c.client();
    rt.block_on(async {
        for t in 0..4 {
            fs.mkdir(&format!("/c{t}"), 0o755).await.unwrap();
        }
    });
    let acks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked_now = || acks.load(std::sync::atomic::Ordering::SeqCst);
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (fs, acks, stop) = (fs.clone(), acks.clone(), stop.clone());
        tasks.push(rt.spawn(async move {
            let mut acked = Vec::new();
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let p = format!("/c{t}/d{i}");
                match fs.mkdir(&p, 0o755).await {
                    Ok(_) => {
                        acked.push(p);
                        acks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(e) => panic!("{p}: {e} (errno {})", e.errno()),
                }
            }
            acked
        }));
    }
    // Each fault waits for progress, so it lands on creates in flight.
    let progressed = |since: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked_now() < since + 50 {
            assert!(Instant::now() < deadline, "no progress: {} creates acknowledged", acked_now());
            std::thread::sleep(Duration::from_millis(20));
        }
        acked_now()
    };
    let before_stop = progressed(0);
    let l1 = c.wait_leader(None, Duration::from_secs(10));
    c.masters[l1].signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    let l2 = c.wait_leader(Some(l1), Duration::from_secs(20));
    c.masters[l1].signal(libc::SIGCONT);
    let before_kill = progressed(before_stop);
    c.masters[l2].kill();
    progressed(before_kill);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acked: Vec<String> = rt.block_on(async {
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    assert!(acked.len() >= 150, "{} creates", acked.len());
    c.start_all();
    let fs = c.client();
    let names = rt.block_on(dump(&fs));
    for p in &acked {
        assert!(names.contains_key(p), "acknowledged {p} is missing");
    }
    assert_eq!(names.len(), acked.len() + 4, "unexpected entries");
}

/// A call waiting on a frozen leader (SIGSTOP: its connections stay open and
/// it answers nothing) moves to the successor as soon as the other masters
/// name one, long before the attempt's own deadline (30 s here, so a client
/// that only waited it out would fail the bound).
#[test]
fn a_call_waiting_on_a_frozen_leader_moves_to_its_successor() {
    let mut c = Cluster::start(3, 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let meta = tessera_client::meta::MetaOptions {
        rpc_timeout: Duration::from_secs(30),
        total_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let cfg = tessera_client::ClientConfig {
        masters: c.masters.iter().map(|m| m.addr.clone()).collect(),
        meta,
        ..Default::default()
    };
    let fs = tessera_client::connect(cfg);
    // The client learns the leader first, so the next call goes to it.
    rt.block_on(fs.mkdir("/before", 0o755)).unwrap();
    let l = c.wait_leader(None, Duration::from_secs(10));
    c.masters[l].signal(libc::SIGSTOP);
    let t = Instant::now();
    let made = rt.block_on(async { tokio::time::timeout(Duration::from_secs(40), fs.mkdir("/during", 0o755)).await });
    let waited = t.elapsed();
    c.masters[l].signal(libc::SIGCONT);
    made.expect("mkdir still waiting after 40 s").expect("mkdir during the freeze");
    assert!(waited < Duration::from_secs(10), "mkdir waited {waited:?} on a frozen leader");
    let names = rt.block_on(dump(&fs));
    assert!(names.contains_key("/before") && names.contains_key("/during"), "{names:?}");
}

#[test]
fn add_a_master_promote_it_and_remove_the_old_leader() {
    let mut c = Cluster::start(3, 3);
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("f");
    std::fs::write(&f, tessera_tests::random_bytes(1 << 20, 3)).unwrap();
    c.ok(&["put", f.to_str().unwrap(), "/before"]);
    let (j, id, raft) = c.add_joining_master();
    let addr = c.masters[j].addr.clone();
    c.ok(&["admin", "master", "add", &id.to_string(), &addr, "--raft-addr", &raft]);
    let list = String::from_utf8_lossy(&c.ok(&["admin", "master", "list"]).stdout).into_owned();
    assert!(list.contains(&addr) && list.contains(&raft), "new master not listed: {list}");
    // Remove the old leader: the group keeps serving.
    let l = c.leader().unwrap();
    let leader_id = (l + 1).to_string();
    c.ok(&["admin", "master", "remove", &leader_id]);
    c.masters[l].stop();
    c.ok(&["put", f.to_str().unwrap(), "/after"]);
    for p in ["/before", "/after"] {
        assert!(c.ok(&["cat", p]).stdout == std::fs::read(&f).unwrap());
    }
    let list = String::from_utf8_lossy(&c.ok(&["admin", "master", "list"]).stdout).into_owned();
    assert!(!list.contains(&c.masters[l].addr), "removed master still listed: {list}");
}

/// A master down while 10,000 operations commit (snapshot every 1,000)
/// catches up by snapshot, and a full restart leaves the namespace identical.
#[test]
fn lagging_master_catches_up_by_snapshot_and_restart_is_identical() {
    let mut c = Cluster::start_with(Opts {
        masters: 3,
        chunkservers: 3,
        master_args: vec!["--snapshot-logs".into(), "1000".into()],
        ..Default::default()
    });
    c.masters[2].stop();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fs = c.client();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..8 {
            let fs = fs.clone();
            tasks.push(tokio::spawn(async move {
                fs.mkdir(&format!("/s{t}"), 0o755).await.unwrap();
                let parent = fs.resolve(&format!("/s{t}")).await.unwrap().ino;
                for i in 0..1250 {
                    fs.create(parent, &format!("f{i}"), 0o644, true, false).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let before = rt.block_on(dump(&fs));
    assert_eq!(before.len(), 8 + 10_000);
    c.start_all();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = c.status();
        let ms = s["masters"].as_array().cloned().unwrap_or_default();
        let applied: Vec<u64> = ms.iter().map(|m| m["applied_index"].as_u64().unwrap_or(0)).collect();
        if applied.len() == 3
            && applied.iter().all(|a| *a + 5 >= applied.iter().copied().max().unwrap_or(0))
            && applied[2] > 10_000
        {
            break;
        }
        assert!(Instant::now() < deadline, "master 3 did not catch up: {s}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(c.masters[2].log().contains("snapshot installed"), "master 3 caught up without a snapshot");
    // Full restart of every master (SIGKILL): identical namespace.
    for m in c.masters.iter_mut() {
        m.kill();
    }
    c.start_all();
    let after = rt.block_on(dump(&c.client()));
    assert_eq!(before, after, "namespace changed across a full restart");
}

/// A snapshot damaged at its source (the leader's checkpoint file) is
/// refused by the lagging master, which keeps its old state, restarts
/// cleanly, and catches up from the next snapshot.
#[test]
fn a_damaged_snapshot_is_refused_and_the_master_keeps_its_state() {
    let mut c = Cluster::start_with(Opts {
        masters: 3,
        chunkservers: 3,
        master_args: vec!["--snapshot-logs".into(), "1000".into()],
        ..Default::default()
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fs = c.client();
    let creates = |fs: &tessera_client::Fs, dir: &str, n: usize| {
        rt.block_on(async {
            fs.mkdir(dir, 0o755).await.unwrap();
            let parent = fs.resolve(dir).await.unwrap().ino;
            for i in 0..n {
                fs.create(parent, &format!("f{i}"), 0o644, true, false).await.unwrap();
            }
        })
    };
    creates(&fs, "/before", 50);
    c.masters[2].stop();
    creates(&fs, "/while_down", 2500);
    // Damage every checkpoint the other masters would send.
    let mut damaged = 0;
    for m in ["master-1", "master-2"] {
        let dir = c.dir.path().join(m).join("snapshots");
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "sst") {
                let mut b = std::fs::read(&p).unwrap();
                let mid = b.len() / 3;
                b[mid..mid + 256].iter_mut().for_each(|x| *x ^= 0xa5);
                std::fs::write(&p, &b).unwrap();
                damaged += 1;
            }
        }
    }
    assert!(damaged > 0, "no checkpoint to damage");
    c.masters[2].start();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !c.masters[2].log().contains("received snapshot refused") {
        assert!(Instant::now() < deadline, "master 3 never refused the damaged snapshot:\n{}", c.masters[2].log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!c.masters[2].log().contains("snapshot installed"), "a damaged snapshot was installed");
    // Restarts cleanly on its old state.
    c.masters[2].kill();
    c.masters[2].start();
    std::thread::sleep(Duration::from_secs(2));
    assert!(c.masters[2].is_running(), "master 3 did not restart:\n{}", c.masters[2].log());
    // The next snapshot (built after another 1000 entries) is whole.
    creates(&fs, "/after", 1200);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = c.status();
        let ms = s["masters"].as_array().cloned().unwrap_or_default();
        let applied: Vec<u64> = ms.iter().map(|m| m["applied_index"].as_u64().unwrap_or(0)).collect();
        let max = applied.iter().copied().max().unwrap_or(0);
        if applied.len() == 3 && applied[2] + 5 >= max && c.masters[2].log().contains("snapshot installed") {
            break;
        }
        assert!(Instant::now() < deadline, "master 3 did not catch up: {s}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // Master 3 now serves the same namespace (it may lead after a restart of the others).
    c.masters[0].kill();
    c.masters[1].kill();
    c.masters[0].start();
    c.masters[1].start();
    c.wait_ready();
    let names = rt.block_on(dump(&c.client()));
    assert_eq!(names.keys().filter(|k| k.starts_with("/while_down/")).count(), 2500);
    assert_eq!(names.keys().filter(|k| k.starts_with("/after/")).count(), 1200);
}

/// A master whose data directory is lost does not rejoin silently (it forgot
/// its votes): it refuses to start as a voter; removed and added back with
/// --join, it is rebuilt from its peers and serves as a voter again.
#[test]
fn a_master_that_lost_its_data_dir_is_refused_then_rebuilt_from_its_peers() {
    let mut c = Cluster::start(3, 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fs = c.client();
    rt.block_on(async {
        for i in 0..300 {
            fs.mkdir(&format!("/d{i}"), 0o755).await.unwrap();
        }
    });
    let l = c.leader().expect("leader");
    let j = (l + 1) % 3;
    let id = (j + 1).to_string();
    c.masters[j].kill();
    std::fs::remove_dir_all(c.dir.path().join(format!("master-{id}"))).unwrap();
    c.masters[j].start();
    let st = c.masters[j].wait_exit(Duration::from_secs(20)).expect("a master with a lost data dir kept running");
    assert!(!st.success());
    assert!(c.masters[j].log().contains("state was lost"), "{}", c.masters[j].log());

    c.ok(&["admin", "master", "remove", &id]);
    c.masters[j].add_arg("--join");
    c.masters[j].start();
    let addr = c.masters[j].addr.clone();
    c.ok(&["admin", "master", "add", &id, &addr]);
    let list = String::from_utf8_lossy(&c.ok(&["admin", "master", "list"]).stdout).into_owned();
    assert!(list.contains(&addr), "rebuilt master not listed: {list}");
    // It is a working voter: with the leader gone, it and the third master
    // elect a leader and keep serving.
    let l = c.leader().expect("leader");
    assert_ne!(l, j, "the rebuilt master should not lead yet");
    c.masters[l].kill();
    let fs = c.client();
    rt.block_on(async {
        for i in 300..310 {
            fs.mkdir(&format!("/d{i}"), 0o755).await.unwrap();
        }
    });
    let names = rt.block_on(dump(&fs));
    for i in 0..310 {
        assert!(names.contains_key(&format!("/d{i}")), "/d{i} missing");
    }
}

/// A member of a brand-new group that starts only after the others formed
/// it (as when every master of a cluster starts at once and one is slow)
/// holds nothing to lose: it joins and serves as a voter, unlike a master
/// that lost its data (above).
#[test]
fn a_master_starting_after_its_new_group_formed_joins_it() {
    let mut c = Cluster::start_with(Opts { masters: 3, chunkservers: 1, late_masters: 1, ..Default::default() });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fs = c.client();
    rt.block_on(async {
        for i in 0..20 {
            fs.mkdir(&format!("/d{i}"), 0o755).await.unwrap();
        }
    });
    c.masters[2].start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.masters[2].log().contains("master serving") {
        assert!(c.masters[2].is_running(), "the late master exited:\n{}", c.masters[2].log());
        assert!(Instant::now() < deadline, "the late master never served:\n{}", c.masters[2].log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!c.masters[2].log().contains("state was lost"), "{}", c.masters[2].log());
    // A working voter: with the other follower down, a change needs its
    // acknowledgement; then with the old leader down too and the follower
    // back, only it holds that change, so only it can lead and serve it.
    let l = c.wait_leader(None, Duration::from_secs(20));
    if l == 2 {
        // Elected already: a leader holds every committed entry.
        rt.block_on(async { fs.mkdir("/after", 0o755).await.unwrap() });
        return;
    }
    let other = (0..3).find(|i| *i != l && *i != 2).expect("a follower");
    c.masters[other].kill();
    let fs = c.client();
    rt.block_on(async { fs.mkdir("/after", 0o755).await.unwrap() });
    c.masters[l].kill();
    c.masters[other].start();
    let fs = c.client();
    let names = rt.block_on(dump(&fs));
    for i in 0..20 {
        assert!(names.contains_key(&format!("/d{i}")), "/d{i} missing");
    }
    assert!(names.contains_key("/after"));
    assert_eq!(c.wait_leader(None, Duration::from_secs(20)), 2);
}

/// Reads are linearizable by default, so a master without a quorum cannot
/// answer them; with the explicit opt-in a follower answers from its state.
#[test]
fn stale_reads_are_opt_in_and_served_without_a_quorum() {
    let mut c = Cluster::start(3, 1);
    c.ok(&["mkdir", "/seen"]);
    // Let every master apply it, then leave one master alone.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = c.status();
        let ms = s["masters"].as_array().cloned().unwrap_or_default();
        let applied: Vec<u64> = ms.iter().map(|m| m["applied_index"].as_u64().unwrap_or(0)).collect();
        if applied.len() == 3 && applied.iter().all(|a| *a == applied[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "masters did not converge: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let l = c.leader().expect("leader");
    let alone = (l + 1) % 3;
    for i in 0..3 {
        if i != alone {
            c.masters[i].signal(libc::SIGSTOP);
        }
    }
    let only = c.masters[alone].addr.clone();
    let strict = c.tessera_env(&["--timeout", "3", "stat", "/seen"], &[("TESSERA_MASTERS", &only)]);
    let stale = c.tessera_env(&["--timeout", "3", "--stale-reads", "stat", "/seen"], &[("TESSERA_MASTERS", &only)]);
    let write = c.tessera_env(&["--timeout", "3", "--stale-reads", "mkdir", "/lost"], &[("TESSERA_MASTERS", &only)]);
    for i in 0..3 {
        if i != alone {
            c.masters[i].signal(libc::SIGCONT);
        }
    }
    assert!(!strict.status.success(), "a linearizable read was answered without a quorum");
    assert!(stale.status.success(), "stale read failed: {}", String::from_utf8_lossy(&stale.stderr));
    assert!(String::from_utf8_lossy(&stale.stdout).contains("Kind: d"), "{}", String::from_utf8_lossy(&stale.stdout));
    assert!(!write.status.success(), "a write succeeded without a quorum");
    c.ok(&["stat", "/seen"]);
}

/// The leader SIGKILLed, then the next one SIGSTOPped, while files are
/// written through a FUSE mount (write, rename, mkdir) and uploaded with
/// the CLI: every operation succeeds and every byte is there afterwards.
#[test]
fn failover_under_fuse_and_cli_workload() {
    let mut c = Cluster::start(3, 3);
    let m = c.mount(&[]);
    let mnt = m.path().to_path_buf();
    let work = tempfile::tempdir().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fuse_writer = {
        let (mnt, stop) = (mnt.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut done = Vec::new();
            for i in 0..4000u64 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) && i >= 20 {
                    break;
                }
                let dir = mnt.join(format!("w{}", i / 10));
                if i % 10 == 0 {
                    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                }
                let data = tessera_tests::random_bytes(50_000 + i as usize * 37, 9_000 + i);
                let tmp = dir.join(format!(".f{i}.tmp"));
                std::fs::write(&tmp, &data).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
                let f = dir.join(format!("f{i}"));
                std::fs::rename(&tmp, &f).unwrap_or_else(|e| panic!("rename {}: {e}", f.display()));
                done.push((f, i));
            }
            done
        })
    };
    let cli_files: Vec<(String, std::path::PathBuf)> = (0..6u64)
        .map(|i| {
            let p = work.path().join(format!("u{i}"));
            std::fs::write(&p, tessera_tests::random_bytes(300_000, 8_000 + i)).unwrap();
            (format!("/u{i}"), p)
        })
        .collect();
    let masters = c.masters_arg();
    let bins = tessera_tests::bin_dir();
    let cli_uploader = {
        let files = cli_files.clone();
        std::thread::spawn(move || {
            for (remote, local) in files {
                let mut cmd = std::process::Command::new(bins.join("tessera"));
                cmd.args(["--masters", &masters, "put", local.to_str().unwrap(), &remote]);
                let out = tessera_tests::run_bounded(cmd, Duration::from_secs(120));
                assert!(out.status.success(), "put {remote}: {}", String::from_utf8_lossy(&out.stderr));
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(800));
    let l1 = c.leader().expect("leader");
    c.masters[l1].kill();
    std::thread::sleep(Duration::from_secs(2));
    c.masters[l1].start();
    let l2 = c.wait_leader(None, Duration::from_secs(20));
    c.masters[l2].signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    c.masters[l2].signal(libc::SIGCONT);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = fuse_writer.join().expect("FUSE writer failed");
    cli_uploader.join().expect("CLI uploader failed");
    assert!(written.len() < 4000, "the FUSE workload ended before the faults did");
    for (f, i) in &written {
        let want = tessera_tests::random_bytes(50_000 + *i as usize * 37, 9_000 + i);
        assert!(std::fs::read(f).unwrap() == want, "{} differs", f.display());
    }
    for (remote, local) in &cli_files {
        assert!(c.ok(&["cat", remote]).stdout == std::fs::read(local).unwrap(), "{remote} differs");
    }
    drop(m);
}

/// SIGTERM stops every server within a few seconds, though a mount, the
/// peers and the chunkservers keep connections (streams) open to it.
#[test]
fn servers_stop_promptly_on_sigterm_while_connections_are_open() {
    let mut c = Cluster::start(3, 3);
    let m = c.mount(&[]);
    std::fs::write(m.path().join("f"), b"x").unwrap();
    let _ = std::fs::read(m.path().join("f")).unwrap();
    for p in c.masters.iter_mut().chain(c.chunkservers.iter_mut()) {
        p.signal(libc::SIGTERM);
        let t0 = Instant::now();
        let st = p.wait_exit(Duration::from_secs(8));
        assert!(st.is_some(), "{} still running 8 s after SIGTERM:\n{}", p.name, p.log());
        assert!(t0.elapsed() < Duration::from_secs(6), "{} took {:?} to stop", p.name, t0.elapsed());
    }
}
