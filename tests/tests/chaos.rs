//! Chaos soak, short version (bench/chaos.sh runs it for longer with
//! `TESSERA_CHAOS_SECS`): while writers on two mounts and the CLI write,
//! rename and append, a SQLite database on one mount takes one
//! transaction per row, and library clients run the linearizability
//! workload (lin_workload.rs), a nemesis SIGKILLs and restarts, or
//! SIGSTOPs and resumes, one random server at a time (chunkserver or
//! master, the leader among them), or cuts one master (often the leader)
//! off the network while it keeps running: each master runs in its own
//! network namespace, everything else in the lab's hub (tests/src/netns.rs). Afterwards every acknowledged write is
//! there, byte-exact, on both mounts; the database passes its integrity
//! check on the other mount and holds every acknowledged row; the metadata
//! history is linearizable; fsck finds 3 copies of everything; no
//! operation failed, and none waited longer than a bound. Prints a report:
//! operations, faults by kind, the longest wait per fault kind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_tests::lin_workload::{finish, run_client, setup, Recorder, CLIENTS};
use tessera_tests::{random_bytes, Cluster, Mount, Opts};

/// The longest any one operation may wait through a fault: a leader's
/// loss costs an election (and a frozen leader an RPC timeout first), a
/// stopped chunkserver a write timeout and a substitute.
const LONGEST_WAIT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    None,
    KillChunkserver,
    StopChunkserver,
    KillMaster,
    StopMaster,
    PartitionMaster,
}

/// What the workload saw: the files it was told are written (path under
/// the mount root -> bytes), operations, failures, and the longest wait
/// per fault active when the operation began.
#[derive(Default)]
struct Record {
    files: BTreeMap<PathBuf, Vec<u8>>,
    ops: u64,
    failures: Vec<String>,
    longest: BTreeMap<Fault, Duration>,
}

struct Shared {
    record: Mutex<Record>,
    fault: Mutex<Fault>,
    stop: AtomicBool,
}

impl Shared {
    /// Runs one operation, timing it against the fault active at its start.
    fn op<T>(&self, what: &str, f: impl FnOnce() -> std::io::Result<T>) -> Option<T> {
        let fault = *self.fault.lock().unwrap();
        let t0 = Instant::now();
        let r = f();
        let took = t0.elapsed();
        let mut rec = self.record.lock().unwrap();
        rec.ops += 1;
        let l = rec.longest.entry(fault).or_default();
        *l = (*l).max(took);
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                rec.failures.push(format!("{what} during {fault:?} after {took:?}: {e}"));
                None
            }
        }
    }
}

/// Writes, renames and appends through one mount until told to stop.
fn mount_writer(sh: Arc<Shared>, root: PathBuf, tag: &'static str, seed: u64) {
    let dir = root.join(tag);
    std::fs::create_dir_all(&dir).unwrap();
    let log_path = dir.join("log");
    let mut log = Vec::new();
    let mut i = 0u64;
    while !sh.stop.load(Ordering::SeqCst) {
        let data = random_bytes(1 + ((i * 7919) % (300 << 10)) as usize, seed + i);
        let p = dir.join(format!("f{i:05}"));
        if sh.op("write", || std::fs::write(&p, &data)).is_some() {
            let mut keep = p.clone();
            if i % 4 == 3 {
                let q = dir.join(format!("r{i:05}"));
                if sh.op("rename", || std::fs::rename(&p, &q)).is_some() {
                    keep = q;
                }
            }
            sh.record.lock().unwrap().files.insert(keep.strip_prefix(&root).unwrap().to_path_buf(), data);
        }
        let line = format!("{tag} {i}\n").into_bytes();
        let appended = sh.op("append", || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
            f.write_all(&line)?;
            f.sync_all()
        });
        if appended.is_some() {
            log.extend_from_slice(&line);
            sh.record.lock().unwrap().files.insert(log_path.strip_prefix(&root).unwrap().to_path_buf(), log.clone());
        }
        i += 1;
    }
}

/// Puts files with the CLI until told to stop.
fn cli_writer(sh: Arc<Shared>, c_masters: String, bin: PathBuf, local: PathBuf) {
    let mut i = 0u64;
    while !sh.stop.load(Ordering::SeqCst) {
        let data = random_bytes((1 << 20) + (i as usize * 4099) % (1 << 20), 9_000_000 + i);
        let src = local.join(format!("p{i}"));
        std::fs::write(&src, &data).unwrap();
        let dst = format!("/cli/p{i:04}");
        let ok = sh.op("put", || {
            let out = std::process::Command::new(&bin)
                .args(["put", src.to_str().unwrap(), &dst])
                .env("TESSERA_MASTERS", &c_masters)
                .env("TESSERA_LOG", "warn")
                .output()?;
            match out.status.success() {
                true => Ok(()),
                false => Err(std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned())),
            }
        });
        if ok.is_some() {
            sh.record.lock().unwrap().files.insert(PathBuf::from(&dst[1..]), data);
        }
        // A long soak must not fill the local disk with sources.
        let _ = std::fs::remove_file(&src);
        i += 1;
    }
}

