//! The CLI for people and for scripts: sizes readable by default and exact
//! with -b, --json where a script reads the output, shell completions and
//! man pages generated from the same definitions as --help.

use tessera_tests::{random_bytes, Cluster};

fn stdout(c: &Cluster, args: &[&str]) -> String {
    String::from_utf8_lossy(&c.ok(args).stdout).into_owned()
}

#[test]
fn sizes_json_completions_and_man_pages() {
    let c = Cluster::start(1, 3);
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("f");
    let len = 3 << 19; // 1.5 MiB
    std::fs::write(&f, random_bytes(len, 77)).unwrap();
    c.ok(&["mkdir", "/d"]);
    c.ok(&["put", f.to_str().unwrap(), "/d/f"]);

    // Readable by default, exact with -b.
    let ls = stdout(&c, &["ls", "-l", "/d"]);
    assert!(ls.contains(" 1.5M ") && !ls.contains(&len.to_string()), "{ls}");
    let ls_b = stdout(&c, &["-b", "ls", "-l", "/d"]);
    assert!(ls_b.contains(&format!(" {len} ")), "{ls_b}");
    let du = stdout(&c, &["du", "-s", "/d"]);
    assert!(du.trim_start().starts_with("1.5M"), "{du}");
    let status = stdout(&c, &["cluster", "status"]);
    assert!(status.lines().any(|l| l.starts_with("cs-") && (l.contains('G') || l.contains('T'))), "{status}");

    // JSON: exact numbers.
    let v: serde_json::Value = serde_json::from_str(&stdout(&c, &["ls", "--json", "/d"])).unwrap();
    assert_eq!(v[0]["name"], "f");
    assert_eq!(v[0]["size"], len as u64);
    assert_eq!(v[0]["kind"], "regular");
    let v: serde_json::Value = serde_json::from_str(&stdout(&c, &["stat", "--json", "/d/f"])).unwrap();
    assert_eq!(v["size"], len as u64);
    assert_eq!(v["chunks"], 1);
    let v: serde_json::Value = serde_json::from_str(&stdout(&c, &["du", "--json", "/"])).unwrap();
    assert_eq!(v["bytes"], len as u64);
    assert_eq!(v["files"], 1);
    assert_eq!(v["entries"][0]["path"], "/d");
    let v: serde_json::Value = serde_json::from_str(&stdout(&c, &["admin", "chunkserver", "list", "--json"])).unwrap();
    assert_eq!(v.as_array().map(|a| a.len()), Some(3));
    assert!(v[0]["capacity"].as_u64().is_some_and(|n| n > 0), "{v}");

    // Completions name the commands; man pages are valid roff, one per command.
    let bash = stdout(&c, &["completions", "bash"]);
    assert!(bash.contains("complete") && bash.contains("put") && bash.contains("fsck"), "{}", &bash[..200]);
    let man = work.path().join("man");
    c.ok(&["man", man.to_str().unwrap()]);
    let page = std::fs::read_to_string(man.join("tessera-put.1")).unwrap();
    assert!(page.starts_with(".ie") || page.contains(".TH"), "not roff: {}", &page[..100.min(page.len())]);
    assert!(page.contains("resume"), "tessera-put.1 lacks --resume");
    assert!(man.join("tessera.1").exists() && man.join("tessera-admin-chunkserver-drain.1").exists());
}
