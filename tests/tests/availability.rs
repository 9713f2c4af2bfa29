//! Serving through failures: writes go on with one chunkserver of three
//! dead (degraded, then topped up), land on three live servers at once when
//! four are there, fail promptly and clearly when too few are left; a mount
//! without a master quorum answers EIO after its I/O timeout, a process
//! waiting on it dies at once when killed; `tessera up` reports and reaps a
//! server that exits.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tessera_tests::{chunk_ids, random_bytes, run_bounded, Cluster, Opts};

/// Copies a tree file by file through the mount, timing every syscall that
/// touches it; prints "<files> <slowest seconds>".
const TIMED_COPY: &str = r#"
import os, sys, time
src, dst = sys.argv[1], sys.argv[2]
worst, n = 0.0, 0
def timed(f, *a):
    global worst
    t = time.monotonic(); r = f(*a); worst = max(worst, time.monotonic() - t); return r
for root, dirs, files in os.walk(src):
    d = os.path.join(dst, os.path.relpath(root, src))
    timed(os.makedirs, d, 0o755, True)
    for f in sorted(files):
        data = open(os.path.join(root, f), 'rb').read()
        fd = timed(os.open, os.path.join(d, f), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        off = 0
        while off < len(data):
            off += timed(os.write, fd, data[off:])
        timed(os.close, fd)
        n += 1
print(n, "%.3f" % worst)
"#;

/// Quick repair passes; garbage kept the default 10 minutes (a 500 MiB
/// upload's chunks wait longer than fast_healing's 2 s for their commit).
fn cluster(chunkservers: usize) -> Cluster {
    let master_args = ["--repair-interval-ms", "300"].map(String::from).to_vec();
    Cluster::start_with(Opts { masters: 3, chunkservers, master_args, cs_args: Vec::new(), ..Default::default() })
}

/// `n` files of 1-40 KiB under `root` in 10 directories; returns their contents' chunk ids.
fn small_tree(root: &Path, n: usize, seed: u64) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let d = root.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&d).unwrap();
        let data = random_bytes(1024 + (i * 997) % (40 << 10), seed + i as u64);
        std::fs::write(d.join(format!("f{i:04}")), &data).unwrap();
        ids.extend(chunk_ids(&data, 4 << 20));
    }
    ids
}

/// Copies on running chunkservers' disks, per chunk.
fn copies(c: &Cluster, ids: &[String]) -> Vec<usize> {
    c.copies_on_disk(ids)
}

fn wait_three_copies(c: &Cluster, ids: &[String], limit: Duration) {
    let start = Instant::now();
    loop {
        let n = copies(c, ids);
        if n.iter().all(|k| *k >= 3) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{} of {} chunks below 3 copies after {limit:?}\n{}\n{}",
            n.iter().filter(|k| **k < 3).count(),
            ids.len(),
            String::from_utf8_lossy(&c.tessera(&["cluster", "status"]).stdout),
            c.logs_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn bash(script: &str, limit: Duration) -> (bool, String, Duration) {
    let t = Instant::now();
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script);
    let out = run_bounded(cmd, limit);
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s, t.elapsed())
}

