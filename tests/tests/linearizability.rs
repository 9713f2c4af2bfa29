//! Linearizability of the metadata service through failovers: clients run
//! concurrent create / rename / unlink / write / lookup operations on three
//! names while the leader is SIGKILLed and later another leader SIGSTOPped;
//! every invocation and completion time is recorded and the history is
//! checked against a sequential model of the file system.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_tests::lin_workload::{finish, run_client, setup, Recorder, CLIENTS, NAMES};
use tessera_tests::linearizability::{check, Call, Ret};
use tessera_tests::Cluster;

#[test]
fn concurrent_operations_through_failovers_are_linearizable() {
    let mut c = Cluster::start(3, 3);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let setup_fs = c.client();
    let w = Arc::new(rt.block_on(setup(&setup_fs)));
    let dir = w.dir;
    let rec = Arc::new(Recorder::default());
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
    let history = rt.block_on(finish(&last, &rec, dir));
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
