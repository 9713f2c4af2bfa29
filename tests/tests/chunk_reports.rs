//! Full chunk reports too large for one message go in pages: with pages of
//! 50 ids, a new leader still learns where every chunk is (fsck clean, no
//! chunk missing) and repairs nothing that is not missing.

use std::time::Duration;
use tessera_tests::{eventually, random_bytes, Cluster, Opts};

#[test]
fn paged_chunk_reports_tell_a_new_leader_where_every_chunk_is() {
    let cs_args = ["--report-page-ids", "50"].map(String::from).to_vec();
    let master_args = ["--repair-interval-ms", "300"].map(String::from).to_vec();
    let mut c = Cluster::start_with(Opts { masters: 3, chunkservers: 3, master_args, cs_args, ..Default::default() });
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // 400 chunks: 8 pages per server.
    for i in 0..100u64 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(4 * 4096, 4_000 + i)).unwrap();
    }
    c.ok(&["put", "--chunk-size", "4096", src.to_str().unwrap(), "/d"]);

    // A new leader knows nothing of where chunks are: it learns it from
    // the paged full reports the chunkservers send it.
    let leader = c.leader().expect("a leader");
    c.masters[leader].kill();
    eventually(Duration::from_secs(20), "a new leader", || c.leader().is_some_and(|l| l != leader));
    c.masters[leader].start();
    eventually(Duration::from_secs(60), "the new leader's repair status", || {
        let r = &c.status()["repair"];
        r["chunks"] == 400 && r["missing"] == 0 && r["below_goal"] == 0 && r["settled"] == true
    });
    let out = c.ok(&["fsck", "/d"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("100 files, 0 unreadable"), "fsck: {text}");
    assert_eq!(text.matches("replicas 3/3: OK").count(), 100, "fsck: {text}");
}
