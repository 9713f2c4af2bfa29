//! Linearizability of the metadata service through failovers: clients run
//! concurrent create / rename / unlink / write / lookup operations on three
//! names while the leader is SIGKILLed and later another leader SIGSTOPped;
//! every invocation and completion time is recorded and the history is
//! checked against a sequential model of the file system.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_client::{ClientError, Fs};
use tessera_proto::pb::Extent;
use tessera_tests::linearizability::{check, Call, Event, Ret};
use tessera_tests::Cluster;

const NAMES: [&str; 3] = ["a", "b", "c"];
const CLIENTS: usize = 4;
/// Each client runs until the faults are over, up to this many operations.
const MAX_OPS_PER_CLIENT: usize = 400;

/// Content a write can commit: extents of an uploaded file and its size.
#[derive(Clone)]
struct Content {
    extents: Vec<Extent>,
    size: u64,
}

fn outcome<T>(r: Result<T, ClientError>, what: &str) -> Result<T, i32> {
    match r {
        Ok(v) => Ok(v),
        Err(ClientError::Fs { errno, .. }) => Err(errno),
        // The client retries through failovers for 30 s: an operation
        // without a definite answer is itself a failure of the system.
        Err(e) => panic!("{what}: no definite outcome: {e}"),
    }
}

struct Recorder {
    t0: Instant,
    history: Mutex<Vec<Event>>,
}

impl Recorder {
    fn now(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    fn record(&self, client: usize, call: Call, ret: Ret, start: u64) {
        let end = self.now();
        self.history.lock().unwrap().push(Event { client, call, ret, start, end });
    }
}

async fn lookup(fs: &Fs, rec: &Recorder, client: usize, dir: u64, k: usize) -> Option<u64> {
    let start = rec.now();
    let r = outcome(fs.lookup(dir, NAMES[k]).await, "lookup");
    let ret = match &r {
        Ok(a) => Ret::Found { ino: a.ino, size: a.size },
        Err(errno) => Ret::Errno(*errno),
    };
    rec.record(client, Call::Lookup(k), ret, start);
    r.ok().map(|a| a.ino)
}

struct Workload {
    dir: u64,
    contents: Vec<Content>,
    epoch: u64,
    stop: std::sync::atomic::AtomicBool,
}

async fn run_client(fs: Fs, rec: Arc<Recorder>, client: usize, w: Arc<Workload>) {
    let (dir, contents, epoch) = (w.dir, &w.contents, w.epoch);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (client as u64 + 1);
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..MAX_OPS_PER_CLIENT {
        if w.stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let k = rnd(3) as usize;
        let start = rec.now();
        match rnd(100) {
            0..=24 => {
                lookup(&fs, &rec, client, dir, k).await;
            }
            25..=44 => {
                let r = outcome(fs.create(dir, NAMES[k], 0o644, true, false).await, "create");
                let ret = match r {
                    Ok(c) => Ret::Created(c.attr.map(|a| a.ino).unwrap_or(0)),
                    Err(e) => Ret::Errno(e),
                };
                rec.record(client, Call::Create(k), ret, start);
            }
            45..=59 => {
                let r = outcome(fs.unlink(dir, NAMES[k]).await, "unlink");
                rec.record(client, Call::Unlink(k), r.map_or_else(Ret::Errno, |_| Ret::Ok), start);
            }
            60..=74 => {
                let to = rnd(3) as usize;
                let r = fs.rename_at(dir, NAMES[k], dir, NAMES[to]).await;
                let r = outcome(r, "rename");
                rec.record(client, Call::Rename(k, to), r.map_or_else(Ret::Errno, |_| Ret::Ok), start);
            }
            _ => {
                // A write: find the file, then commit new content to it.
                if let Some(ino) = lookup(&fs, &rec, client, dir, k).await {
                    let c = &contents[rnd(contents.len() as u64) as usize];
                    let start = rec.now();
                    let r = outcome(fs.commit(ino, c.extents.clone(), c.size, epoch).await, "commit");
                    rec.record(client, Call::Write(ino, c.size), r.map_or_else(Ret::Errno, |_| Ret::Ok), start);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rnd(40))).await;
    }
}

#[test]
fn concurrent_operations_through_failovers_are_linearizable() {
    let mut c = Cluster::start(3, 3);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let setup = c.client();
    let (dir, contents, epoch) = rt.block_on(async {
        setup.mkdir("/lin", 0o755).await.unwrap();
        setup.mkdir("/data", 0o755).await.unwrap();
        let mut contents = Vec::new();
        for k in 0..4u64 {
            let data = tessera_tests::random_bytes(1000 + 777 * k as usize, 40 + k);
            let path = format!("/data/{k}");
            let a = setup.put_stream(&data[..], &path, 0o644, None, &|_| {}).await.unwrap();
            let extents = setup.extents(a.ino).await.unwrap().extents;
            contents.push(Content { extents, size: a.size });
        }
        let dir = setup.resolve("/lin").await.unwrap().ino;
        (dir, contents, setup.epoch().await.unwrap())
    });
    let rec = Arc::new(Recorder { t0: Instant::now(), history: Mutex::new(Vec::new()) });
    let w = Arc::new(Workload { dir, contents, epoch, stop: false.into() });
    let tasks: Vec<_> = (0..CLIENTS).map(|i| rt.spawn(run_client(c.client(), rec.clone(), i, w.clone()))).collect();
    // Faults while the clients run: the leader SIGKILLed (and restarted),
    // then the next leader SIGSTOPped for 3 s.
    std::thread::sleep(Duration::from_millis(1500));
    let l = c.leader().expect("leader");
    c.masters[l].kill();
    std::thread::sleep(Duration::from_secs(2));
    c.masters[l].start();
    std::thread::sleep(Duration::from_secs(1));
    let l2 = c.wait_leader(None, Duration::from_secs(20));
    c.masters[l2].signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    c.masters[l2].signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_secs(1));
    w.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(120), t).await.expect("client hung").unwrap();
        }
    });
    // A final read of every name closes the history.
    let last = c.client();
    rt.block_on(async {
        for k in 0..NAMES.len() {
            lookup(&last, &rec, CLIENTS, dir, k).await;
        }
    });
    let history = rec.history.lock().unwrap().clone();
    let writes = history.iter().filter(|e| matches!(e.call, Call::Write(..)) && e.ret == Ret::Ok).count();
    let renames = history.iter().filter(|e| matches!(e.call, Call::Rename(..)) && e.ret == Ret::Ok).count();
    // The faults hit operations in flight: some waited out an election.
    let slow = history.iter().filter(|e| e.end - e.start > 400_000_000).count();
    assert!(slow > 0, "no operation spanned a failover");
    assert!(history.len() > 200, "too few operations recorded: {}", history.len());
    assert!(writes > 5 && renames > 5, "the workload did too little: {writes} writes, {renames} renames");
    let t = Instant::now();
    let verdict = check(NAMES.len(), &history);
    eprintln!("checked {} operations ({} slow) in {:?}", history.len(), slow, t.elapsed());
    if let Err(e) = verdict {
        let mut h = history.clone();
        h.sort_by_key(|e| e.start);
        panic!("{e}\n{h:#?}");
    }
}
