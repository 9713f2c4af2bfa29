//! Self-healing with 4 chunkservers and 120 MiB: repair after SIGKILL and
//! after a wiped disk, rebalancing onto a new server, scrubbing, garbage
//! collection (deleted files, abandoned uploads, and the GC/commit race),
//! while a reader keeps reading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_tests::{chunk_ids, fast_healing, random_bytes, Cluster, Opts};

const CHUNK: usize = 1 << 20;
const FILES: usize = 12;

fn cluster(chunkservers: usize) -> Cluster {
    let (master_args, cs_args) = fast_healing();
    Cluster::start_with(Opts { masters: 3, chunkservers, master_args, cs_args, ..Default::default() })
}

/// 12 files of 10 MiB (120 MiB), put with 1 MiB chunks.
fn load(c: &Cluster, work: &Path) -> BTreeMap<String, Vec<u8>> {
    let src = work.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut files = BTreeMap::new();
    for i in 0..FILES as u64 {
        let data = random_bytes(10 << 20, 100 + i);
        std::fs::write(src.join(format!("f{i:02}")), &data).unwrap();
        files.insert(format!("f{i:02}"), data);
    }
    c.ok(&["put", "--chunk-size", &CHUNK.to_string(), src.to_str().unwrap(), "/d"]);
    files
}

fn all_chunks(files: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut v: Vec<String> = files.values().flat_map(|d| chunk_ids(d, CHUNK)).collect();
    v.sort();
    v.dedup();
    v
}

/// Replica counts per chunk on the disks of running chunkservers.
fn replicas(c: &Cluster, ids: &[String]) -> Vec<usize> {
    c.copies_on_disk(ids)
}

