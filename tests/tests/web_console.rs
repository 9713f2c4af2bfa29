//! The masters' web console in a real headless Chromium (Debian's
//! `chromium`): the pages load with no console messages, show the numbers
//! of a cluster in a known state, and follow it when a chunkserver dies
//! (the page shows it dead, the repair copies, the file's chunks end on
//! three live servers). Screenshots go to $TESSERA_SCREENSHOTS when set.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use tessera_tests::*;

fn chromium() -> PathBuf {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("chromium is not installed: scripts/install-test-tools.sh installs it (apt-get install chromium)");
}

/// Headless Chromium with a fresh profile, `extra` flags, on `url`.
fn chromium_run(extra: &[String], url: &str) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium());
    cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=5000"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url);
    run_bounded(cmd, Duration::from_secs(120))
}

/// Loads `url` in headless Chromium, lets its script run for a few
/// (virtual) seconds, and returns the DOM and every console message.
fn load(url: &str) -> (String, Vec<String>) {
    let out = chromium_run(&["--enable-logging=stderr".into(), "--v=0".into(), "--dump-dom".into()], url);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let console =
        String::from_utf8_lossy(&out.stderr).lines().filter(|l| l.contains(":CONSOLE")).map(String::from).collect();
    assert!(dom.contains("</html>"), "no page from {url}: {}", String::from_utf8_lossy(&out.stderr));
    (dom, console)
}

fn screenshot(url: &str, name: &str) {
    let Ok(dir) = std::env::var("TESSERA_SCREENSHOTS") else { return };
    let extra =
        ["--hide-scrollbars".to_string(), "--window-size=1280,1100".into(), format!("--screenshot={dir}/{name}.png")];
    assert!(chromium_run(&extra, url).status.success(), "screenshot of {url}");
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

fn api_status(addr: &str) -> serde_json::Value {
    let r = http_get(addr, "/api/status");
    let body = r.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {r}"))
}

/// The rows of the file page's chunk table: (holders, copies).
fn chunk_rows(dom: &str) -> Vec<(String, usize)> {
    let table = dom.split("id=\"file-chunks\"").nth(1).unwrap_or("").split("</table>").next().unwrap_or("");
    table
        .split("<tr>")
        .skip(2)
        .map(|row| {
            let cells: Vec<&str> = row
                .split("<td")
                .skip(1)
                .map(|c| c.split_once('>').map_or("", |(_, r)| r).split("</td>").next().unwrap_or(""))
                .collect();
            (cells.get(4).unwrap_or(&"").to_string(), cells.get(3).and_then(|n| n.parse().ok()).unwrap_or(0))
        })
        .collect()
}

#[test]
fn the_console_shows_the_cluster_and_follows_a_chunkserver_death() {
    let (m, cs) = fast_healing();
    let c =
        Cluster::start_with(Opts { masters: 3, chunkservers: 4, master_args: m, cs_args: cs, ..Default::default() });
    let data = random_bytes(10 << 20, 41);
    let local = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(local.path(), &data).unwrap();
    c.ok(&["mkdir", "/data"]);
    c.ok(&["put", local.path().to_str().unwrap(), "/data/big <&>"]);
    let leader = c.leader().expect("a leader");
    let console = c.consoles[leader].clone();
    eventually(Duration::from_secs(30), "the leader's repair pass settled", || {
        api_status(&console)["repair"]["settled"] == true
    });

    // The overview: this master leads, four live chunkservers with their
    // share of the ring, the file's chunks counted, no console message.
    let (dom, msgs) = load(&format!("http://{console}/"));
    assert!(msgs.is_empty(), "console messages on the overview: {msgs:?}");
    assert!(dom.contains("this master is the leader"), "{dom}");
    for j in 1..=4 {
        assert!(dom.contains(&format!("<tr data-id=\"cs-{j}\">")), "cs-{j} missing: {dom}");
    }
    assert_eq!(dom.matches("state state-alive").count(), 4, "{dom}");
    assert_eq!(dom.matches("class=\"role-leader\"").count(), 1, "{dom}");
    assert!(dom.contains("Updated "), "the script did not refresh the page: {dom}");
    let s = api_status(&console);
    let shares: f64 = s["chunkservers"].as_array().unwrap().iter().map(|c| c["ring_share"].as_f64().unwrap()).sum();
    assert!((shares - 1.0).abs() < 1e-6, "ring shares sum to {shares}");
    assert!(s["chunks"].as_u64().unwrap() >= 3, "{s}");
    screenshot(&format!("http://{console}/"), "console-overview");

    // The namespace browser: the directory, then the file, its name
    // escaped, each chunk on three servers.
    let (dom, msgs) = load(&format!("http://{console}/browse?path=/data"));
    assert!(msgs.is_empty(), "{msgs:?}");
    assert!(dom.contains("big &lt;&amp;&gt;") && !dom.contains("big <&>"), "{dom}");
    let file_url = format!("http://{console}/browse?path=/data/big%20%3C%26%3E");
    let (dom, _) = load(&file_url);
    let rows = chunk_rows(&dom);
    assert!(rows.len() >= 3 && rows.iter().all(|(_, n)| *n == 3), "{rows:?}\n{dom}");
    screenshot(&file_url, "console-file");

    // A follower says what it is and who leads.
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let (dom, msgs) = load(&format!("http://{}/", c.consoles[follower]));
    assert!(msgs.is_empty(), "{msgs:?}");
    assert!(dom.contains(&format!("the leader is master {}", leader + 1)), "{dom}");

    // Kill the first holder of the first chunk: the page shows it dead,
    // the repair copies, and every chunk ends on three live servers.
    let victim = rows[0].0.split(", ").next().unwrap().to_string();
    let j = c.chunkservers.iter().position(|p| p.addr == victim).expect("the holder is one of ours");
    let copied_before = s["repair"]["copied_bytes_total"].as_u64().unwrap();
    let mut c = c;
    c.chunkservers[j].kill();
    eventually(Duration::from_secs(20), "the overview shows the killed server dead", || {
        let (dom, _) = load(&format!("http://{console}/"));
        dom.contains(&format!("<tr data-id=\"cs-{}\">", j + 1))
            && dom
                .split(&format!("<tr data-id=\"cs-{}\">", j + 1))
                .nth(1)
                .is_some_and(|r| r.split("</tr>").next().is_some_and(|r| r.contains("state state-dead")))
    });
    eventually(Duration::from_secs(60), "repair copied and settled", || {
        let s = api_status(&console);
        s["repair"]["copied_bytes_total"].as_u64().unwrap_or(0) > copied_before && s["repair"]["settled"] == true
    });
    let (dom, msgs) = load(&file_url);
    assert!(msgs.is_empty(), "{msgs:?}");
    let rows = chunk_rows(&dom);
    assert!(rows.iter().all(|(h, n)| *n == 3 && !h.contains(&victim)), "{rows:?}");
    let (dom, _) = load(&format!("http://{console}/"));
    assert!(dom.contains("id=\"r-settled\">yes"), "{dom}");
    screenshot(&format!("http://{console}/"), "console-after-kill");
    let s = api_status(&console);
    let history = s["history"].as_array().cloned().unwrap_or_default();
    assert!(history.iter().any(|h| h["rpcs_per_s"].as_f64().unwrap_or(0.0) > 0.0), "no request rate plotted: {s}");
}
