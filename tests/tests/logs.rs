//! Logs an operator can ship: JSON lines with `--log-format json`, plain
//! text without colour codes otherwise, and every line a request causes
//! inside a span naming the RPC method, the calling peer and the request id.

use tessera_tests::{Cluster, Opts};

#[test]
fn json_logs_carry_the_rpc_span_and_text_logs_have_no_colour_codes() {
    let master_args = vec!["--log-format".to_string(), "json".to_string()];
    let c = Cluster::start_with(Opts { masters: 3, chunkservers: 3, master_args, cs_args: vec![], netns: false });
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
