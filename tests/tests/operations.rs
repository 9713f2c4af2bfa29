//! What an operator touches: logs they can ship (JSON lines with
//! `--log-format json`, plain text without colour codes otherwise, every
//! line a request causes inside a span naming the RPC method, the calling
//! peer and the request id), and config files.

use tessera_tests::{http_get, http_get_path, sample, Cluster, Opts};

#[test]
fn json_logs_carry_the_rpc_span_and_text_logs_have_no_colour_codes() {
    let master_args = vec!["--log-format".to_string(), "json".to_string()];
    let c =
        Cluster::start_with(Opts { masters: 3, chunkservers: 3, master_args, cs_args: vec![], ..Default::default() });
    c.ok(&["admin", "chunkserver", "drain", "cs-3"]);
    c.ok(&["admin", "chunkserver", "undrain", "cs-3"]);
    let leader = c.leader().expect("a leader");
    let log = c.masters[leader].log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    let acts: Vec<&serde_json::Value> =
        lines.iter().filter(|v| v["fields"]["message"] == "chunkserver state set by an operator").collect();
    assert_eq!(acts.len(), 2, "the two operator acts are logged once each:\n{log}");
    for v in acts {
        let span = &v["span"];
        assert_eq!(span["name"], "rpc", "{v}");
        assert!(span["method"].as_str().is_some_and(|m| m.ends_with("/SetChunkserverState")), "{v}");
        assert!(span["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{v}");
        assert_eq!(span["who"], "test-admin/admin", "the caller's certificate: {v}");
        let id = span["request"].as_str().unwrap_or("");
        assert!(id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()), "request id {id:?} in {v}");
    }
    // Text logs written to a file: no terminal escape codes.
    for cs in &c.chunkservers {
        let text = cs.log();
        assert!(text.contains("chunkserver serving"), "{text}");
        assert!(!text.contains('\u{1b}'), "colour codes in {}'s log", cs.name);
    }
}

/// `--config FILE` (TOML, one key per flag) under the environment and the
/// command line; the example files in deploy/ are valid for their binary;
/// an unknown setting is a one-line error.
#[test]
fn config_files_set_what_flags_do_and_flags_override_them() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("cs.toml");
    std::fs::write(&file, "zone = \"z-file\"\nscrub_mbps = 0\nlog-format = \"json\"\n").unwrap();
    let cs_args = vec!["--config".to_string(), file.display().to_string()];
    let mut c =
        Cluster::start_with(Opts { masters: 1, chunkservers: 3, master_args: vec![], cs_args, ..Default::default() });
    let zones = |c: &Cluster| -> Vec<String> {
        let out = c.ok(&["admin", "chunkserver", "list", "--json"]).stdout;
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        v.as_array().unwrap().iter().map(|s| s["zone"].as_str().unwrap_or("").to_string()).collect()
    };
    assert_eq!(zones(&c), ["z-file", "z-file", "z-file"]);
    // The file's log format took effect too.
    let first = c.chunkservers[0].log();
    assert!(first.lines().next().is_some_and(|l| l.starts_with('{')), "not JSON: {first}");
    // A flag on the command line wins over the file.
    c.chunkservers[2].stop();
    c.chunkservers[2].add_arg("--zone=z-flag");
    c.chunkservers[2].start();
    tessera_tests::eventually(std::time::Duration::from_secs(20), "the flag's zone registered", || {
        zones(&c).contains(&"z-flag".to_string())
    });
    // The examples in deploy/ name only real settings of their binary.
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    for (bin, f) in [
        ("tessera-master", "master.toml"),
        ("tessera-chunkserver", "chunkserver.toml"),
        ("tessera-mount", "mount.toml"),
    ] {
        let out = std::process::Command::new(tessera_tests::bin_dir().join(bin))
            .arg("--config")
            .arg(deploy.join(f))
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{bin} --config deploy/{f}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let bad = work.path().join("bad.toml");
    std::fs::write(&bad, "no_such_setting = 1\n").unwrap();
    let out = std::process::Command::new(tessera_tests::bin_dir().join("tessera-chunkserver"))
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.trim().lines().count() == 1, "{err}");
    assert!(err.contains("unknown setting \"no_such_setting\""), "{err}");
}