/// Runs sqlite3 on `db` with `sql`, bounded; stdout, or why it failed.
fn sqlite(db: &Path, sql: &str) -> std::io::Result<String> {
    let mut cmd = std::process::Command::new("sqlite3");
    cmd.arg("-cmd").arg(".timeout 60000").arg(db).arg(sql);
    let out = tessera_tests::run_bounded(cmd, Duration::from_secs(120));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(std::io::Error::other(format!("sqlite3 {sql}: {}", String::from_utf8_lossy(&out.stderr).trim())))
    }
}

/// Inserts rows into a SQLite database on one mount, one transaction (one
/// sqlite3 process) each, until told to stop; the rows acknowledged.
fn sqlite_writer(sh: Arc<Shared>, db: PathBuf) -> Vec<u64> {
    let mut acked = Vec::new();
    let mut i = 0u64;
    while !sh.stop.load(Ordering::SeqCst) {
        let sql = format!("INSERT INTO t VALUES({i}, hex(randomblob(100)));");
        if sh.op("sqlite insert", || sqlite(&db, &sql)).is_some() {
            acked.push(i);
        }
        i += 1;
    }
    acked
}

/// A small deterministic generator for the nemesis's choices.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

const KINDS: [Fault; 5] =
    [Fault::KillChunkserver, Fault::StopChunkserver, Fault::KillMaster, Fault::StopMaster, Fault::PartitionMaster];

/// The kinds of fault in rounds: each round all five, shuffled, so that
/// even the short soak injects every kind.
fn next_kind(round: &mut Vec<Fault>, rng: &mut Lcg) -> Fault {
    if round.is_empty() {
        *round = KINDS.to_vec();
        for k in (1..round.len()).rev() {
            round.swap(k, rng.below(k + 1));
        }
    }
    round.pop().expect("a round has five kinds")
}

/// One fault: applied, held `hold`, then undone (restart, resume, heal).
fn inject(c: &mut Cluster, sh: &Shared, rng: &mut Lcg, kind: Fault, hold: Duration) -> Fault {
    let on_master = matches!(kind, Fault::KillMaster | Fault::StopMaster | Fault::PartitionMaster);
    let (is_master, i) = match kind {
        // Half the master faults hit the leader, where they hurt most.
        _ if on_master && rng.below(2) == 0 => (true, c.leader().unwrap_or(0)),
        _ if on_master => (true, rng.below(c.masters.len())),
        _ => (false, rng.below(c.chunkservers.len())),
    };
    *sh.fault.lock().unwrap() = kind;
    if kind == Fault::PartitionMaster {
        c.cut_master(i);
        std::thread::sleep(hold);
        c.heal_master(i);
        return kind;
    }
    let p = if is_master { &mut c.masters[i] } else { &mut c.chunkservers[i] };
    match kind {
        Fault::KillChunkserver | Fault::KillMaster => p.kill(),
        _ => p.signal(libc::SIGSTOP),
    }
    std::thread::sleep(hold);
    let p = if is_master { &mut c.masters[i] } else { &mut c.chunkservers[i] };
    match kind {
        Fault::KillChunkserver | Fault::KillMaster => p.start(),
        _ => p.signal(libc::SIGCONT),
    }
    kind
}

/// Every file recorded reads back byte-exact under `root`.
fn verify(root: &Path, rec: &Record) -> Vec<String> {
    let mut bad = Vec::new();
    for (p, want) in &rec.files {
        match std::fs::read(root.join(p)) {
            Ok(got) if &got == want => {}
            Ok(got) => bad.push(format!("{}: {} bytes, want {}", p.display(), got.len(), want.len())),
            Err(e) => bad.push(format!("{}: {e}", p.display())),
        }
    }
    bad
}

