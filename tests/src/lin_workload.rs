//! The workload of the linearizability checks, shared by
//! tests/linearizability.rs and the chaos soak: clients run concurrent
//! create / rename / unlink / write / lookup operations on three names in
//! one directory through the client library, and every invocation and
//! completion is recorded for `linearizability::check`.

use crate::linearizability::{Call, Event, Ret};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_client::{ClientError, Fs};
use tessera_proto::pb::Extent;

pub const NAMES: [&str; 3] = ["a", "b", "c"];
pub const CLIENTS: usize = 4;
/// Each client runs until the faults are over, up to this many operations.
pub const MAX_OPS_PER_CLIENT: usize = 400;

/// Content a write can commit: extents of an uploaded file and its size.
#[derive(Clone)]
pub struct Content {
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

impl Default for Recorder {
    fn default() -> Self {
        Recorder { t0: Instant::now(), history: Mutex::new(Vec::new()) }
    }
}

pub struct Recorder {
    pub t0: Instant,
    pub history: Mutex<Vec<Event>>,
}

impl Recorder {
    pub fn now(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    pub fn record(&self, client: usize, call: Call, ret: Ret, start: u64) {
        let end = self.now();
        self.history.lock().unwrap().push(Event { client, call, ret, start, end });
    }
}

pub async fn lookup(fs: &Fs, rec: &Recorder, client: usize, dir: u64, k: usize) -> Option<u64> {
    let start = rec.now();
    let r = outcome(fs.lookup(dir, NAMES[k]).await, "lookup");
    let ret = match &r {
        Ok(a) => Ret::Found { ino: a.ino, size: a.size },
        Err(errno) => Ret::Errno(*errno),
    };
    rec.record(client, Call::Lookup(k), ret, start);
    r.ok().map(|a| a.ino)
}

pub struct Workload {
    pub dir: u64,
    pub contents: Vec<Content>,
    pub epoch: u64,
    pub stop: std::sync::atomic::AtomicBool,
}

pub async fn run_client(fs: Fs, rec: Arc<Recorder>, client: usize, w: Arc<Workload>) {
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

/// Makes the directory `/lin` and four contents to commit; the workload.
pub async fn setup(fs: &Fs) -> Workload {
    fs.mkdir("/lin", 0o755).await.expect("mkdir /lin");
    fs.mkdir("/lin-data", 0o755).await.expect("mkdir /lin-data");
    let mut contents = Vec::new();
    for k in 0..4u64 {
        let data = crate::random_bytes(1000 + 777 * k as usize, 40 + k);
        let path = format!("/lin-data/{k}");
        let a = fs.put_stream(&data[..], &path, 0o644, None, &|_| {}).await.expect("put");
        let extents = fs.extents(a.ino).await.expect("extents").extents;
        contents.push(Content { extents, size: a.size });
    }
    let dir = fs.resolve("/lin").await.expect("resolve").ino;
    Workload { dir, contents, epoch: fs.epoch().await.expect("epoch"), stop: false.into() }
}

/// After the clients stopped: a final read of every name closes the
/// history; returns it.
pub async fn finish(fs: &Fs, rec: &Recorder, dir: u64) -> Vec<Event> {
    for k in 0..NAMES.len() {
        lookup(fs, rec, CLIENTS, dir, k).await;
    }
    rec.history.lock().expect("history").clone()
}