/// `tessera up` serves Prometheus metrics from every process: RPC counts
/// and latency by method, Raft state, the store's figures, the mount's
/// bytes; and every metric the sample Grafana dashboard in deploy/ plots
/// is one of them.
#[test]
fn tessera_up_serves_prometheus_metrics_from_every_server() {
    tessera_tests::require_fuse();
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let mut up = tessera_tests::LocalUp::start_with(dir.path(), &["--mount", mnt.to_str().unwrap()]);
    let (base, masters) = (up.base, up.masters());
    let admin_tls = tessera_tests::LocalUp::admin_tls(dir.path());
    let cli = |args: &[&str]| {
        let mut cmd = std::process::Command::new(tessera_tests::bin_dir().join("tessera"));
        cmd.args(args).env("TESSERA_MASTERS", &masters).env("TESSERA_TLS_DIR", &admin_tls);
        tessera_tests::run_bounded(cmd, std::time::Duration::from_secs(60))
    };
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("f");
    std::fs::write(&f, tessera_tests::random_bytes(3 << 20, 5)).unwrap();
    tessera_tests::eventually(std::time::Duration::from_secs(60), "a put through tessera up", || {
        cli(&["put", f.to_str().unwrap(), "/f"]).status.success()
    });
    let scrape = || -> Vec<String> { (0..3).map(|i| http_get(&format!("127.0.0.1:{}", base + 100 + i))).collect() };
    // Gauges are sampled once a second.
    tessera_tests::eventually(std::time::Duration::from_secs(10), "one leader, every master past term 0", || {
        let m = scrape();
        m.iter().filter_map(|t| sample(t, "tessera_raft_is_leader ")).sum::<f64>() == 1.0
            && m.iter().all(|t| sample(t, "tessera_raft_term ").is_some_and(|v| v >= 1.0))
    });
    let m = scrape();
    assert!(m.iter().all(|t| t.starts_with("HTTP/1.1 200")), "{m:?}");
    let all = m.join("\n");
    assert!(all.contains("tessera_rpc_requests_total{method=\"/tessera.Meta/"), "no metadata RPC counted");
    assert!(all.contains("tessera_rpc_seconds_bucket{method=\"/tessera.Meta/"), "no RPC latency histogram");
    let cs = http_get(&format!("127.0.0.1:{}", base + 120));
    assert!(cs.starts_with("HTTP/1.1 200"), "{cs}");
    assert!(sample(&cs, "tessera_chunkserver_disk_capacity_bytes ").is_some_and(|v| v > 0.0), "{cs}");
    // The journal's checkpoint lag, and the scrubber's first pass (at start).
    assert!(sample(&cs, "tessera_journal_pending_bytes ").is_some(), "{cs}");
    assert!(sample(&cs, "tessera_scrub_passes_total ").is_some_and(|v| v >= 1.0), "{cs}");
    tessera_tests::eventually(std::time::Duration::from_secs(10), "the chunk counted in stored bytes", || {
        let cs = http_get(&format!("127.0.0.1:{}", base + 120));
        sample(&cs, "tessera_chunkserver_stored_bytes ").is_some_and(|v| v >= (3 << 20) as f64)
    });
    // The mount: bytes through it are counted.
    let data = tessera_tests::random_bytes(1 << 20, 6);
    tessera_tests::eventually(std::time::Duration::from_secs(30), "a write through the mount", || {
        std::fs::write(mnt.join("m"), &data).is_ok()
    });
    // Past the kernel's page cache, so that the read reaches the mount.
    let f = std::fs::File::open(mnt.join("m")).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: advice on a file descriptor this test holds open.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert!(std::fs::read(mnt.join("m")).unwrap() == data);
    // A directory made, filled and given its times: its create and its
    // setattrs are written behind, and counted.
    let d = mnt.join("dir");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("f"), b"x").unwrap();
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
    // A file the CLI wrote is read through the chunk cache.
    assert_eq!(std::fs::read(mnt.join("f")).unwrap().len(), 3 << 20);
    // Gauges and cache counters are published once a second.
    let mut mount = String::new();
    tessera_tests::eventually(std::time::Duration::from_secs(10), "the mount's gauges", || {
        mount = http_get(&format!("127.0.0.1:{}", base + 119));
        let cache = |r: &str| sample(&mount, &format!("tessera_mount_chunk_cache_reads_total{{result=\"{r}\"}} "));
        cache("hit").unwrap_or(0.0) + cache("miss").unwrap_or(0.0) >= 1.0
    });
    assert!(sample(&mount, "tessera_mount_write_bytes_total ").is_some_and(|v| v >= (1 << 20) as f64), "{mount}");
    assert!(sample(&mount, "tessera_mount_read_bytes_total ").is_some_and(|v| v > 0.0), "{mount}");
    for (name, least) in [
        ("tessera_mount_fuse_ops_total{op=\"write\",result=\"ok\"} ", 1.0),
        ("tessera_mount_fuse_ops_total{op=\"lookup\",result=\"error\"} ", 1.0),
        ("tessera_mount_fuse_op_seconds_count{op=\"write\"} ", 1.0),
        ("tessera_mount_write_behind_total{kind=\"create\"} ", 1.0),
        ("tessera_mount_write_behind_total{kind=\"dir_attrs\"} ", 1.0),
        ("tessera_mount_write_behind_in_flight ", 0.0),
    ] {
        assert!(sample(&mount, name).is_some_and(|v| v >= least), "{name} below {least}:\n{mount}");
    }
    assert!(sample(&mount, "tessera_mount_chunk_cache_bytes ").is_some_and(|v| v > 0.0), "{mount}");
    // Every metric the dashboard plots exists.
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana-dashboard.json");
    let dash: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(deploy).unwrap()).unwrap();
    let mut scraped = scrape().join("\n");
    for j in 0..3 {
        scraped.push_str(&http_get(&format!("127.0.0.1:{}", base + 120 + j)));
    }
    scraped.push_str(&mount);
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_string()))
        .collect();
    let mut names = 0;
    for e in &exprs {
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("tessera_")) {
            names += 1;
            assert!(scraped.contains(&format!("\n{word}")), "the dashboard plots {word}, which no process serves");
        }
    }
    assert!(names >= 20, "only {names} metric names found in the dashboard");
    // Each master's web console (tests/tests/web_console.rs drives it in a browser).
    for i in 0..3 {
        let page = http_get_path(&format!("127.0.0.1:{}", base + 140 + i), "/");
        assert!(page.starts_with("HTTP/1.1 200") && page.contains("<h2>Chunkservers</h2>"), "{page}");
    }
    assert!(up.stop(std::time::Duration::from_secs(30)), "tessera up did not stop");
    assert!(!mnt.join("m").exists(), "the mount is still there after tessera up stopped");
}