#[test]
fn one_chunkserver_of_three_killed_during_cp_and_put() {
    let mut c = cluster(3);
    let m = c.mount(&[]);
    let work = tempfile::tempdir().unwrap();
    let (tree_a, tree_b) = (work.path().join("a"), work.path().join("b"));
    let mut ids = small_tree(&tree_a, 1000, 1);
    ids.extend(small_tree(&tree_b, 1000, 50_000));
    let big = work.path().join("big");
    let big_data = random_bytes(500 << 20, 777);
    std::fs::write(&big, &big_data).unwrap();
    ids.extend(chunk_ids(&big_data, 4 << 20));
    drop(big_data);
    let script = work.path().join("timed_copy.py");
    std::fs::write(&script, TIMED_COPY).unwrap();

    let mnt = m.path().to_path_buf();
    let cp = {
        let (a, dst) = (tree_a.clone(), mnt.join("a"));
        std::thread::spawn(move || bash(&format!("cp -a {} {}", a.display(), dst.display()), Duration::from_secs(400)))
    };
    let timed = {
        let (b, dst, py) = (tree_b.clone(), mnt.join("b"), script.clone());
        std::thread::spawn(move || {
            bash(&format!("python3 {} {} {}", py.display(), b.display(), dst.display()), Duration::from_secs(400))
        })
    };
    let put = {
        let (bin, masters, big) = (tessera_tests::bin_dir().join("tessera"), c.masters_arg(), big.clone());
        std::thread::spawn(move || {
            let t = Instant::now();
            let mut cmd = Command::new(bin);
            cmd.args(["put", "--chunk-size", &(4 << 20).to_string(), big.to_str().unwrap(), "/big"])
                .env("TESSERA_MASTERS", masters);
            let out = run_bounded(cmd, Duration::from_secs(400));
            (out, t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    c.chunkservers[1].kill();
    let killed_at = Instant::now();

    let (ok, out, took) = cp.join().unwrap();
    assert!(ok, "cp -a failed after {took:?}: {out}\n{}", m.log());
    let (ok, out, _) = timed.join().unwrap();
    assert!(ok, "timed copy failed: {out}\n{}", m.log());
    let worst: f64 = out.split_whitespace().nth(1).and_then(|w| w.parse().ok()).expect("timed copy output");
    assert!(worst < 10.0, "a syscall on the mount waited {worst} s: {out}");
    let (out, took) = put.join().unwrap();
    assert!(
        out.status.success(),
        "put failed after {took:?} ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("writes finished {:?} after the kill; slowest mount syscall {worst} s", killed_at.elapsed());

    // Every byte, through the mount and the CLI.
    for (tree, name) in [(&tree_a, "a"), (&tree_b, "b")] {
        let (ok, out, _) =
            bash(&format!("diff -r {} {}", tree.display(), mnt.join(name).display()), Duration::from_secs(300));
        assert!(ok, "{name} differs: {out}");
    }
    let back = work.path().join("big.back");
    c.ok(&["get", "/big", back.to_str().unwrap()]);
    let (ok, out, _) = bash(&format!("cmp {} {}", big.display(), back.display()), Duration::from_secs(120));
    assert!(ok, "big differs: {out}");

    // Back to three copies of everything once the server returns.
    c.chunkservers[1].start();
    ids.sort();
    ids.dedup();
    wait_three_copies(&c, &ids, Duration::from_secs(240));
}

#[test]
fn with_four_servers_and_one_dead_new_writes_get_three_copies_at_once() {
    let mut c = Cluster::start(3, 4);
    c.chunkservers[2].kill();
    let work = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..8u64 {
        // Big chunks (pipeline) and small ones (parallel puts) both.
        let data = random_bytes(if i % 2 == 0 { 3 << 20 } else { 20 << 10 }, 9_000 + i);
        std::fs::write(src.join(format!("f{i}")), &data).unwrap();
        ids.extend(chunk_ids(&data, 1 << 20));
    }
    // Right after the kill: the masters still count the dead server live,
    // so its chunks must go to a substitute, not wait for it.
    let t = Instant::now();
    c.ok(&["put", "--chunk-size", &(1 << 20).to_string(), src.to_str().unwrap(), "/d"]);
    let took = t.elapsed();
    // Under the test masters' 3 s dead timeout: no waiting for the ring to change.
    assert!(took < Duration::from_millis(2500), "put took {took:?} with one server dead");
    // 3 copies on the 3 live disks as soon as the put returned. (The
    // masters' repair could not have done it: it waits for the dead
    // timeout before it stops counting the dead server.)
    let n = copies(&c, &ids);
    assert!(n.iter().all(|k| *k == 3), "copies per chunk on live disks: {n:?}");
}

#[test]
fn too_few_live_chunkservers_fail_promptly_and_clearly() {
    let mut c = Cluster::start(3, 3);
    let m = c.mount(&["--io-timeout", "20"]);
    let kept = random_bytes(3 << 20, 31);
    std::fs::write(m.path().join("kept"), &kept).unwrap();
    c.chunkservers[1].kill();
    c.chunkservers[2].kill();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("new");
    std::fs::write(&src, random_bytes(2 << 20, 32)).unwrap();

    // The CLI: a non-zero exit and one line naming live and needed servers.
    let t = Instant::now();
    let out = c.tessera(&["put", src.to_str().unwrap(), "/new"]);
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "put succeeded with one live chunkserver");
    assert!(took < Duration::from_secs(25), "put took {took:?} to fail");
    assert!(err.contains("live chunkservers") && err.contains("2 replicas needed"), "unclear error: {err}");
    assert_eq!(err.trim().lines().count(), 1, "more than one line: {err}");

    // The mount: EIO (never ENOSPC) within the I/O timeout.
    let t = Instant::now();
    let (ok, out, _) = bash(
        &format!("dd if={} of={} bs=1M conv=fsync status=none", src.display(), m.path().join("new").display()),
        Duration::from_secs(60),
    );
    let took = t.elapsed();
    assert!(!ok, "write through the mount succeeded with one live chunkserver");
    assert!(out.contains("Input/output error"), "not EIO: {out}");
    assert!(took < Duration::from_secs(25), "mount write took {took:?} to fail");

    // Nothing already stored is lost: it reads from the one live server.
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
    assert!(std::fs::read(m.path().join("kept")).unwrap() == kept, "kept file differs");
    let back = work.path().join("kept.back");
    c.ok(&["get", "/kept", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == kept);
}

/// SIGKILLs `pid` and returns how long until it is gone (reaped by `child`).
fn kill_and_time(child: &mut std::process::Child) -> Duration {
    let t = Instant::now();
    let _ = child.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return t.elapsed();
        }
        assert!(Instant::now() < deadline, "a killed process stayed on the mount for 30 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn without_a_master_quorum_calls_end_in_eio_and_waiting_processes_die_at_once() {
    let mut c = Cluster::start(3, 3);
    let mut m = c.mount(&["--io-timeout", "3"]);
    let mut m2 = c.mount(&["--io-timeout", "0"]);
    std::fs::create_dir(m.path().join("before")).unwrap();
    c.masters[1].kill();
    c.masters[2].kill();
    std::thread::sleep(Duration::from_millis(300));

    // A call that needs the quorum fails with EIO after the I/O timeout.
    let t = Instant::now();
    let err = std::fs::create_dir(m.path().join("after")).expect_err("mkdir without a quorum succeeded");
    let took = t.elapsed();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(took >= Duration::from_millis(2500) && took < Duration::from_secs(15), "EIO after {took:?}");
    // One log line says why: the request's I/O timeout, or the master
    // call's own deadline (set to the same 3 s), whichever fires first.
    let log = m.log();
    assert!(log.contains("I/O timeout") || log.contains("no master answered"), "no log line: {log}");

    // A process waiting on the mount dies as soon as it is killed (FUSE
    // interrupt), well before the timeout would free it.
    for mnt in [m.path().to_path_buf(), m2.path().to_path_buf()] {
        let mut waiting = Command::new("mkdir").arg(mnt.join("waiting")).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        assert!(waiting.try_wait().unwrap().is_none(), "mkdir returned without a quorum");
        let gone = kill_and_time(&mut waiting);
        assert!(gone < Duration::from_millis(500), "killed process took {gone:?} to go");
    }

    // Unmounting works with the cluster down.
    for mnt in [&mut m, &mut m2] {
        let t = Instant::now();
        assert!(mnt.terminate(), "the mount did not unmount without a quorum: {}", mnt.log());
        assert!(t.elapsed() < Duration::from_secs(15));
    }
    // The quorum back, the namespace is intact.
    c.masters[1].start();
    c.masters[2].start();
    c.wait_ready();
    let m3 = c.mount(&[]);
    assert!(m3.path().join("before").is_dir());
}

#[test]
fn tessera_up_reports_and_reaps_a_server_that_exits_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = tessera_tests::LocalUp::start(dir.path());
    let commands = dir.path().join("commands.sh");
    tessera_tests::eventually(Duration::from_secs(30), "commands.sh written", || commands.exists());
    let lines = std::fs::read_to_string(&commands).unwrap();
    assert_eq!(lines.lines().filter(|l| l.contains("tessera-chunkserver")).count(), 3, "{lines}");
    assert_eq!(lines.lines().filter(|l| l.contains("tessera-master")).count(), 3, "{lines}");

    // The second chunkserver's pid: the child of `up` whose data dir is chunkserver-2.
    let cs2 = dir.path().join("chunkserver-2");
    let pid = find_child(up.child.id(), &cs2).expect("chunkserver-2 is a child of tessera up");
    // SAFETY: killing a process this test started (through tessera up), by pid.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let err_log = dir.path().join("up.err");
    let said = |s: &str| std::fs::read_to_string(&err_log).unwrap_or_default().contains(s);
    tessera_tests::eventually(Duration::from_secs(10), "up reports the exit", || {
        said(&format!("chunkserver-2 (pid {pid}) stopped: killed by signal 9 (SIGKILL)"))
    });
    // Reaped: no zombie left behind.
    tessera_tests::eventually(Duration::from_secs(5), "reaped", || !Path::new(&format!("/proc/{pid}")).exists());
    // The rest still serve.
    let mut cmd = Command::new(tessera_tests::bin_dir().join("tessera"));
    // `tessera up` made the cluster's CA and an admin identity for the CLI.
    cmd.args(["mkdir", "/still-up"])
        .env("TESSERA_MASTERS", up.masters())
        .env("TESSERA_TLS_DIR", tessera_tests::LocalUp::admin_tls(dir.path()));
    let out = run_bounded(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(up.child.try_wait().unwrap().is_none(), "tessera up exited");
    // SIGTERM stops everything.
    assert!(up.stop(Duration::from_secs(60)), "tessera up did not stop");
    assert!(find_child(up.child.id(), &dir.path().join("master-1")).is_none());
}

/// The pid of a process whose parent is `parent` and whose command line
/// mentions `data_dir`.
fn find_child(parent: u32, data_dir: &Path) -> Option<u32> {
    let want = data_dir.display().to_string();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces): state, ppid.
        let ppid = stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).and_then(|p| p.parse().ok());
        if ppid != Some(parent) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&want) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn a_killed_chunkserver_leaves_the_live_ring_before_its_dead_timeout() {
    // The test masters' dead timeout is 3 s; a refused connection is proof
    // sooner that the process is gone. The leader holds a presence stream
    // to every live server, so the drop is usually noticed at once (tens of
    // ms); failing that, the probe of a server that missed a heartbeat
    // (500 ms) finds it within about a second. Either is well before 3 s.
    let mut c = Cluster::start(3, 3);
    std::thread::sleep(Duration::from_secs(1));
    // Polled in process over one kept connection: a CLI per poll (process
    // start, TLS handshake) would add its own cost to the figure.
    let fs = c.client();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let live = || {
        rt.block_on(
            fs.meta.call_unordered("get_ring", |mut m| async move { m.get_ring(tessera_proto::pb::Empty {}).await }),
        )
        .map_or(0, |r| r.servers.iter().filter(|s| s.alive).count())
    };
    assert_eq!(live(), 3, "connected, all alive");
    c.chunkservers[2].kill();
    let t = Instant::now();
    tessera_tests::eventually(Duration::from_secs(10), "the killed server marked dead", || live() == 2);
    let took = t.elapsed();
    eprintln!("marked dead after {took:?}");
    assert!(took < Duration::from_millis(1500), "marked dead after {took:?}");
    // A restart brings it back.
    c.chunkservers[2].start();
    tessera_tests::eventually(Duration::from_secs(20), "the server alive again", || live() == 3);
}