#[test]
fn acknowledged_writes_survive_a_nemesis_killing_and_stopping_servers() {
    let secs: u64 = std::env::var("TESSERA_CHAOS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    // 4 chunkservers: with one down, writes still land on 3 at once.
    let master_args = ["--repair-interval-ms", "300"].map(String::from).to_vec();
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the chaos soak needs root (FUSE, network namespaces)");
    let mut c = Cluster::start_with(Opts {
        masters: 3,
        chunkservers: 4,
        master_args,
        cs_args: Vec::new(),
        netns: true,
        ..Default::default()
    });
    let a: Mount = c.mount(&["--io-timeout", "60"]);
    let b: Mount = c.mount(&["--io-timeout", "60"]);
    std::fs::create_dir(a.path().join("cli")).unwrap();
    let local = tempfile::tempdir().unwrap();
    let sh =
        Arc::new(Shared { record: Mutex::default(), fault: Mutex::new(Fault::None), stop: AtomicBool::new(false) });
    sqlite(&a.path().join("chaos.db"), "PRAGMA journal_mode=DELETE; CREATE TABLE t(i INTEGER PRIMARY KEY, pad TEXT);")
        .expect("create the database");
    let db_writer = {
        let (sh, db) = (sh.clone(), a.path().join("chaos.db"));
        std::thread::spawn(move || sqlite_writer(sh, db))
    };
    // Linearizability clients through the library, on their own names.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lin_fs = c.client();
    let lin = Arc::new(rt.block_on(setup(&lin_fs)));
    let lin_rec = Arc::new(Recorder::default());
    let lin_clients: Vec<_> =
        (0..CLIENTS).map(|i| rt.spawn(run_client(c.client(), lin_rec.clone(), i, lin.clone()))).collect();
    let workers = vec![
        {
            let (sh, root) = (sh.clone(), a.path().to_path_buf());
            std::thread::spawn(move || mount_writer(sh, root, "a", 1_000_000))
        },
        {
            let (sh, root) = (sh.clone(), b.path().to_path_buf());
            std::thread::spawn(move || mount_writer(sh, root, "b", 2_000_000))
        },
        {
            let (sh, m, bin, l) =
                (sh.clone(), c.masters_arg(), tessera_tests::bin_dir().join("tessera"), local.path().into());
            std::thread::spawn(move || cli_writer(sh, m, bin, l))
        },
    ];

    // The nemesis: one fault at a time, 2-4 s each, 2 s of calm between.
    let mut rng = Lcg(0x7e55e7a);
    let mut faults: BTreeMap<Fault, u32> = BTreeMap::new();
    let mut round = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    std::thread::sleep(Duration::from_secs(2));
    while Instant::now() < deadline {
        let hold = Duration::from_millis(2000 + rng.below(2000) as u64);
        let kind = next_kind(&mut round, &mut rng);
        let kind = inject(&mut c, &sh, &mut rng, kind, hold);
        *faults.entry(kind).or_default() += 1;
        *sh.fault.lock().unwrap() = Fault::None;
        std::thread::sleep(Duration::from_secs(2));
    }
    sh.stop.store(true, Ordering::SeqCst);
    // Each worker finishes its operation in flight (bounded by the mounts'
    // I/O timeout and the CLI's own).
    for w in workers {
        w.join().expect("a workload thread panicked");
    }
    let rows = db_writer.join().expect("the SQLite writer panicked");
    lin.stop.store(true, Ordering::SeqCst);
    rt.block_on(async {
        for t in lin_clients {
            tokio::time::timeout(Duration::from_secs(120), t).await.expect("a linearizability client hung").unwrap();
        }
    });
    c.wait_ready();
    let history = rt.block_on(finish(&lin_fs, &lin_rec, lin.dir));

    let rec = sh.record.lock().unwrap();
    let report = format!(
        "chaos {secs} s: {} operations, {} files; faults {faults:?}; longest wait per fault {:?}",
        rec.ops,
        rec.files.len(),
        rec.longest
    );
    eprintln!("{report}");
    assert!(rec.failures.is_empty(), "{} operations failed: {:?}\n{report}", rec.failures.len(), rec.failures);
    let slow: Vec<_> = rec.longest.iter().filter(|(_, d)| **d > LONGEST_WAIT).collect();
    assert!(slow.is_empty(), "operations waited too long: {slow:?}\n{report}");
    // A fault and its calm take 4-6 s: 30 s and more give every kind.
    assert!(secs < 30 || faults.len() == KINDS.len(), "not every kind of fault injected: {faults:?}");
    for (name, m) in [("A", &a), ("B", &b)] {
        let bad = verify(m.path(), &rec);
        assert!(bad.is_empty(), "mount {name}: {} files wrong: {:?}\n{report}", bad.len(), &bad[..bad.len().min(10)]);
    }
    // The database, read on the other mount: intact, every row there.
    let db_b = b.path().join("chaos.db");
    assert_eq!(sqlite(&db_b, "PRAGMA integrity_check;").expect("integrity check"), "ok");
    let have: std::collections::BTreeSet<u64> =
        sqlite(&db_b, "SELECT i FROM t;").expect("select").lines().filter_map(|l| l.trim().parse().ok()).collect();
    let lost: Vec<_> = rows.iter().filter(|i| !have.contains(i)).collect();
    assert!(lost.is_empty(), "{} acknowledged rows missing: {:?}\n{report}", lost.len(), &lost[..lost.len().min(10)]);
    assert!(rows.len() >= 5, "the SQLite writer did too little: {} rows", rows.len());
    // The metadata history through the faults.
    assert!(history.len() > 100, "too few linearizability operations: {}", history.len());
    if let Err(e) = tessera_tests::linearizability::check(tessera_tests::lin_workload::NAMES.len(), &history) {
        panic!("not linearizable: {e}\n{report}");
    }
    eprintln!("chaos: {} SQLite rows, {} linearizability operations checked", rows.len(), history.len());
    // Every chunk back at 3 copies (the healer tops up what was written
    // while a server was down).
    let want = rec.files.len();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = c.tessera(&["--timeout", "20", "fsck", "/"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let full = text.matches("replicas 3/3: OK").count();
        if out.status.success() && full >= want && text.contains(" 0 unreadable") {
            break;
        }
        assert!(Instant::now() < deadline, "fsck after 90 s: {full} of {want} files at 3/3\n{text}");
        std::thread::sleep(Duration::from_secs(2));
    }
}