/// Every server's counters move by what a known workload did: the bytes a
/// mount wrote, the inodes and chunks the namespace holds, the bytes the
/// chunkservers store (three copies of each), and the bytes a repair
/// copied after a chunkserver was killed (what the dead one held).
#[test]
fn metrics_count_a_known_workload_and_a_repair_exactly() {
    let (m, cs) = tessera_tests::fast_healing();
    let mut c =
        Cluster::start_with(Opts { masters: 3, chunkservers: 4, master_args: m, cs_args: cs, ..Default::default() });
    let get = |addr: &str| http_get(addr);
    let metric = |addr: &str, name: &str| sample(&get(addr), &format!("{name} ")).unwrap_or(-1.0);
    // 10 MiB + 1234 bytes through a mount that serves its metrics.
    let mount_metrics = format!("127.0.0.1:{}", tessera_tests::ports(1));
    let mnt = c.mount(&["--metrics-listen", &mount_metrics]);
    let size = (10 << 20) + 1234;
    let data = tessera_tests::random_bytes(size, 77);
    std::fs::write(mnt.path().join("f"), &data).unwrap();
    tessera_tests::eventually(std::time::Duration::from_secs(10), "the mount counts the bytes written", || {
        metric(&mount_metrics, "tessera_mount_write_bytes_total") == size as f64
    });
    let leader = c.leader().expect("a leader");
    let lm = c.master_metrics[leader].clone();
    // Root and the file, and the file's chunks.
    // How many chunks the file is in depends on when the mount committed
    // during the write (a 4 MiB slot may have been committed half full and
    // rewritten): the file's own extents say.
    let stat: serde_json::Value = serde_json::from_slice(&c.ok(&["stat", "--json", "/f"]).stdout).unwrap();
    let file_chunks = stat["chunks"].as_f64().expect("chunks in stat --json");
    assert!(file_chunks >= 3.0, "{stat}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (inodes, chunks) = (metric(&lm, "tessera_namespace_inodes"), metric(&lm, "tessera_namespace_chunks"));
        if (inodes, chunks) == (2.0, file_chunks) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "namespace gauges: {inodes} inodes, {chunks} chunks");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(metric(&lm, "tessera_namespace_chunk_bytes"), size as f64);
    let stored = |c: &Cluster| -> f64 {
        (0..c.chunkservers.len())
            .filter(|j| c.chunkservers[*j].is_running())
            .map(|j| metric(&c.cs_metrics[j], "tessera_chunkserver_stored_bytes").max(0.0))
            .sum()
    };
    tessera_tests::eventually(std::time::Duration::from_secs(15), "three copies of every byte stored", || {
        stored(&c) == 3.0 * size as f64
    });
    // Settled: no copy owed or in flight, no surplus. (A write that found
    // an owner slow under load went to a substitute, which the healer
    // moves to the owner: a copy counted after `before` below.)
    tessera_tests::eventually(std::time::Duration::from_secs(30), "the repair pass settled", || {
        c.status()["repair"]["settled"] == true && metric(&lm, "tessera_repair_under_replicated") == 0.0
    });
    // Kill the server holding the most of it: the repair copies exactly
    // what it held, and the survivors store three copies again.
    let held: Vec<f64> = (0..4).map(|j| metric(&c.cs_metrics[j], "tessera_chunkserver_stored_bytes")).collect();
    let victim = (0..4).max_by(|a, b| held[*a].total_cmp(&held[*b])).unwrap();
    assert!(held[victim] > 0.0, "{held:?}");
    let before = metric(&lm, "tessera_repair_copied_bytes_total");
    c.chunkservers[victim].kill();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let copied = metric(&lm, "tessera_repair_copied_bytes_total") - before;
        let under = metric(&lm, "tessera_repair_under_replicated");
        if copied == held[victim] && under == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the repair copied {copied} bytes, the dead server held {} ({held:?}); {under} under-replicated\n{}",
            held[victim],
            c.logs_tail()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    tessera_tests::eventually(std::time::Duration::from_secs(15), "three copies stored on the survivors", || {
        stored(&c) == 3.0 * size as f64
    });
}