/// Waits (bounded) until the leader's healer has nothing left to do and
/// every chunk has exactly 3 replicas on running servers' disks.
fn wait_fully_replicated(c: &Cluster, ids: &[String], limit: Duration) {
    let start = Instant::now();
    // Let the healer see the latest membership before trusting "settled".
    std::thread::sleep(Duration::from_secs(2));
    loop {
        let r = replicas(c, ids);
        let settled = c.status()["repair"]["settled"] == true;
        if settled && r.iter().all(|n| *n == 3) {
            return;
        }
        let under = r.iter().filter(|n| **n < 3).count();
        let over = r.iter().filter(|n| **n > 3).count();
        assert!(
            start.elapsed() < limit,
            "not repaired after {limit:?}: {under} chunks under, {over} over 3 replicas\n{}\n{}",
            String::from_utf8_lossy(&c.tessera(&["cluster", "status"]).stdout),
            c.logs_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A cluster of `chunkservers` loaded with `load`'s files, every chunk at 3
/// copies (waited for up to `limit`): the cluster, the work directory, the
/// files and their chunk ids.
fn loaded(
    chunkservers: usize,
    limit: Duration,
) -> (Cluster, tempfile::TempDir, BTreeMap<String, Vec<u8>>, Vec<String>) {
    let c = cluster(chunkservers);
    let work = tempfile::tempdir().unwrap();
    let files = load(&c, work.path());
    let ids = all_chunks(&files);
    wait_fully_replicated(&c, &ids, limit);
    (c, work, files, ids)
}

fn verify_all(c: &Cluster, files: &BTreeMap<String, Vec<u8>>, out: &Path) {
    let _ = std::fs::remove_dir_all(out);
    c.ok(&["get", "/d", out.to_str().unwrap()]);
    for (name, data) in files {
        assert!(std::fs::read(out.join(name)).unwrap() == *data, "{name} differs");
    }
}

/// A reader that cycles through the files until stopped, counting errors.
struct Reader {
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    fn start(c: &Cluster, files: &BTreeMap<String, Vec<u8>>) -> Reader {
        let (stop, errors, reads) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let bin = tessera_tests::bin_dir().join("tessera");
        let masters = c.masters_arg();
        let files: Vec<(String, blake3::Hash)> = files.iter().map(|(n, d)| (n.clone(), blake3::hash(d))).collect();
        let (s, e, r) = (stop.clone(), errors.clone(), reads.clone());
        let handle = std::thread::spawn(move || {
            let mut i = 0;
            while !s.load(Ordering::SeqCst) {
                let (name, hash) = &files[i % files.len()];
                let mut cmd = std::process::Command::new(&bin);
                cmd.args(["cat", &format!("/d/{name}")]).env("TESSERA_MASTERS", &masters);
                let out = tessera_tests::run_bounded(cmd, Duration::from_secs(120));
                if !out.status.success() || blake3::hash(&out.stdout) != *hash {
                    eprintln!("reader: {name} failed: {}", String::from_utf8_lossy(&out.stderr));
                    e.fetch_add(1, Ordering::SeqCst);
                }
                r.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        });
        Reader { stop, errors, reads, handle: Some(handle) }
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        assert!(self.reads.load(Ordering::SeqCst) > 0, "the reader never read");
        assert_eq!(self.errors.load(Ordering::SeqCst), 0, "the reader saw errors");
    }
}

#[test]
fn sigkill_then_wipe_then_join_all_repaired_while_reading() {
    let (mut c, work, files, ids) = loaded(4, Duration::from_secs(30));
    let reader = Reader::start(&c, &files);

    // 1. SIGKILL one chunkserver: repaired onto the other three.
    let t = Instant::now();
    c.chunkservers[1].kill();
    wait_fully_replicated(&c, &ids, Duration::from_secs(180));
    eprintln!("repair after SIGKILL took {:?}", t.elapsed());
    verify_all(&c, &files, &work.path().join("v1"));

    // 2. Wipe its data dir and restart it: it rejoins empty and gets its share back.
    std::fs::remove_dir_all(c.cs_dir(1)).unwrap();
    c.chunkservers[1].stop();
    c.start_all();
    wait_fully_replicated(&c, &ids, Duration::from_secs(180));
    let held = ids.iter().filter(|id| c.chunk_file(1, id).is_some()).count();
    assert!(held > ids.len() / 2, "the wiped server got only {held} of {} chunks back", ids.len());
    verify_all(&c, &files, &work.path().join("v2"));

    // 3. A 5th chunkserver: about 1/N of the replicas move to it, surplus removed.
    let j = c.add_chunkserver();
    c.wait_ready();
    wait_fully_replicated(&c, &ids, Duration::from_secs(180));
    let on_new = ids.iter().filter(|id| c.chunk_file(j, id).is_some()).count();
    let share = on_new as f64 / (3 * ids.len()) as f64;
    assert!((0.12..=0.30).contains(&share), "new server holds {on_new} replicas ({share:.2} of all; ideal 0.20)");
    verify_all(&c, &files, &work.path().join("v3"));
    reader.finish();

    let out = c.ok(&["fsck", "/d"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{FILES} files, 0 unreadable")));
}

#[test]
fn scrubber_finds_flipped_bytes_and_they_are_repaired() {
    let c = cluster(4);
    let work = tempfile::tempdir().unwrap();
    let files = load(&c, work.path());
    let ids = all_chunks(&files);
    wait_fully_replicated(&c, &ids, Duration::from_secs(30));
    // Flip one byte in 10 chunk files (one replica each).
    let mut flipped: Vec<(usize, String)> = Vec::new();
    for id in ids.iter().step_by(ids.len() / 10).take(10) {
        let j = (0..4).find(|j| c.chunk_file(*j, id).is_some()).unwrap();
        let p = c.chunk_file(j, id).unwrap();
        let mut b = std::fs::read(&p).unwrap();
        b[777] ^= 0x55;
        std::fs::write(&p, b).unwrap();
        flipped.push((j, id.clone()));
    }
    // Each bad file lands in its server's quarantine, and a good copy takes its place.
    let start = Instant::now();
    loop {
        let quarantined = flipped
            .iter()
            .filter(|(j, id)| {
                std::fs::read_dir(c.cs_dir(*j).join("quarantine"))
                    .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with(id.as_str())))
                    .unwrap_or(false)
            })
            .count();
        if quarantined == 10 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "scrubber found {quarantined} of 10");
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_fully_replicated(&c, &ids, Duration::from_secs(120));
    // Every replica on disk is good again.
    for (j, id) in &flipped {
        for k in 0..4 {
            if let Some(p) = c.chunk_file(k, id) {
                assert_eq!(
                    blake3::hash(&std::fs::read(&p).unwrap()).to_hex().to_string(),
                    *id,
                    "bad replica left on {k}"
                );
            }
        }
        let _ = j;
    }
    verify_all(&c, &files, &work.path().join("v"));
}

fn wait_stored_below(c: &Cluster, limit_bytes: u64, within: Duration) {
    let start = Instant::now();
    while c.stored_bytes() > limit_bytes {
        assert!(
            start.elapsed() < within,
            "space not reclaimed: {} bytes still stored\n{}",
            c.stored_bytes(),
            c.logs_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn gc_reclaims_deleted_files_and_abandoned_uploads() {
    let mut c = cluster(4);
    let work = tempfile::tempdir().unwrap();
    let keep = random_bytes(3 << 20, 1);
    std::fs::write(work.path().join("keep"), &keep).unwrap();
    c.ok(&["put", work.path().join("keep").to_str().unwrap(), "/keep"]);
    let kept_bytes = 3 * keep.len() as u64;
    let _files = load(&c, work.path());
    assert!(c.stored_bytes() > FILES as u64 * 3 * (9 << 20), "three copies of the files");
    c.ok(&["rm", "-r", "/d"]);
    wait_stored_below(&c, kept_bytes, Duration::from_secs(60));

    // A client killed mid-upload leaves unreferenced chunks: collected too.
    let big = work.path().join("big");
    std::fs::write(&big, random_bytes(200 << 20, 2)).unwrap();
    let mut cmd = std::process::Command::new(tessera_tests::bin_dir().join("tessera"));
    cmd.args(["put", big.to_str().unwrap(), "/big"]).env("TESSERA_MASTERS", c.masters_arg());
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while c.stored_bytes() < kept_bytes + (30 << 20) && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: killing the child we spawned, by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    assert!(c.stored_bytes() > kept_bytes, "the upload stored nothing before it was killed");
    wait_stored_below(&c, kept_bytes, Duration::from_secs(60));
    let out = c.ok(&["cat", "/keep"]);
    assert!(out.stdout == keep);
    // The records of the collected chunks go once their deletion is older
    // than twice the grace (2 s here): they do not pile up forever.
    let records = |c: &Cluster| c.status()["repair"]["collection_records"].as_u64();
    assert!(records(&c).is_some(), "cluster status reports no collection records: {}", c.status());
    tessera_tests::eventually(Duration::from_secs(60), "collection records pruned", || records(&c) == Some(0));
    c.ok(&["put", work.path().join("keep").to_str().unwrap(), "/keep-again"]);
    assert!(c.ok(&["cat", "/keep-again"]).stdout == keep);
    c.masters[0].stop(); // exercise a leader change during GC bookkeeping
    c.start_all();
    assert!(c.ok(&["cat", "/keep"]).stdout == keep);
}

/// Uploads of the same content race deletes of files holding it while GC
/// runs with a short grace period: every committed file must read back.
#[test]
fn gc_never_deletes_a_chunk_a_concurrent_commit_references() {
    let c = cluster(4);
    let work = tempfile::tempdir().unwrap();
    let content = random_bytes(6 << 20, 42);
    let local: PathBuf = work.path().join("same");
    std::fs::write(&local, &content).unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut round = 0;
    while Instant::now() < deadline {
        // Put the content under a new name, delete the previous one: the
        // chunks keep flipping between garbage and referenced.
        let name = format!("/v{round}");
        c.ok(&["put", local.to_str().unwrap(), &name]);
        if round > 0 {
            c.ok(&["rm", &format!("/v{}", round - 1)]);
        }
        // Let the GC catch some of them as garbage between rounds.
        std::thread::sleep(Duration::from_millis(200 * (round % 12)));
        let out = c.ok(&["cat", &name]);
        assert!(out.stdout == content, "round {round}: committed file lost its chunks");
        round += 1;
    }
    let out = c.ok(&["fsck", "/"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 unreadable"));
}

/// Drain moves a chunkserver's data away before it leaves; fsck reports
/// health and exits non-zero once files cannot be read.
#[test]
fn drain_empties_a_chunkserver_and_fsck_reports_unreadable_files() {
    let mut c = cluster(4);
    let work = tempfile::tempdir().unwrap();
    let files = load(&c, work.path());
    let ids = all_chunks(&files);
    wait_fully_replicated(&c, &ids, Duration::from_secs(30));
    c.ok(&["admin", "chunkserver", "drain", "cs-4"]);
    let start = Instant::now();
    loop {
        let list = String::from_utf8_lossy(&c.ok(&["admin", "chunkserver", "list"]).stdout).into_owned();
        let drained = list.lines().any(|l| l.starts_with("cs-4") && l.contains("drained"));
        let left = ids.iter().filter(|id| c.chunk_file(3, id).is_some()).count();
        if drained && left == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "drain incomplete: {left} chunks left\n{list}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Everything is on the other three, 3 replicas each.
    for id in &ids {
        assert_eq!((0..3).filter(|j| c.chunk_file(*j, id).is_some()).count(), 3, "chunk {id}");
    }
    c.chunkservers[3].stop();
    verify_all(&c, &files, &work.path().join("v"));
    let out = c.ok(&["fsck", "/d"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{FILES} files, 0 unreadable")));
    // Lose every replica: fsck says so and fails.
    for j in 0..3 {
        c.chunkservers[j].kill();
    }
    // Past the master's dead timeout (5 s), their reports no longer count.
    std::thread::sleep(Duration::from_secs(8));
    let out = c.tessera(&["fsck", "/d"]);
    assert!(!out.status.success(), "fsck succeeded with no chunkserver alive");
    assert!(String::from_utf8_lossy(&out.stdout).contains("UNREADABLE"), "{}", String::from_utf8_lossy(&out.stdout));
}

/// A hung chunkserver (SIGSTOPped: its connections stay open and nothing
/// answers) is declared dead within 10 s, its chunks are copied to the
/// other three, and every file reads back meanwhile.
#[test]
fn a_hung_chunkserver_is_declared_dead_within_10_s_and_repaired_around() {
    let (mut c, work, files, ids) = loaded(4, Duration::from_secs(60));
    let hung = c.chunkservers[0].addr.clone();
    c.chunkservers[0].signal(libc::SIGSTOP);
    let t0 = Instant::now();
    loop {
        let s = c.status();
        let alive = s["chunkservers"].as_array().and_then(|v| v.iter().find(|x| x["addr"] == hung.as_str()).cloned());
        if alive.is_some_and(|x| x["alive"] == false) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "a hung chunkserver still alive after 10 s: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("hung chunkserver declared dead after {:?}", t0.elapsed());
    // Copies on the three that answer.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let short = ids.iter().filter(|id| (1..4).filter(|j| c.chunk_file(*j, id).is_some()).count() < 3).count();
        if short == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{short} chunks below 3 copies on the live servers after 60 s");
        std::thread::sleep(Duration::from_millis(500));
    }
    verify_all(&c, &files, &work.path().join("out"));
    c.chunkservers[0].signal(libc::SIGCONT);
}

/// A repair copy from a holder whose copy went bad is refused by the
/// target (which hashes what it receives): the bad copy is quarantined at
/// its source and never spreads. Once the one good holder is back, every
/// copy on disk is good again. (Scrubbing is off: only the copy path can
/// find the damage here.)
#[test]
fn a_corrupt_repair_source_is_quarantined_not_spread() {
    let (master_args, _) = fast_healing();
    let cs_args = vec!["--scrub-mbps".to_string(), "0".to_string()];
    let mut c = Cluster::start_with(Opts { masters: 3, chunkservers: 4, master_args, cs_args, ..Default::default() });
    let work = tempfile::tempdir().unwrap();
    let data = random_bytes(3 << 20, 4242);
    let src = work.path().join("one");
    std::fs::write(&src, &data).unwrap();
    c.ok(&["put", "--chunk-size", &(4 << 20).to_string(), src.to_str().unwrap(), "/one"]);
    let ids = chunk_ids(&data, 4 << 20);
    assert_eq!(ids.len(), 1);
    let id = &ids[0];
    wait_fully_replicated(&c, &ids, Duration::from_secs(60));
    c.journals_checkpointed();
    let holders: Vec<usize> = (0..4).filter(|j| c.chunk_file(*j, id).is_some()).collect();
    assert_eq!(holders.len(), 3, "holders {holders:?}");
    let spare = (0..4).find(|j| !holders.contains(j)).unwrap();
    let (bad, good) = (&holders[..2], holders[2]);
    for j in bad {
        let p = c.chunk_file(*j, id).unwrap();
        let mut b = std::fs::read(&p).unwrap();
        b[12345] ^= 0x5a;
        std::fs::write(&p, b).unwrap();
    }
    c.chunkservers[good].kill();
    let quarantined = |j: usize| {
        std::fs::read_dir(c.cs_dir(j).join("quarantine"))
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with(id.as_str())))
            .unwrap_or(false)
    };
    tessera_tests::eventually(Duration::from_secs(60), "both bad copies quarantined by the copy path", || {
        bad.iter().all(|j| quarantined(*j))
    });
    assert!(c.chunk_file(spare, id).is_none(), "a corrupt copy reached the spare server");
    c.chunkservers[good].start();
    wait_fully_replicated(&c, &ids, Duration::from_secs(120));
    for j in 0..4 {
        if let Some(p) = c.chunk_file(j, id) {
            assert_eq!(blake3::hash(&std::fs::read(&p).unwrap()).to_hex().to_string(), *id, "bad copy on {j}");
        }
    }
    let out = work.path().join("out");
    c.ok(&["get", "/one", out.to_str().unwrap()]);
    assert!(std::fs::read(&out).unwrap() == data, "read back differs");
}
