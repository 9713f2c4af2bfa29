//! End-to-end: CLI put/get against a real cluster, replica placement on
//! disk, dedup, corruption, chunkserver loss, restarts.

use std::collections::BTreeMap;
use std::path::Path;
use tessera_tests::{chunk_ids, dir_bytes, eventually, journal_holds_records, random_bytes, Cluster, Opts};

const CHUNK: usize = 1 << 20; // small chunks: more of them, faster tests
const BIG: usize = 50 << 20;

/// Writes the acceptance tree: edge sizes, one 50 MiB file, random small files.
fn make_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, BIG];
    for (i, s) in sizes.iter().enumerate() {
        files.insert(format!("edge/size-{i}"), random_bytes(*s, 1000 + i as u64));
    }
    for i in 0..194u64 {
        let len = (random_bytes(4, i)[..4].iter().map(|b| *b as usize).sum::<usize>() * 613) % 300_000;
        files.insert(format!("d{}/f{i}", i % 7), random_bytes(len, 5000 + i));
    }
    for (name, data) in &files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
    }
    files
}

fn assert_tree_eq(files: &BTreeMap<String, Vec<u8>>, root: &Path) {
    for (name, data) in files {
        let got = std::fs::read(root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got == *data, "{name}: content differs ({} vs {} bytes)", got.len(), data.len());
    }
}

fn flip_byte(p: &Path, at: u64) {
    let mut b = std::fs::read(p).unwrap();
    let i = (at as usize) % b.len();
    b[i] ^= 0xff;
    std::fs::write(p, b).unwrap();
}

