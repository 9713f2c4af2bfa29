//! A test cluster made of the real binaries: N masters and M chunkservers as
//! child processes on 127.0.0.1, each with its own data directory. Processes
//! are stopped by PID (never by name) when the cluster is dropped, even if
//! the test panicked. Every wait is bounded.

pub mod lin_workload;
pub mod linearizability;
pub mod netns;
pub mod pki;

pub use pki::pki;
pub use tessera_rpc::Role;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Directory holding the workspace binaries (next to the test executable).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    let dir = deps.parent().expect("profile dir").to_path_buf();
    for b in ["tessera", "tessera-master", "tessera-chunkserver"] {
        assert!(
            dir.join(b).exists(),
            "{} missing: build the binaries first (cargo build --workspace --bins)",
            dir.join(b).display()
        );
    }
    dir
}

/// A third-party test program (pjdfstest, fsx) that
/// `scripts/install-test-tools.sh` installs under `<target>/tools/bin`.
/// Fails loudly when it is missing: a conformance test never skips.
pub fn test_tool(name: &str) -> PathBuf {
    let target = bin_dir().parent().expect("target dir").to_path_buf();
    let p = target.join("tools/bin").join(name);
    assert!(p.exists(), "{} missing: run scripts/install-test-tools.sh (./scripts/test.sh does)", p.display());
    p
}

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A block of `n` consecutive free loopback ports, below the kernel's
/// ephemeral range (32768+) so that no outgoing connection can take a port
/// between this check and the server's bind. Test binaries run one after
/// another; each starts from a different offset derived from its pid.
pub fn ports(n: u16) -> u16 {
    const LOW: u16 = 10_000;
    const HIGH: u16 = 32_000;
    if NEXT_PORT.load(Ordering::SeqCst) == 0 {
        let base = LOW + (std::process::id() % 1000) as u16 * 20;
        let _ = NEXT_PORT.compare_exchange(0, base, Ordering::SeqCst, Ordering::SeqCst);
    }
    loop {
        let mut p = NEXT_PORT.fetch_add(n, Ordering::SeqCst);
        if p + n >= HIGH {
            let _ = NEXT_PORT.compare_exchange(p + n, LOW + n, Ordering::SeqCst, Ordering::SeqCst);
            p = LOW;
        }
        if (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok()) {
            return p;
        }
    }
}

pub struct Proc {
    pub name: String,
    pub addr: String,
    bin: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    /// A process to start later: `bin ARGS`, output appended to `log`.
    pub fn new(name: &str, addr: &str, bin: PathBuf, args: Vec<String>, log: PathBuf) -> Proc {
        Proc { name: name.to_string(), addr: addr.to_string(), bin, args, log, child: None }
    }

    /// Appends a command-line argument for the next start.
    pub fn add_arg(&mut self, a: &str) {
        self.args.push(a.to_string());
    }

