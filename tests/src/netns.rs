//! Network namespaces for partition tests. A hub namespace holds a bridge;
//! every host gets its own namespace, linked to the bridge by a veth pair,
//! with address 10.77.0.<i+1>. Clients run in the hub (10.77.0.100).
//! Taking a host's link down in the hub cuts it off from every other host
//! and from the clients, while its processes keep running. Only addresses
//! inside these namespaces are ever used; all of them are deleted on drop.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The hub's address on the lab's bridge.
pub const HUB_IP: &str = "10.77.0.100";

pub struct Lab {
    prefix: String,
    hosts: usize,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS`, panicking with its stderr on failure (a partition test
/// that cannot build its network fails loudly; it needs root).
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (install iproute2): {e}"));
    assert!(
        out.status.success(),
        "ip {}: {} (partition tests need root and iproute2)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Lab {
    pub fn new(hosts: usize) -> Lab {
        let prefix = format!("tsn{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let lab = Lab { prefix, hosts: 0 };
        let hub = lab.hub();
        ip(&["netns", "add", &hub]);
        // From here on, Drop cleans up whatever was created.
        let mut lab = lab;
        ip(&["-n", &hub, "link", "set", "lo", "up"]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "addr", "add", &format!("{HUB_IP}/24"), "dev", "br0"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        for i in 0..hosts {
            let ns = lab.host(i);
            ip(&["netns", "add", &ns]);
            lab.hosts = i + 1;
            let veth = format!("vh{i}");
            ip(&["-n", &hub, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
            ip(&["-n", &hub, "link", "set", &veth, "master", "br0"]);
            ip(&["-n", &hub, "link", "set", &veth, "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", lab.ip(i)), "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    pub fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    pub fn host(&self, i: usize) -> String {
        format!("{}-h{i}", self.prefix)
    }

    pub fn ip(&self, i: usize) -> String {
        format!("10.77.0.{}", i + 1)
    }

    /// A command that runs `program` inside namespace `ns`.
    pub fn command(&self, ns: &str, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// Moves the calling thread into the hub's network namespace; threads
    /// and processes it starts from then on are there too.
    pub fn enter_hub(&self) {
        let path = format!("/run/netns/{}", self.hub());
        let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a valid namespace fd affects only this thread.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns into {path}: {}", std::io::Error::last_os_error());
    }

    /// Cuts host `i` off the network (its processes keep running).
    pub fn cut(&self, i: usize) {
        ip(&["-n", &self.hub(), "link", "set", &format!("vh{i}"), "down"]);
    }

    pub fn heal(&self, i: usize) {
        ip(&["-n", &self.hub(), "link", "set", &format!("vh{i}"), "up"]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.hosts {
            let _ = Command::new("ip").args(["netns", "del", &self.host(i)]).status();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.hub()]).status();
    }
}