#[test]
fn tree_replicas_dedup_corruption_and_chunkserver_loss() {
    let mut c = Cluster::start(3, 3);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let files = make_tree(&src);
    let cs = CHUNK.to_string();
    c.ok(&["put", "--chunk-size", &cs, src.to_str().unwrap(), "/data"]);

    let back = work.path().join("back");
    c.ok(&["get", "/data", back.to_str().unwrap()]);
    assert_tree_eq(&files, &back);

    // Every chunk is on exactly 3 distinct chunkservers' disks.
    let mut all = std::collections::BTreeSet::new();
    for data in files.values() {
        all.extend(chunk_ids(data, CHUNK));
    }
    for id in &all {
        let holders = (0..3).filter(|j| c.chunk_file(*j, id).is_some()).count();
        assert_eq!(holders, 3, "chunk {id} is on {holders} chunkservers");
    }

    // Dedup: the same 50 MiB again under another name sends no chunk bytes.
    let before = c.stored_bytes();
    let big = src.join("edge/size-5");
    let out = c.ok(&["put", "--chunk-size", &cs, big.to_str().unwrap(), "/data/copy-of-big"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sent 0 bytes"), "second upload sent data: {err}");
    assert_eq!(c.stored_bytes(), before, "used space grew on a duplicate upload");

    // Corrupt one replica of a chunk of the big file: reads stay correct and
    // the bad copy is reported.
    let ids = chunk_ids(&files["edge/size-5"], CHUNK);
    let victim = &ids[7];
    let bad = c.chunk_file(0, victim).or_else(|| c.chunk_file(1, victim)).unwrap();
    flip_byte(&bad, 12345);
    let mut corrupt_seen = false;
    for round in 0..3 {
        // Several reads: the client picks replicas by load, so make sure the
        // corrupt one is hit at least once.
        let out_path = work.path().join(format!("big-{round}"));
        let out = c.tessera(&["get", "/data/edge/size-5", out_path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(std::fs::read(&out_path).unwrap() == files["edge/size-5"], "corrupt bytes returned");
        corrupt_seen |= String::from_utf8_lossy(&out.stderr).contains("corrupt replica");
    }
    let master_logs: String = c.masters.iter().map(|m| m.log()).collect();
    assert!(corrupt_seen || master_logs.contains("corrupt replica"), "the corrupt replica was never reported");

    // SIGKILL one chunkserver: everything still reads back.
    c.chunkservers[2].kill();
    let back2 = work.path().join("back2");
    c.ok(&["get", "/data", back2.to_str().unwrap()]);
    assert_tree_eq(&files, &back2);
}

#[test]
fn leader_failover_keeps_committed_files() {
    let mut c = Cluster::start(3, 3);
    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a");
    std::fs::write(&a, random_bytes(3 << 20, 1)).unwrap();
    c.ok(&["put", a.to_str().unwrap(), "/a"]);
    let leader = c.leader().expect("a leader");
    c.masters[leader].kill();
    let t = std::time::Instant::now();
    let b = work.path().join("b");
    std::fs::write(&b, random_bytes(2 << 20, 2)).unwrap();
    c.ok(&["put", b.to_str().unwrap(), "/b"]);
    assert!(t.elapsed().as_secs() < 20, "failover took {:?}", t.elapsed());
    for (name, local) in [("/a", &a), ("/b", &b)] {
        let out = work.path().join(format!("got{}", name.replace('/', "-")));
        c.ok(&["get", name, out.to_str().unwrap()]);
        assert!(std::fs::read(out).unwrap() == std::fs::read(local).unwrap(), "{name} differs");
    }
    // The old leader comes back as a follower and catches up.
    c.masters[leader].stop();
    c.start_all();
    let out = c.ok(&["ls", "/"]);
    let ls = String::from_utf8_lossy(&out.stdout);
    assert!(ls.contains('a') && ls.contains('b'), "{ls}");
}

#[test]
fn full_restart_keeps_everything() {
    let mut c = Cluster::start(3, 3);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let mut files = BTreeMap::new();
    for i in 0..20u64 {
        files.insert(format!("f{i}"), random_bytes((i as usize * 97_003) % (3 << 20), 900 + i));
    }
    for (n, d) in &files {
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join(n), d).unwrap();
    }
    c.ok(&["put", src.to_str().unwrap(), "/r"]);
    c.ok(&["mkdir", "-p", "/r/empty/nested"]);
    let listing = c.ok(&["ls", "-l", "/r"]).stdout;

    // Orderly stop and start.
    c.stop_all();
    c.start_all();
    assert_eq!(c.ok(&["ls", "-l", "/r"]).stdout, listing);
    // Crash stop (SIGKILL everything) and start.
    for p in c.masters.iter_mut().chain(c.chunkservers.iter_mut()) {
        p.kill();
    }
    c.start_all();
    assert_eq!(c.ok(&["ls", "-l", "/r"]).stdout, listing);
    let back = work.path().join("back");
    c.ok(&["get", "/r", back.to_str().unwrap()]);
    assert_tree_eq(&files, &back);
    c.ok(&["stat", "/r/empty/nested"]);
}

#[test]
fn single_master_cluster_works() {
    let c = Cluster::start(1, 3);
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("one");
    std::fs::write(&f, random_bytes(5 << 20, 77)).unwrap();
    c.ok(&["put", f.to_str().unwrap(), "/one"]);
    let out = c.ok(&["cat", "/one"]);
    assert!(out.stdout == std::fs::read(&f).unwrap());
    // A reader that goes away (`| head`) ends `cat` and `ls` quietly, with
    // the status a shell gives for SIGPIPE, and no message.
    for verb in ["cat /one", "ls -l /"] {
        let script = format!(
            "{} {verb} | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}",
            tessera_tests::bin_dir().join("tessera").display()
        );
        let mut sh = std::process::Command::new("bash");
        sh.args(["-c", &script]).env("TESSERA_MASTERS", c.masters_arg());
        let out = tessera_tests::run_bounded(sh, std::time::Duration::from_secs(60));
        let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // `ls` may finish before `head` closes the pipe; 5 MiB of `cat` cannot.
        let ok = status == "141" || (verb.starts_with("ls") && status == "0");
        assert!(ok, "{verb} | head: status {status}");
        assert!(out.stderr.is_empty(), "{verb} | head: {}", String::from_utf8_lossy(&out.stderr));
    }
    let st = c.status();
    assert_eq!(st["masters"].as_array().unwrap().len(), 1);
    assert_eq!(st["masters"][0]["role"], "Leader");
    assert_eq!(st["chunkservers"].as_array().unwrap().len(), 3);
}

/// The README's tour: `tessera put DIR /data`, later `tessera put --resume
/// DIR /data` with a file added. The second run goes where the first put
/// the tree (not into /data/DIR, as a copy into an existing directory
/// would), sends only what is new, and a copy into a directory that
/// existed before the first run resumes inside it too.
#[test]
fn put_resume_continues_where_the_first_run_wrote() {
    let c = Cluster::start(1, 3);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("tree");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a"), random_bytes(300_000, 1)).unwrap();
    std::fs::write(dir.join("sub/b"), random_bytes(2000, 2)).unwrap();
    let d = dir.to_str().unwrap();
    c.ok(&["put", d, "/data"]);
    std::fs::write(dir.join("c"), b"added later").unwrap();
    let out = c.ok(&["put", "--resume", d, "/data"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let ls = String::from_utf8_lossy(&c.ok(&["ls", "/data"]).stdout).to_string();
    assert!(ls.contains('c') && !ls.contains("tree"), "resume nested the tree or missed the new file: {ls}");
    assert!(err.contains("sent 11 bytes"), "resume sent more than the new file: {err}");
    assert!(c.ok(&["cat", "/data/c"]).stdout == b"added later");
    // Into a directory that existed before: both runs write /in/tree.
    c.ok(&["mkdir", "/in"]);
    c.ok(&["put", d, "/in"]);
    c.ok(&["put", "--resume", d, "/in"]);
    let ls = String::from_utf8_lossy(&c.ok(&["ls", "/in"]).stdout).to_string();
    assert_eq!(ls.split_whitespace().collect::<Vec<_>>(), vec!["tree"], "{ls}");
    assert!(c.ok(&["cat", "/in/tree/c"]).stdout == b"added later");
}

/// Small chunks are acknowledged once appended to each chunkserver's journal
/// (one fdatasync) and become chunk files at the next checkpoint. With the
/// checkpoint held off, every chunkserver is SIGKILLed right after the put:
/// each replays its journal on restart and every byte is back, as files.
#[test]
fn journaled_small_chunks_survive_sigkill_of_every_chunkserver() {
    let cs_args = vec!["--journal-checkpoint-ms".to_string(), "3600000".to_string()];
    let mut c =
        Cluster::start_with(Opts { masters: 1, chunkservers: 3, master_args: vec![], cs_args, ..Default::default() });
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("small");
    std::fs::create_dir_all(&src).unwrap();
    let mut files = BTreeMap::new();
    for i in 0..150u64 {
        let data = random_bytes(1 + (i as usize * 877) % 100_000, 7000 + i);
        std::fs::write(src.join(format!("f{i:03}")), &data).unwrap();
        files.insert(format!("f{i:03}"), data);
    }
    c.ok(&["put", src.to_str().unwrap(), "/small"]);
    for j in 0..3 {
        assert_eq!(dir_bytes(&c.cs_dir(j).join("chunks")), 0, "chunkserver {j} wrote chunk files already");
        assert!(journal_holds_records(&c.cs_dir(j).join("journal")), "chunkserver {j} journaled nothing");
    }
    for j in 0..3 {
        c.chunkservers[j].kill();
    }
    for j in 0..3 {
        c.chunkservers[j].start();
    }
    // Each replays its journal before it listens again.
    for cs in &c.chunkservers {
        eventually(std::time::Duration::from_secs(30), "chunkserver restarted", || {
            cs.log().matches("chunkserver serving").count() >= 2
        });
    }
    assert!(c.chunkservers[0].log().contains("journal replayed into chunk files"));
    let back = work.path().join("back");
    c.ok(&["get", "/small", back.to_str().unwrap()]);
    assert_tree_eq(&files, &back);
    for data in files.values() {
        for id in chunk_ids(data, CHUNK) {
            assert_eq!((0..3).filter(|j| c.chunk_file(*j, &id).is_some()).count(), 3, "chunk {id}");
        }
    }
}

/// Small chunks travel on one long-lived stream per chunkserver. Results
/// must reach the right callers when many puts share it (a refused one among
/// them), a killed server must fail its puts promptly, not hang them, and
/// once it is back the next puts open a new stream and land.
#[test]
fn small_put_stream_pairs_results_and_recovers_from_a_killed_chunkserver() {
    use bytes::Bytes;
    use std::time::{Duration, Instant};
    use tessera_client::chunks::ChunkIo;
    use tessera_proto::ChunkId;
    let mut c = Cluster::start_with(Opts { masters: 1, chunkservers: 3, ..Default::default() });
    let addr = c.chunkservers[0].addr.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let io = std::sync::Arc::new(c.chunk_io(&rt, Duration::from_secs(5)));
    let chunk = |seed: u64| {
        let data = Bytes::from(random_bytes(4096 + seed as usize, 90_000 + seed));
        (ChunkId::of(&data), data)
    };
    let read_back = |io: &ChunkIo, id: ChunkId| {
        rt.block_on(io.get_verified(std::slice::from_ref(&addr), id, &|_| {})).expect("read back")
    };

    // 64 concurrent puts on one stream, one refused (over a frame's size).
    let too_big = Bytes::from(vec![7u8; tessera_proto::MAX_FRAME + 1]);
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..64u64 {
            let (io, addr) = (io.clone(), addr.clone());
            let (id, data) = if i == 31 { (ChunkId::of(&too_big), too_big.clone()) } else { chunk(i) };
            tasks.push(tokio::spawn(async move { io.put_small(&addr, id, data).await }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    for (i, r) in results.iter().enumerate() {
        match (i, r) {
            (31, Err(e)) => assert_eq!(e.errno(), libc::EINVAL, "{e}"),
            (31, Ok(())) => panic!("an oversized put was accepted"),
            (_, Err(e)) => panic!("put {i} failed: {e}"),
            (_, Ok(())) => {}
        }
    }
    for i in (0..64u64).filter(|i| *i != 31) {
        let (id, data) = chunk(i);
        assert_eq!(read_back(&io, id), data, "chunk {i}");
    }

    // Killed: a put fails within the client's timeout instead of hanging.
    c.chunkservers[0].kill();
    let (id, data) = chunk(100);
    let began = Instant::now();
    assert!(rt.block_on(io.put_small(&addr, id, data)).is_err(), "a put to a killed chunkserver succeeded");
    assert!(began.elapsed() < Duration::from_secs(7), "a put to a killed server took {:?}", began.elapsed());

    // Back: the next puts open a new stream and land.
    c.chunkservers[0].start();
    let (id, data) = chunk(101);
    eventually(Duration::from_secs(30), "a put after the restart", || {
        rt.block_on(io.put_small(&addr, id, data.clone())).is_ok()
    });
    for i in 102..110u64 {
        let (id, data) = chunk(i);
        rt.block_on(io.put_small(&addr, id, data.clone())).expect("put after restart");
        assert_eq!(read_back(&io, id), data, "chunk {i}");
    }
}
