//! Minority isolation with real network partitions: three masters, each in
//! its own network namespace, clients in a hub namespace. The leader is cut
//! off while it keeps running: it commits nothing and serves no
//! linearizable read, the majority elects a new leader and goes on, and
//! after the partition heals the old leader has the majority's history
//! only (no split brain).

use std::process::Output;
use std::time::{Duration, Instant};
use tessera_tests::netns::Lab;
use tessera_tests::{bin_dir, master_args, run_bounded, Proc};

const PORT: u16 = 7100;

struct Net {
    lab: Lab,
    masters: Vec<Proc>,
    _dir: tempfile::TempDir,
}

impl Net {
    fn start() -> Net {
        let lab = Lab::new(3);
        let dir = tempfile::Builder::new().prefix("tessera-partition-").tempdir().unwrap();
        let addrs: Vec<String> = (0..3).map(|i| format!("{}:{PORT}", lab.ip(i))).collect();
        let peers = addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect::<Vec<_>>().join(",");
        let mut masters = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let name = format!("master-{}", i + 1);
            let mut args = vec![
                "netns".to_string(),
                "exec".into(),
                lab.host(i),
                bin_dir().join("tessera-master").display().to_string(),
            ];
            args.extend(master_args(i + 1, addr, &peers, &dir.path().join(&name)));
            let log = dir.path().join(format!("{name}.log"));
            let mut p = Proc::new(&name, addr, "ip".into(), args, log);
            p.start();
            masters.push(p);
        }
        Net { lab, masters, _dir: dir }
    }

    fn all(&self) -> String {
        self.masters.iter().map(|m| m.addr.clone()).collect::<Vec<_>>().join(",")
    }

    /// The CLI run inside namespace `ns` against `masters`.
    fn cli(&self, ns: &str, masters: &str, args: &[&str]) -> Output {
        let mut c = self.lab.command(ns, &bin_dir().join("tessera"));
        c.arg("--masters").arg(masters).args(args).env("TESSERA_LOG", "warn");
        run_bounded(c, Duration::from_secs(90))
    }

    fn status(&self, ns: &str, masters: &str) -> serde_json::Value {
        let out = self.cli(ns, masters, &["--timeout", "3", "cluster", "status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Index of the leader as the hub sees it, waiting up to 30 s.
    fn wait_leader(&self, among: &[usize]) -> (usize, u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.status(&self.lab.hub(), &self.all());
            for m in s["masters"].as_array().cloned().unwrap_or_default() {
                let i = m["id"].as_u64().unwrap_or(0) as usize;
                if m["role"] == "Leader" && i >= 1 && among.contains(&(i - 1)) {
                    return (i - 1, m["term"].as_u64().unwrap_or(0));
                }
            }
            assert!(Instant::now() < deadline, "no leader among {among:?}: {s}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn logs(&self) -> String {
        self.masters.iter().map(|m| format!("--- {} ---\n{}", m.name, tail(&m.log()))).collect()
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_isolated_leader_commits_nothing_and_the_majority_goes_on() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "partition tests need root (network namespaces)");
    let net = Net::start();
    let hub = net.lab.hub();
    let all = net.all();
    let (old, old_term) = net.wait_leader(&[0, 1, 2]);
    ok(&net.cli(&hub, &all, &["mkdir", "/before"]), "mkdir /before");

    net.lab.cut(old);
    let inside = net.lab.host(old);
    let old_addr = net.masters[old].addr.clone();
    // The majority elects a new leader in a later term and keeps serving.
    let rest: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let (_, new_term) = net.wait_leader(&rest);
    assert!(new_term > old_term, "new leader in term {new_term}, old in {old_term}");
    ok(&net.cli(&hub, &all, &["mkdir", "/majority"]), "mkdir /majority on the majority side");
    // On the isolated side: no write commits, and no linearizable read is
    // answered (it would be stale: /majority would look absent).
    let w = net.cli(&inside, &old_addr, &["--timeout", "4", "mkdir", "/minority"]);
    assert!(!w.status.success(), "the isolated leader acknowledged a write");
    let r = net.cli(&inside, &old_addr, &["--timeout", "4", "stat", "/majority"]);
    assert!(!r.status.success(), "the isolated leader answered a read");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!err.to_lowercase().contains("no such file"), "the isolated leader answered a stale read: {err}");

    net.lab.heal(old);
    // After healing: one leader, and the old one has the majority's history.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = net.status(&hub, &all);
        let ms = s["masters"].as_array().cloned().unwrap_or_default();
        let leaders = ms.iter().filter(|m| m["role"] == "Leader").count();
        let applied: Vec<u64> = ms.iter().map(|m| m["applied_index"].as_u64().unwrap_or(0)).collect();
        let roles_ok = ms.len() == 3 && leaders == 1 && ms[old]["role"] != "Leader";
        if roles_ok && applied.iter().all(|a| *a == applied[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "the group did not reconverge: {s}\n{}", net.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(&net.cli(&hub, &all, &["stat", "/before"]), "stat /before");
    ok(&net.cli(&hub, &all, &["stat", "/majority"]), "stat /majority");
    let m = net.cli(&hub, &all, &["stat", "/minority"]);
    assert!(!m.status.success(), "/minority exists: the isolated leader's write survived");
    assert!(String::from_utf8_lossy(&m.stderr).contains("no such file"), "{}", String::from_utf8_lossy(&m.stderr));
    // The old leader's own state (read locally) is the majority's.
    let local = net.cli(&inside, &old_addr, &["--stale-reads", "ls", "/"]);
    ok(&local, "ls on the old leader");
    let names = String::from_utf8_lossy(&local.stdout).into_owned();
    assert!(names.contains("majority") && !names.contains("minority"), "old leader's namespace: {names}");
}
