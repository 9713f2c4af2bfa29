//! A cluster spread over hosts: every master and every chunkserver in a
//! network namespace of its own with its own address (binding 0.0.0.0 and
//! advertising that address), three zones of two chunkservers, and the
//! clients (CLI, mount) in another namespace. Data is placed one copy per
//! zone; a whole zone dies and everything still reads; the repair tops
//! the chunks up on the two zones left without piling every copy into one;
//! when the zone returns, every chunk ends with one copy in each zone.

use std::time::Duration;
use tessera_tests::*;

const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

fn zone_of(j: usize) -> &'static str {
    ZONES[j % ZONES.len()]
}

/// The zones of the running servers holding chunk `id` on disk.
fn holder_zones(c: &Cluster, id: &str) -> Vec<&'static str> {
    (0..c.chunkservers.len())
        .filter(|j| c.chunkservers[*j].is_running() && c.chunk_file(*j, id).is_some())
        .map(zone_of)
        .collect()
}

fn distinct(z: &[&str]) -> usize {
    let mut v = z.to_vec();
    v.sort();
    v.dedup();
    v.len()
}

#[test]
fn a_whole_zone_dies_and_every_chunk_keeps_its_copies_spread_over_zones() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "multi-host tests need root (network namespaces)");
    let (m, cs) = fast_healing();
    let mut c = Cluster::start_with(Opts {
        masters: 3,
        chunkservers: 6,
        master_args: m,
        cs_args: cs,
        netns: true,
        chunkserver_hosts: true,
        zones: ZONES.iter().map(|z| z.to_string()).collect(),
        insecure: false,
        late_masters: 0,
    });
    // Each server advertises its own host's address, and its zone.
    let s = c.status();
    let servers = s["chunkservers"].as_array().cloned().unwrap_or_default();
    assert_eq!(servers.len(), 6, "{s}");
    for (j, p) in c.chunkservers.iter().enumerate() {
        let row = servers.iter().find(|r| r["id"] == format!("cs-{}", j + 1)).expect("listed");
        assert_eq!(row["addr"], p.addr.as_str(), "{row}");
        assert!(p.addr.starts_with("10.77.0."), "{}", p.addr);
        assert_eq!(row["zone"], zone_of(j), "{row}");
    }

    // Files through the CLI and through a mount, both in the clients' namespace.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut ids = Vec::new();
    let local = tempfile::tempdir().unwrap();
    for (i, len) in [(0u64, 20 << 20), (1, 1 << 20), (2, 70_000)] {
        let data = random_bytes(len, 500 + i);
        let p = local.path().join(format!("f{i}"));
        std::fs::write(&p, &data).unwrap();
        c.ok(&["put", p.to_str().unwrap(), &format!("/f{i}")]);
        ids.extend(chunk_ids(&data, 4 << 20));
        files.push((format!("f{i}"), data));
    }
    let mnt = c.mount(&[]);
    std::fs::create_dir(mnt.path().join("m")).unwrap();
    for i in 0..20u64 {
        let data = random_bytes(30_000 + i as usize, 700 + i);
        std::fs::write(mnt.path().join(format!("m/{i}")), &data).unwrap();
        ids.extend(chunk_ids(&data, 4 << 20));
        files.push((format!("m/{i}"), data));
    }
    // One copy in each zone.
    eventually(Duration::from_secs(60), "every chunk on three servers in three zones", || {
        ids.iter().all(|id| {
            let z = holder_zones(&c, id);
            z.len() == 3 && distinct(&z) == 3
        })
    });

    // A whole zone dies.
    let zone_a: Vec<usize> = (0..6).filter(|j| zone_of(*j) == "zone-a").collect();
    for &j in &zone_a {
        c.chunkservers[j].kill();
    }
    // Everything still reads, through the CLI and the mount.
    for (name, data) in &files {
        let out = local.path().join("back");
        c.ok(&["get", &format!("/{name}"), out.to_str().unwrap()]);
        assert!(std::fs::read(&out).unwrap() == *data, "/{name} through the CLI");
        assert!(std::fs::read(mnt.path().join(name)).unwrap() == *data, "{name} through the mount");
    }
    // The repair puts three copies back on the four servers left, over
    // both zones left (never all three in one).
    eventually(Duration::from_secs(90), "three copies again, over both zones left", || {
        ids.iter().all(|id| {
            let z = holder_zones(&c, id);
            z.len() == 3 && distinct(&z) == 2
        })
    });

    // The zone comes back: each chunk ends with one copy per zone again
    // (the surplus in the doubled zone is removed).
    for &j in &zone_a {
        c.chunkservers[j].start();
    }
    eventually(Duration::from_secs(120), "one copy per zone once zone-a is back", || {
        ids.iter().all(|id| {
            let z = holder_zones(&c, id);
            z.len() == 3 && distinct(&z) == 3
        })
    });
    for (name, data) in &files {
        assert!(std::fs::read(mnt.path().join(name)).unwrap() == *data, "{name} after the zone returned");
    }
}
