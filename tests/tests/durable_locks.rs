//! Advisory locks live in the masters' replicated state: a lock taken
//! through one mount keeps excluding another mount across a SIGKILL of the
//! master leader, and the locks of a mount that dies are released once its
//! lock lease runs out.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tessera_tests::{eventually, run_bounded, Cluster, Opts};

/// Holds an exclusive flock on `path` and an fcntl lock on `path`.range
/// until killed; prints "locked" once both are held.
const HOLD: &str = r#"
import fcntl, sys, time
f = open(sys.argv[1], 'r+')
fcntl.flock(f, fcntl.LOCK_EX)
g = open(sys.argv[1] + '.range', 'r+')
fcntl.lockf(g, fcntl.LOCK_EX, 100, 0)
print("locked", flush=True)
time.sleep(600)
"#;

/// Tries both locks on `path` without waiting; prints what happened.
const TRY: &str = r#"
import fcntl, sys
f = open(sys.argv[1], 'r+')
try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); print("flock-granted")
except BlockingIOError:
    print("flock-refused")
g = open(sys.argv[1] + '.range', 'r+')
try:
    fcntl.lockf(g, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50); print("range-granted")
except (BlockingIOError, PermissionError):
    print("range-refused")
"#;

fn try_locks(path: &Path) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(TRY).arg(path);
    let out = run_bounded(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "lock probe failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Holder(std::process::Child);
impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn locks_survive_a_leader_kill_and_a_dead_mounts_locks_expire() {
    let master_args = ["--lock-lease-ms", "6000"].map(String::from).to_vec();
    let mut c = Cluster::start_with(Opts {
        masters: 3,
        chunkservers: 3,
        master_args,
        cs_args: Vec::new(),
        ..Default::default()
    });
    let mut a = c.mount(&[]);
    let b = c.mount(&[]);
    std::fs::write(a.path().join("db"), b"0123456789").unwrap();
    std::fs::write(a.path().join("db.range"), b"0123456789").unwrap();

    let mut holder = Holder(
        Command::new("python3").arg("-c").arg(HOLD).arg(a.path().join("db")).stdout(Stdio::piped()).spawn().unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(holder.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    let out = try_locks(&b.path().join("db"));
    assert!(out.contains("flock-refused") && out.contains("range-refused"), "before the kill: {out}");

    // The leader dies; its successor has the locks.
    let leader = c.leader().expect("a leader");
    c.masters[leader].kill();
    eventually(Duration::from_secs(20), "a new leader", || c.leader().is_some_and(|l| l != leader));
    let out = try_locks(&b.path().join("db"));
    assert!(out.contains("flock-refused") && out.contains("range-refused"), "after the leader kill: {out}");
    c.masters[leader].start();

    // Held well past the lease: the live mount renews it.
    std::thread::sleep(Duration::from_secs(8));
    let out = try_locks(&b.path().join("db"));
    assert!(out.contains("flock-refused") && out.contains("range-refused"), "after one lease: {out}");

    // Mount A dies without releasing anything: its locks go with its lease.
    // SAFETY: killing the mount process this test started, by pid.
    unsafe { libc::kill(a.pid() as i32, libc::SIGKILL) };
    let killed = Instant::now();
    drop(holder);
    a.unmount();
    eventually(Duration::from_secs(30), "a dead mount's locks released", || {
        let out = try_locks(&b.path().join("db"));
        out.contains("flock-granted") && out.contains("range-granted")
    });
    let took = killed.elapsed();
    assert!(took >= Duration::from_secs(3), "released after {took:?}: before the lease could run out");
    eprintln!("a dead mount's locks were released {took:?} after its SIGKILL (lease 6 s)");
}

/// flock(2) and fcntl(2) locks are independent, as on a local Linux file
/// system: an exclusive flock on mount A does not stop an fcntl write lock
/// on the same file on mount B, while each kind still excludes its own.
#[test]
fn flock_and_fcntl_locks_on_one_file_are_independent_across_mounts() {
    let c = Cluster::start(3, 3);
    let a = c.mount(&[]);
    let b = c.mount(&[]);
    let pa = a.path().join("shared");
    std::fs::write(&pa, b"x").unwrap();
    let pb = b.path().join("shared");
    let mut holder = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import fcntl, sys, time
f = open(sys.argv[1], 'r+')
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"#,
        )
        .arg(&pa)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _holder = Holder(holder);
    assert_eq!(line.trim(), "locked");
    let probe = r#"
import fcntl, sys
f = open(sys.argv[1], 'r+')
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB); print("fcntl-granted")
except (BlockingIOError, PermissionError):
    print("fcntl-refused")
g = open(sys.argv[1], 'r+')
try:
    fcntl.flock(g, fcntl.LOCK_EX | fcntl.LOCK_NB); print("flock-granted")
except BlockingIOError:
    print("flock-refused")
"#;
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(probe).arg(&pb);
    let out = run_bounded(cmd, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "probe failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("fcntl-granted"), "an fcntl lock conflicted with another owner's flock: {text}");
    assert!(text.contains("flock-refused"), "a second exclusive flock was granted: {text}");
}

/// A python process on one mount that keeps `lockfile` open and runs one
/// command per line: lock/unlock (fcntl, whole file), try (non-blocking
/// exclusive), write NAME (create, write, fsync, close), rm NAME.
const DRIVER: &str = r#"
import fcntl, os, sys
f = open(sys.argv[1], 'r+')
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(' ')
    try:
        if cmd == 'lock': fcntl.lockf(f, fcntl.LOCK_EX)
        elif cmd == 'shared': fcntl.lockf(f, fcntl.LOCK_SH)
        elif cmd == 'unlock': fcntl.lockf(f, fcntl.LOCK_UN)
        elif cmd == 'try':
            try: fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (BlockingIOError, PermissionError): print('refused', flush=True); continue
        elif cmd == 'write':
            with open(arg, 'wb') as g: g.write(arg.encode() * 100); g.flush(); os.fsync(g.fileno())
        elif cmd == 'rm': os.unlink(arg)
        elif cmd == 'exists': print('yes' if os.path.exists(arg) else 'no', flush=True); continue
        print('ok', flush=True)
    except Exception as e:
        print('error', e, flush=True)
"#;

struct Driver {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Driver {
    fn start(lockfile: &Path) -> Driver {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(DRIVER)
            .arg(lockfile)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines() {
                let Ok(l) = l else { return };
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Driver { child, stdin, lines }
    }

    /// Runs one command; its answer within 60 s.
    fn ask(&mut self, cmd: &str) -> String {
        use std::io::Write;
        writeln!(self.stdin, "{cmd}").unwrap();
        self.lines.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|e| panic!("{cmd}: no answer ({e})"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file's locks used by one mount are handed to it: its lock calls are
/// answered there (the mount counts them). Another mount's lock request
/// has them recalled and sees them as they were: refused while the first
/// holds its lock, granted once it unlocks, and then every change the first
/// mount made under its lock (a file written, a file removed) is in place.
#[test]
fn locks_handed_to_one_mount_are_recalled_for_another_with_its_changes_landed() {
    let c = Cluster::start(3, 3);
    let metrics = format!("127.0.0.1:{}", tessera_tests::ports(1));
    let a = c.mount(&["--metrics-listen", &metrics]);
    let b = c.mount(&[]);
    std::fs::write(a.path().join("db"), b"0123456789").unwrap();
    std::fs::create_dir(a.path().join("d")).unwrap();
    let mut one = Driver::start(&a.path().join("db"));
    let answered_here = || {
        let m = tessera_tests::http_get(&metrics);
        tessera_tests::sample(&m, "tessera_mount_lock_calls_total{answered_by=\"mount\"} ").unwrap_or(0.0)
    };
    // The first lock asks the masters; the second has the file's locks
    // handed over; then the mount answers alone.
    for cmd in ["lock", "unlock", "lock", "unlock", "shared", "unlock", "lock"] {
        assert_eq!(one.ask(cmd), "ok", "{cmd}");
    }
    assert!(answered_here() >= 3.0, "lock calls answered by the mount: {}", answered_here());
    // Under its lock, mount A writes one file and removes another (both
    // acknowledged before the masters have them).
    let d = a.path().join("d");
    assert_eq!(one.ask(&format!("write {}", d.join("journal").display())), "ok");
    assert_eq!(one.ask(&format!("write {}", d.join("data").display())), "ok");
    assert_eq!(one.ask(&format!("rm {}", d.join("journal").display())), "ok");
    let mut two = Driver::start(&b.path().join("db"));
    assert_eq!(two.ask("try"), "refused", "mount B got a lock mount A holds");
    assert_eq!(one.ask("unlock"), "ok");
    // Blocking: granted once A's unlock reached the masters.
    assert_eq!(two.ask("lock"), "ok");
    let bd = b.path().join("d");
    assert_eq!(two.ask(&format!("exists {}", bd.join("journal").display())), "no");
    assert_eq!(std::fs::read(bd.join("data")).unwrap(), d.join("data").to_string_lossy().repeat(100).into_bytes());
    // Now B holds it: A is refused, and gets it after B's unlock.
    assert_eq!(one.ask("try"), "refused", "mount A got a lock mount B holds");
    assert_eq!(two.ask("unlock"), "ok");
    assert_eq!(one.ask("lock"), "ok");
    assert_eq!(two.ask("try"), "refused");
}

/// Locks handed to a mount outlive a SIGKILL of the leader (the hand-over
/// is in the replicated state): the next leader refuses another mount's
/// conflicting lock, and recalls them from the first mount once it unlocks.
#[test]
fn locks_handed_to_a_mount_survive_a_leader_kill_and_are_recalled_by_the_next_leader() {
    let mut c = Cluster::start(3, 3);
    let metrics = format!("127.0.0.1:{}", tessera_tests::ports(1));
    let a = c.mount(&["--metrics-listen", &metrics]);
    let b = c.mount(&[]);
    std::fs::write(a.path().join("db"), b"0123456789").unwrap();
    let mut one = Driver::start(&a.path().join("db"));
    for cmd in ["lock", "unlock", "lock", "unlock", "lock"] {
        assert_eq!(one.ask(cmd), "ok", "{cmd}");
    }
    let m = tessera_tests::http_get(&metrics);
    let here = tessera_tests::sample(&m, "tessera_mount_lock_calls_total{answered_by=\"mount\"} ").unwrap_or(0.0);
    assert!(here >= 2.0, "the file's locks were not handed to the mount: {here} calls answered there");
    let leader = c.leader().expect("a leader");
    c.masters[leader].kill();
    eventually(Duration::from_secs(20), "a new leader", || c.leader().is_some_and(|l| l != leader));
    let mut two = Driver::start(&b.path().join("db"));
    assert_eq!(two.ask("try"), "refused", "the next leader granted a lock mount A holds");
    assert_eq!(one.ask("unlock"), "ok");
    assert_eq!(two.ask("lock"), "ok");
    assert_eq!(one.ask("try"), "refused");
    c.masters[leader].start();
}