    /// Waits (bounded) for the process to exit on its own; None if it is
    /// still running at the deadline.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(&self.bin)
            .args(&self.args)
            // Each process gets its identity (or --insecure) on its
            // command line, never the test's own from the environment.
            .env_remove("TESSERA_TLS_DIR")
            // TESSERA_TEST_LOG: another filter for the servers' logs (debugging).
            .env("RUST_LOG", std::env::var("TESSERA_TEST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.name));
        self.child = Some(child);
    }

    pub fn signal(&mut self, sig: i32) {
        if let Some(c) = self.child.as_mut() {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// SIGTERM, wait up to 15 s, then SIGKILL.
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        if let Some(c) = self.child.as_mut() {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.kill();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub masters: Vec<Proc>,
    pub chunkservers: Vec<Proc>,
    bins: PathBuf,
    cs_args: Vec<String>,
    /// Each master's web console (`--console-listen`), by master index.
    pub consoles: Vec<String>,
    /// Each master's and chunkserver's Prometheus listener, by index.
    pub master_metrics: Vec<String>,
    pub cs_metrics: Vec<String>,
    /// Chunkservers on hosts of their own (`Opts::chunkserver_hosts`).
    cs_hosts: bool,
    zones: Vec<String>,
    /// Every process runs `--insecure` (`Opts::insecure`).
    pub insecure: bool,
    /// With `Opts::netns`: each master on its own host of this lab, the
    /// rest in its hub. Declared last: dropped after the processes stop.
    pub lab: Option<netns::Lab>,
}

#[derive(Default)]
pub struct Opts {
    pub masters: usize,
    pub chunkservers: usize,
    /// Extra flags for every master / chunkserver.
    pub master_args: Vec<String>,
    pub cs_args: Vec<String>,
    /// Run each master in its own network namespace (a `netns::Lab` host,
    /// so `cut_master` can partition it) and everything else in the lab's
    /// hub. The calling thread joins the hub namespace, and with it every
    /// thread and process it starts afterwards (mounts, CLI, library
    /// clients): call this from the test's own thread. Needs root.
    pub netns: bool,
    /// With `netns`: every chunkserver on a host of its own too (a
    /// multi-host cluster: each server binds 0.0.0.0 and advertises its
    /// host's address), with zone `zones[j % zones.len()]` when given.
    pub chunkserver_hosts: bool,
    pub zones: Vec<String>,
    /// Plaintext and no authentication: servers, mounts and the CLI run
    /// `--insecure` (default: mutual TLS with this test binary's PKI).
    pub insecure: bool,
    /// The last this many masters are left unstarted (start them with
    /// `masters[i].start()`): members of the group that join it late.
    pub late_masters: usize,
}

/// `args` with its `--tls-dir DIR` replaced by `--insecure` when `insecure`.
fn secured(args: Vec<String>, insecure: bool) -> Vec<String> {
    if !insecure {
        return args;
    }
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--tls-dir" {
            it.next();
        } else {
            out.push(a);
        }
    }
    out.push("--insecure".into());
    out
}

/// Flags that make repair, GC and scrubbing quick enough for tests.
pub fn fast_healing() -> (Vec<String>, Vec<String>) {
    let m = ["--repair-interval-ms", "300", "--gc-grace-s", "2"];
    let c = ["--scrub-mbps", "500", "--scrub-pause-s", "1"];
    (m.iter().map(|s| s.to_string()).collect(), c.iter().map(|s| s.to_string()).collect())
}

impl Cluster {
    pub fn start(masters: usize, chunkservers: usize) -> Cluster {
        Self::start_with(Opts { masters, chunkservers, ..Default::default() })
    }

    pub fn start_with(o: Opts) -> Cluster {
        pki();
        let bins = bin_dir();
        let dir = tempfile::Builder::new().prefix("tessera-test-").tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("logs")).expect("logs dir");
        let lab = o.netns.then(|| {
            let lab = netns::Lab::new(o.masters + if o.chunkserver_hosts { o.chunkservers } else { 0 });
            lab.enter_hub();
            lab
        });
        let mbase = ports(o.masters as u16);
        let host_ip = |i: usize| lab.as_ref().map_or("127.0.0.1".to_string(), |l| l.ip(i));
        let maddrs: Vec<String> = (0..o.masters).map(|i| format!("{}:{}", host_ip(i), mbase + i as u16)).collect();
        // Raft on listeners of its own (masters only), as `tessera up` runs.
        let rbase = ports(o.masters as u16);
        let raft_addrs: Vec<String> = (0..o.masters).map(|i| format!("{}:{}", host_ip(i), rbase + i as u16)).collect();
        let peers = maddrs
            .iter()
            .zip(&raft_addrs)
            .enumerate()
            .map(|(i, (a, r))| format!("{}={a}/{r}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let cbase = ports(o.masters as u16);
        let consoles: Vec<String> = (0..o.masters).map(|i| format!("{}:{}", host_ip(i), cbase + i as u16)).collect();
        let mmbase = ports(o.masters as u16);
        let master_metrics: Vec<String> =
            (0..o.masters).map(|i| format!("{}:{}", host_ip(i), mmbase + i as u16)).collect();
        let mut c = Cluster {
            dir,
            masters: Vec::new(),
            chunkservers: Vec::new(),
            bins,
            cs_args: o.cs_args.clone(),
            consoles: consoles.clone(),
            master_metrics: master_metrics.clone(),
            cs_metrics: Vec::new(),
            cs_hosts: o.netns && o.chunkserver_hosts,
            zones: o.zones.clone(),
            insecure: o.insecure,
            lab,
        };
        for (i, addr) in maddrs.iter().enumerate() {
            let name = format!("master-{}", i + 1);
            let data = c.dir.path().join(&name);
            let mut args = master_args(i + 1, addr, &peers, &data);
            args.extend(["--console-listen".to_string(), consoles[i].clone()]);
            args.extend(["--metrics-listen".to_string(), master_metrics[i].clone()]);
            if c.cs_hosts {
                // Bind every address of the host, advertise the host's own.
                let port = addr.rsplit_once(':').map_or("", |(_, p)| p);
                args[3] = format!("0.0.0.0:{port}");
                args.extend(["--advertise".to_string(), addr.clone()]);
                let rport = raft_addrs[i].rsplit_once(':').map_or("", |(_, p)| p);
                args.extend(["--raft-listen".to_string(), format!("0.0.0.0:{rport}")]);
                args.extend(["--raft-advertise".to_string(), raft_addrs[i].clone()]);
            } else {
                args.extend(["--raft-listen".to_string(), raft_addrs[i].clone()]);
            }
            let args: Vec<String> = args.into_iter().chain(o.master_args.iter().cloned()).collect();
            let mut p = c.proc(&name, addr, "tessera-master", args);
            if let Some(lab) = &c.lab {
                // nsenter switches only the network namespace and then
                // execs the master: the PID is the master's own.
                let mut wrapped = vec![format!("--net=/run/netns/{}", lab.host(i)), p.bin.display().to_string()];
                wrapped.append(&mut p.args);
                p.bin = PathBuf::from("nsenter");
                p.args = wrapped;
            }
            c.masters.push(p);
        }
        for _ in 0..o.chunkservers {
            c.add_chunkserver_proc();
        }
        // Master 1 forms the group. Started after the others are up, so
        // that none of them, still empty, finds the group already formed
        // with itself as a voter (which a master takes for a lost data
        // directory and refuses to start: seen once on a loaded machine).
        let early = o.masters - o.late_masters.min(o.masters - 1);
        for p in c.masters.iter_mut().take(early).skip(1) {
            p.start();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline
            && !c.masters.iter().take(early).skip(1).all(|m| m.log().contains("master serving"))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in c.masters.iter_mut().take(1).chain(c.chunkservers.iter_mut()) {
            p.start();
        }
        c.wait_ready();
        c
    }

    fn proc(&self, name: &str, addr: &str, bin: &str, args: Vec<String>) -> Proc {
        Proc {
            name: name.to_string(),
            addr: addr.to_string(),
            bin: self.bins.join(bin),
            args: secured(args, self.insecure),
            log: self.dir.path().join("logs").join(format!("{name}.log")),
            child: None,
        }
    }

    fn add_chunkserver_proc(&mut self) {
        let j = self.chunkservers.len();
        let name = format!("chunkserver-{}", j + 1);
        // In a lab, chunkservers live in the hub with the clients, or each
        // on a host of its own after the masters'.
        let host = self.cs_hosts.then(|| self.masters.len() + j);
        let ip = match (&self.lab, host) {
            (Some(lab), Some(h)) => lab.ip(h),
            (Some(_), None) => netns::HUB_IP.to_string(),
            (None, _) => "127.0.0.1".to_string(),
        };
        let port = ports(1);
        let addr = format!("{ip}:{port}");
        let data = self.dir.path().join(&name);
        let listen = if host.is_some() { format!("0.0.0.0:{port}") } else { addr.clone() };
        let mut args = vec![
            "--id".into(),
            format!("cs-{}", j + 1),
            "--listen".into(),
            listen,
            "--masters".into(),
            self.masters_arg(),
            "--data-dir".into(),
            data.display().to_string(),
            "--heartbeat-ms".into(),
            "500".into(),
            "--reserve-bytes".into(),
            "0".into(),
        ];
        if host.is_some() {
            args.extend(["--advertise".to_string(), addr.clone()]);
        }
        args.extend(pki().args(Role::Chunkserver, &format!("cs-{}", j + 1)));
        let metrics = format!("{ip}:{}", ports(1));
        args.extend(["--metrics-listen".to_string(), metrics.clone()]);
        self.cs_metrics.push(metrics);
        if !self.zones.is_empty() {
            args.extend(["--zone".to_string(), self.zones[j % self.zones.len()].clone()]);
        }
        let args = args.into_iter().chain(self.cs_args.iter().cloned()).collect();
        let mut p = self.proc(&name, &addr, "tessera-chunkserver", args);
        if let (Some(lab), Some(h)) = (&self.lab, host) {
            let mut wrapped = vec![format!("--net=/run/netns/{}", lab.host(h)), p.bin.display().to_string()];
            wrapped.append(&mut p.args);
            p.bin = PathBuf::from("nsenter");
            p.args = wrapped;
        }
        self.chunkservers.push(p);
    }

    /// Starts one more master with --join (it waits to be added); returns
    /// its index, Raft id and Raft address.
    pub fn add_joining_master(&mut self) -> (usize, u64, String) {
        let id = self.masters.len() as u64 + 1;
        let name = format!("master-{id}");
        let addr = format!("127.0.0.1:{}", ports(1));
        let raft = format!("127.0.0.1:{}", ports(1));
        let data = self.dir.path().join(&name);
        let args = vec![
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            addr.clone(),
            "--raft-listen".into(),
            raft.clone(),
            "--peers".into(),
            format!("{id}={addr}/{raft}"),
            "--join".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--election-timeout-ms".into(),
            "500".into(),
        ];
        let args = args.into_iter().chain(pki().args(Role::Master, &name)).collect();
        let mut p = self.proc(&name, &addr, "tessera-master", args);
        p.start();
        self.masters.push(p);
        (self.masters.len() - 1, id, raft)
    }

    /// A client library handle on this cluster.
    /// A chunk client for raw chunk calls, holding the write token this
    /// test process gets with the ring (as a library client does), once the
    /// masters grant one.
    pub fn chunk_io(&self, rt: &tokio::runtime::Runtime, timeout: Duration) -> tessera_client::chunks::ChunkIo {
        let io = tessera_client::chunks::ChunkIo::new(timeout);
        let fs = self.client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ring = rt.block_on(
                fs.meta
                    .call_unordered("get_ring", |mut c| async move { c.get_ring(tessera_proto::pb::Empty {}).await }),
            );
            if let Some(r) = ring.as_ref().ok().filter(|r| !r.write_token.is_empty()) {
                io.tokens().set_write(r.write_token.clone());
                // Chunkservers learn a new key with their next heartbeat.
                std::thread::sleep(Duration::from_millis(1500));
                return io;
            }
            assert!(Instant::now() < deadline, "no write token from the masters: {:?}", ring.err());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn client(&self) -> tessera_client::Fs {
        let cfg = tessera_client::ClientConfig {
            masters: self.masters.iter().map(|m| m.addr.clone()).collect(),
            ..Default::default()
        };
        tessera_client::connect(cfg)
    }

    /// Starts one more chunkserver; returns its index.
    pub fn add_chunkserver(&mut self) -> usize {
        self.add_chunkserver_proc();
        let j = self.chunkservers.len() - 1;
        self.chunkservers[j].start();
        j
    }

    pub fn masters_arg(&self) -> String {
        self.masters.iter().map(|m| m.addr.clone()).collect::<Vec<_>>().join(",")
    }

    /// Runs the CLI against this cluster.
    pub fn tessera(&self, args: &[&str]) -> Output {
        self.tessera_env(args, &[])
    }

    pub fn tessera_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(self.bins.join("tessera"));
        cmd.args(args).env("TESSERA_MASTERS", self.masters_arg()).env("TESSERA_LOG", "warn");
        if self.insecure {
            cmd.env_remove("TESSERA_TLS_DIR").env("TESSERA_INSECURE", "1");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_bounded(cmd, Duration::from_secs(300))
    }

    /// Like `tessera` but panics with stderr unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.tessera(args);
        assert!(
            out.status.success(),
            "tessera {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs_tail()
        );
        out
    }

    pub fn status(&self) -> serde_json::Value {
        let out = self.tessera(&["--timeout", "3", "cluster", "status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Waits until a leader exists and every running chunkserver is alive.
    pub fn wait_ready(&self) {
        let want = self.chunkservers.iter().filter(|c| c.is_running()).count();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.status();
            let leader = s["masters"].as_array().is_some_and(|m| m.iter().any(|m| m["role"] == "Leader"));
            let alive = s["chunkservers"].as_array().map_or(0, |c| c.iter().filter(|c| c["alive"] == true).count());
            if leader && alive >= want {
                return;
            }
            assert!(Instant::now() < deadline, "cluster not ready after 60 s: {s}\n{}", self.logs_tail());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Index of the current leader among `masters`.
    pub fn leader(&self) -> Option<usize> {
        let s = self.status();
        let addr = s["masters"].as_array()?.iter().find(|m| m["role"] == "Leader")?["addr"].as_str()?.to_string();
        self.masters.iter().position(|m| m.addr == addr)
    }

    /// The leader, waiting up to `limit` for one (other than `not`) to be
    /// elected; panics if none is. A fault meant for a leader must land on
    /// one, never be skipped.
    pub fn wait_leader(&self, not: Option<usize>, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.leader().filter(|l| Some(*l) != not) {
                return l;
            }
            assert!(Instant::now() < deadline, "no leader (other than {not:?}) within {limit:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Cuts master `i` off the network (it keeps running); needs `netns`.
    pub fn cut_master(&self, i: usize) {
        self.lab.as_ref().expect("cut_master needs Opts::netns").cut(i);
    }

    pub fn heal_master(&self, i: usize) {
        self.lab.as_ref().expect("heal_master needs Opts::netns").heal(i);
    }

    pub fn cs_dir(&self, j: usize) -> PathBuf {
        self.dir.path().join(format!("chunkserver-{}", j + 1))
    }

    /// Path of chunk `hex` on chunkserver `j`, if it holds it. Small chunks
    /// first land in a chunkserver's journal; this waits (bounded) for the
    /// running ones to checkpoint theirs into chunk files.
    pub fn chunk_file(&self, j: usize, hex: &str) -> Option<PathBuf> {
        self.journals_checkpointed();
        let p = self.cs_dir(j).join("chunks").join(&hex[0..2]).join(hex);
        p.exists().then_some(p)
    }

    /// Copies of each chunk (hex ids) on the disks of running chunkservers.
    pub fn copies_on_disk(&self, ids: &[String]) -> Vec<usize> {
        ids.iter()
            .map(|id| {
                (0..self.chunkservers.len())
                    .filter(|j| self.chunkservers[*j].is_running() && self.chunk_file(*j, id).is_some())
                    .count()
            })
            .collect()
    }

    /// Total bytes of chunk files across all chunkservers (after the
    /// running ones have checkpointed their journals).
    pub fn stored_bytes(&self) -> u64 {
        self.journals_checkpointed();
        (0..self.chunkservers.len()).map(|j| dir_bytes(&self.cs_dir(j).join("chunks"))).sum()
    }

    /// Waits up to 10 s until no running chunkserver has a journal record
    /// not yet written as a chunk file (a checkpoint runs twice a second).
    pub fn journals_checkpointed(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while (0..self.chunkservers.len())
            .any(|j| self.chunkservers[j].is_running() && journal_holds_records(&self.cs_dir(j).join("journal")))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop_all(&mut self) {
        for p in self.chunkservers.iter_mut().chain(self.masters.iter_mut()) {
            p.stop();
        }
    }

    pub fn start_all(&mut self) {
        for p in self.masters.iter_mut().chain(self.chunkservers.iter_mut()) {
            if !p.is_running() {
                p.start();
            }
        }
        self.wait_ready();
    }

    pub fn logs_tail(&self) -> String {
        let mut s = String::new();
        for p in self.masters.iter().chain(self.chunkservers.iter()) {
            let log = p.log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            s.push_str(&format!("--- {} ---\n", p.name));
            for l in tail.into_iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A failing test leaves the servers' last words in its output (the
        // logs themselves go with the temporary directory).
        if std::thread::panicking() {
            eprintln!("servers' logs, last lines:\n{}", self.logs_tail());
        }
        for p in self.chunkservers.iter_mut().chain(self.masters.iter_mut()) {
            p.kill();
        }
    }
}

pub fn dir_bytes(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => total += dir_bytes(&e.path()),
                Ok(_) => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    }
    total
}

/// Runs a command with a hard deadline; a hung command fails the test.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn command");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            // SAFETY: killing the child we spawned, by pid.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let out = child.wait_with_output().expect("wait command");
    let _ = tx.send(());
    out
}

/// A test master's arguments: fast elections (500 ms) and failure
/// detection (3 s).
pub fn master_args(id: usize, addr: &str, peers: &str, data: &Path) -> Vec<String> {
    let args = ["--id", &id.to_string(), "--listen", addr, "--peers", peers, "--data-dir", &data.display().to_string()]
        .map(String::from);
    let timing = ["--dead-after-ms", "3000", "--election-timeout-ms", "500"].map(String::from);
    let tls = pki().args(Role::Master, &format!("master-{id}"));
    args.into_iter().chain(timing).chain(tls).collect()
}

/// Deterministic pseudo-random bytes that never repeat across seeds.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut ctr = 0u64;
    while out.len() < len {
        let mut h = blake3::Hasher::new();
        h.update(&seed.to_le_bytes());
        h.update(&ctr.to_le_bytes());
        let mut r = h.finalize_xof();
        let mut block = [0u8; 4096];
        r.fill(&mut block);
        out.extend_from_slice(&block);
        ctr += 1;
    }
    out.truncate(len);
    out
}

/// BLAKE3 ids of a file's chunks for a given chunk size.
pub fn chunk_ids(data: &[u8], chunk: usize) -> Vec<String> {
    data.chunks(chunk).map(|c| blake3::hash(c).to_hex().to_string()).collect()
}

/// A FUSE mount of a test cluster: a real `tessera-mount` process. Dropping
/// it unmounts (fusermount3 -u, lazily if busy) and kills the process by PID.
pub struct Mount {
    pub dir: tempfile::TempDir,
    proc: Proc,
}

/// Fails loudly when FUSE is not usable here (never skips silently).
pub fn require_fuse() {
    assert!(Path::new("/dev/fuse").exists(), "/dev/fuse is missing: these tests need FUSE");
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the FUSE tests need root (mounts, other uids)");
    assert!(
        Command::new("fusermount3").arg("-V").output().is_ok(),
        "fusermount3 missing: install the fuse3 package (scripts/install-deps.sh)"
    );
}

fn is_mounted(p: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let p = p.display().to_string();
    mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(p.as_str()))
}

impl Cluster {
    /// Mounts the cluster; `extra` are additional tessera-mount flags.
    pub fn mount(&self, extra: &[&str]) -> Mount {
        require_fuse();
        let dir = tempfile::Builder::new().prefix("tessera-mnt-").tempdir().expect("mount dir");
        let n = std::fs::read_dir(self.dir.path().join("logs")).map(|d| d.count()).unwrap_or(0);
        let mut args = vec!["--masters".to_string(), self.masters_arg(), "--attr-ttl-ms".into(), "200".into()];
        if !extra.iter().any(|a| *a == "--tls-dir" || *a == "--insecure") {
            args.extend(pki().args(Role::Client, "mount"));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(dir.path().display().to_string());
        let mut proc = self.proc(&format!("mount-{n}"), "", "tessera-mount", args);
        proc.start();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !is_mounted(dir.path()) {
            if let Some(c) = proc.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("tessera-mount exited with {st}: {}", proc.log());
                }
            }
            assert!(Instant::now() < deadline, "mount did not appear in 30 s: {}", proc.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        Mount { dir, proc }
    }
}

impl Mount {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// The mount process's PID (for a test that kills it).
    pub fn pid(&self) -> u32 {
        self.proc.pid().expect("the mount process runs")
    }

    /// SIGTERM to the mount process; returns true if it unmounted and
    /// exited within 15 s.
    pub fn terminate(&mut self) -> bool {
        self.proc.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(c) = self.proc.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.proc.child = None;
                    return st.success() && !is_mounted(self.dir.path());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Unmounts and waits for the mount process to exit.
    pub fn unmount(&mut self) {
        if is_mounted(self.dir.path()) {
            let ok = Command::new("fusermount3").arg("-u").arg(self.dir.path()).status().is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("fusermount3").arg("-uz").arg(self.dir.path()).status();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        if let Some(c) = self.proc.child.as_mut() {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    self.proc.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.proc.kill();
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// Runs a shell command (bounded); returns (success, stdout+stderr).
pub fn sh(cwd: &Path, script: &str) -> (bool, String) {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script).current_dir(cwd);
    let out = run_bounded(cmd, Duration::from_secs(600));
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

/// Runs a shell command as another user (uid = gid = `uid`, no supplementary groups).
pub fn sh_as(uid: u32, cwd: &Path, script: &str) -> (bool, String) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("/bin/bash");
    cmd.arg("-c").arg(script).current_dir(cwd);
    // std clears the supplementary groups when it sets the uid as root.
    cmd.gid(uid).uid(uid);
    let out = run_bounded(cmd, Duration::from_secs(120));
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

/// The errno of `lstat(p)`, None if it succeeds.
pub fn errno_of(p: &Path) -> Option<i32> {
    std::fs::symlink_metadata(p).err().and_then(|e| e.raw_os_error())
}

/// The names in directory `d`, sorted.
pub fn names(d: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Polls `f` until it holds, for at most `limit`.
/// Whether a chunkserver journal directory holds a record not yet
/// checkpointed. Segment files are preallocated and recycled, so their size
/// says nothing: a segment holds records when its first one is a record of
/// that segment (`TSJ2 | segment number`, or a first-format `TSJ1` one).
pub fn journal_holds_records(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let Some(seq) =
            name.to_str().and_then(|n| n.strip_suffix(".journal")).and_then(|n| u64::from_str_radix(n, 16).ok())
        else {
            return false;
        };
        let mut head = [0u8; 12];
        let read = std::fs::File::open(e.path()).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
        read.is_ok() && (&head[0..4] == b"TSJ1" || (&head[0..4] == b"TSJ2" && head[4..12] == seq.to_le_bytes()))
    })
}

pub fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tessera up` run by a test in `dir`: servers from a free block of
/// ports (their metrics at base + 100 and up), output in `dir`/up.log and
/// up.err. Dropping it sends SIGTERM (by pid) and waits for the exit.
pub struct LocalUp {
    pub child: Child,
    pub base: u16,
}

impl LocalUp {
    pub fn start(dir: &Path) -> LocalUp {
        Self::start_with(dir, &[])
    }

    /// With more flags for `tessera up` (`--mount DIR`: tessera up unmounts
    /// it when it stops).
    pub fn start_with(dir: &Path, extra: &[&str]) -> LocalUp {
        let base = ports(170);
        let child = Command::new(bin_dir().join("tessera"))
            .args(["up", "--dir", &dir.display().to_string(), "--base-port", &base.to_string()])
            .args(extra)
            .stdout(std::fs::File::create(dir.join("up.log")).expect("up.log"))
            .stderr(std::fs::File::create(dir.join("up.err")).expect("up.err"))
            .spawn()
            .expect("starting tessera up");
        LocalUp { child, base }
    }

    /// The admin identity `tessera up` made for the CLI (for
    /// TESSERA_TLS_DIR).
    pub fn admin_tls(dir: &Path) -> PathBuf {
        dir.join("tls/admin")
    }

    /// The masters' addresses, comma separated.
    pub fn masters(&self) -> String {
        (0..3).map(|i| format!("127.0.0.1:{}", self.base + i)).collect::<Vec<_>>().join(",")
    }

    /// SIGTERM, then waits (bounded) for `tessera up` to stop everything;
    /// true if it exited in time.
    pub fn stop(&mut self, limit: Duration) -> bool {
        // SAFETY: signalling the child this test started, by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + limit;
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        true
    }
}

impl Drop for LocalUp {
    fn drop(&mut self) {
        if !self.stop(Duration::from_secs(30)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP GET of a metrics listener's /metrics (plain HTTP/1.1).
pub fn http_get(addr: &str) -> String {
    http_get_path(addr, "/metrics")
}

/// One HTTP GET of `path` on `addr`; the whole response, headers first.
pub fn http_get_path(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// The value of the first sample whose line starts with `prefix`.
pub fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}
