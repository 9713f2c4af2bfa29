//! Connection limits on every listener (rpc/src/listen.rs): a peer that
//! connects and never completes its TLS handshake is dropped after the
//! handshake limit (10 s), so a flood of silent sockets, more than the
//! handshakes a server runs at once, delays a real client by at most that
//! limit and holds nothing for longer.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tessera_tests::*;

/// Silent sockets to the master: more than the handshakes a server runs at
/// once (128), so the last ones and the real client wait in the backlog
/// until the first ones time out.
const SILENT_MASTER: usize = 150;
const SILENT_CHUNKSERVER: usize = 30;

#[test]
fn silent_connections_are_dropped_and_do_not_lock_out_real_clients() {
    let c = Cluster::start(1, 1);
    let addr = c.masters[0].addr.clone();
    let chunkserver = c.chunkservers[0].addr.clone();
    let started = Instant::now();
    let mut silent: Vec<TcpStream> = Vec::new();
    for (target, n) in [(&addr, SILENT_MASTER), (&chunkserver, SILENT_CHUNKSERVER)] {
        for _ in 0..n {
            let s = TcpStream::connect(target).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(45))).expect("read timeout");
            silent.push(s);
        }
    }
    // A real client still gets through, within about one handshake limit.
    let t = Instant::now();
    let out = c.tessera(&["--timeout", "30", "cluster", "status"]);
    assert!(out.status.success(), "status failed behind silent sockets: {}", String::from_utf8_lossy(&out.stderr));
    assert!(t.elapsed() < Duration::from_secs(25), "status took {:?} behind silent sockets", t.elapsed());

    // Every silent socket is closed by its server (EOF or reset): the
    // first 128 after 10 s, those that waited in the backlog 10 s after
    // they got a slot. A read that times out (45 s) fails the test.
    for (i, mut s) in silent.into_iter().enumerate() {
        let mut buf = [0u8; 64];
        let r = s.read(&mut buf);
        let closed = match &r {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        };
        assert!(closed, "silent socket {i} was not closed by its server: {r:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "silent sockets were held for {:?} (limit 10 s per handshake)",
        started.elapsed()
    );
}
