//! Transport security against real processes: every port wants a
//! certificate from the cluster's CA; each role may call only its own
//! RPCs; a chunkserver speaks only for itself; plaintext only when asked.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tessera_proto::pb::{
    admin_client::AdminClient, chunk_client::ChunkClient, chunkserver_control_client::ChunkserverControlClient,
    meta_client::MetaClient, raft_client::RaftClient, AddMasterRequest, ChunkserverStateRequest, DeleteChunksRequest,
    Empty, HasChunksRequest, HeartbeatRequest, LookupRequest, RaftBlob, RegisterRequest, ReplicateRequest,
};
use tessera_rpc::certs::Ca;
use tessera_rpc::tls::{Security, Tls};
use tessera_tests::{bin_dir, pki, run_bounded, Cluster, Opts, Role};
use tonic::Code;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// A security of its own for a test client (leaked: tests are short).
fn as_identity(dir: &std::path::Path) -> &'static Security {
    Box::leak(Box::new(Security::Tls(Arc::new(Tls::load(dir).unwrap()))))
}

fn plaintext() -> &'static Security {
    Box::leak(Box::new(Security::Insecure))
}

fn chan(sec: &'static Security, addr: &str, to: Role) -> tonic::transport::Channel {
    tessera_rpc::pool::channel_as(sec, addr, to).unwrap()
}

/// The outcome of a call, as its code (Ok for success), bounded in time.
async fn code<T>(f: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>) -> Code {
    match tokio::time::timeout(Duration::from_secs(10), f).await {
        Ok(Ok(_)) => Code::Ok,
        Ok(Err(s)) => s.code(),
        Err(_) => panic!("a call did not answer within 10 s"),
    }
}

/// The code of a call whose connection the server dropped right after the
/// handshake (tonic reports the reset as Unknown or Unavailable).
fn dropped(c: Code) -> bool {
    matches!(c, Code::Unavailable | Code::Unknown | Code::Cancelled)
}

/// A CLI run with exactly this security in its environment.
fn cli(c: &Cluster, tls_dir: Option<&std::path::Path>, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(bin_dir().join("tessera"));
    cmd.args(args).env("TESSERA_MASTERS", c.masters_arg()).env("TESSERA_LOG", "warn").env_remove("TESSERA_TLS_DIR");
    match tls_dir {
        Some(d) => cmd.env("TESSERA_TLS_DIR", d),
        None => cmd.env("TESSERA_INSECURE", "1"),
    };
    run_bounded(cmd, Duration::from_secs(60))
}

#[test]
fn no_certificate_or_a_foreign_ca_connects_to_any_port() {
    let c = Cluster::start(3, 3);
    let foreign = tempfile::tempdir().unwrap();
    let other_ca = Ca::generate("other").unwrap();
    other_ca.issue_into(Role::Admin, "test-admin", 1, &foreign.path().join("admin")).unwrap();
    other_ca.issue_into(Role::Master, "master-1", 1, &foreign.path().join("master")).unwrap();
    let ours = as_identity(&pki().identity(Role::Admin, "test-admin"));
    let strangers =
        [plaintext(), as_identity(&foreign.path().join("admin")), as_identity(&foreign.path().join("master"))];
    rt().block_on(async {
        for m in &c.masters {
            assert_eq!(code(MetaClient::new(chan(ours, &m.addr, Role::Master)).node_status(Empty {})).await, Code::Ok);
            for s in strangers {
                let got = code(MetaClient::new(chan(s, &m.addr, Role::Master)).node_status(Empty {})).await;
                assert_ne!(got, Code::Ok, "{}: a stranger was answered", m.addr);
                let got =
                    code(RaftClient::new(chan(s, &m.addr, Role::Master)).vote(RaftBlob { data: Default::default() }))
                        .await;
                assert_ne!(got, Code::Ok);
            }
        }
        for cs in &c.chunkservers {
            let ok = code(ChunkClient::new(chan(ours, &cs.addr, Role::Chunkserver)).stats(Empty {})).await;
            assert_eq!(ok, Code::Ok);
            for s in strangers {
                let got = code(ChunkClient::new(chan(s, &cs.addr, Role::Chunkserver)).stats(Empty {})).await;
                assert_ne!(got, Code::Ok, "{}: a stranger was answered", cs.addr);
            }
        }
    });
    // A server that is not the role its caller expects is refused by the
    // caller: a chunkserver cannot pose as a master.
    rt().block_on(async {
        let cs = &c.chunkservers[0].addr;
        assert_ne!(code(MetaClient::new(chan(ours, cs, Role::Master)).node_status(Empty {})).await, Code::Ok);
    });
    // The CLI: plaintext and a foreign CA fail with one line; ours works.
    for id in [None, Some(foreign.path().join("admin"))] {
        let out = cli(&c, id.as_deref(), &["--timeout", "5", "ls", "/"]);
        let err = String::from_utf8_lossy(&out.stderr);
        // One error line (plaintext also logs its INSECURE warning).
        let errors = err.lines().filter(|l| l.starts_with("tessera: ")).count();
        assert!(!out.status.success() && errors == 1, "{err}");
    }
    let out = cli(&c, Some(&pki().identity(Role::Admin, "test-admin")), &["ls", "/"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The servers said why they refused.
    assert!(c.masters[0].log().contains("TLS handshake refused"), "{}", c.masters[0].log());
}

#[test]
fn each_role_calls_only_its_own_rpcs() {
    let c = Cluster::start(3, 3);
    let data = tessera_tests::random_bytes(300_000, 71);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("f"), &data).unwrap();
    c.ok(&["put", work.path().join("f").to_str().unwrap(), "/f"]);
    let client = as_identity(&pki().identity(Role::Client, "someone"));
    let admin = as_identity(&pki().identity(Role::Admin, "test-admin"));
    let cs1 = as_identity(&pki().identity(Role::Chunkserver, "cs-1"));
    let master = as_identity(&pki().identity(Role::Master, "master-1"));
    let chunk_ids: Vec<bytes::Bytes> =
        tessera_tests::chunk_ids(&data, 4 << 20).iter().map(|h| hex::decode(h).unwrap().into()).collect();
    rt().block_on(async {
        let leader = MetaClient::new(chan(admin, &c.masters[0].addr, Role::Master))
            .node_status(Empty {})
            .await
            .unwrap()
            .into_inner()
            .leader_addr;
        assert!(!leader.is_empty());
        // Raft has a listener of its own, which admits masters only.
        let leader_raft = MetaClient::new(chan(admin, &leader, Role::Master))
            .node_status(Empty {})
            .await
            .unwrap()
            .into_inner()
            .master
            .unwrap()
            .raft_addr;
        assert!(!leader_raft.is_empty() && leader_raft != leader, "{leader_raft:?}");
        let raft = |s| RaftClient::new(chan(s, &leader_raft, Role::Master));
        let raft_on_service_port = |s| RaftClient::new(chan(s, &leader, Role::Master));
        let adm = |s| AdminClient::new(chan(s, &leader, Role::Master));
        let ctl = |s| ChunkserverControlClient::new(chan(s, &leader, Role::Master));
        let meta = |s| MetaClient::new(chan(s, &leader, Role::Master));
        let chunk = |s, j: usize| ChunkClient::new(chan(s, &c.chunkservers[j].addr, Role::Chunkserver));
        let denied = Code::PermissionDenied;
        let vote = || RaftBlob { data: bytes::Bytes::from_static(b"{}") };
        let drain = |id: &str, state: &str| ChunkserverStateRequest { id: id.into(), state: state.into() };
        let register = |id: &str| RegisterRequest {
            id: id.into(),
            addr: "127.0.0.1:1".into(),
            capacity: 1 << 60,
            zone: String::new(),
        };
        let beat = |id: &str| HeartbeatRequest { id: id.into(), addr: "127.0.0.1:1".into(), ..Default::default() };

        // A client: namespace and data, nothing else.
        assert_eq!(
            code(meta(client).lookup(LookupRequest { parent: 1, name: "f".into(), ..Default::default() })).await,
            Code::Ok
        );
        // Refused at the Raft port's door: the connection is dropped.
        let got = code(raft(client).vote(vote())).await;
        assert!(dropped(got), "{got:?}");
        assert_eq!(code(raft_on_service_port(client).vote(vote())).await, denied);
        let add = AddMasterRequest { id: 9, addr: "127.0.0.1:1".into(), ..Default::default() };
        assert_eq!(code(adm(client).add_master(add)).await, denied);
        assert_eq!(code(adm(client).set_chunkserver_state(drain("cs-1", "draining"))).await, denied);
        assert_eq!(code(ctl(client).register(register("evil"))).await, denied);
        assert_eq!(code(ctl(client).heartbeat(beat("cs-2"))).await, denied);
        for j in 0..3 {
            let del = DeleteChunksRequest { ids: chunk_ids.clone() };
            assert_eq!(code(chunk(client, j).delete_chunks(del)).await, denied);
            let rep = ReplicateRequest { id: chunk_ids[0].clone(), target: c.chunkservers[(j + 1) % 3].addr.clone() };
            assert_eq!(code(chunk(client, j).replicate(rep)).await, denied);
        }
        // An admin: membership and drains too, but never Raft or a
        // chunkserver's voice.
        assert_eq!(code(adm(admin).set_chunkserver_state(drain("cs-3", "draining"))).await, Code::Ok);
        assert_eq!(code(adm(admin).set_chunkserver_state(drain("cs-3", "alive"))).await, Code::Ok);
        assert!(dropped(code(raft(admin).vote(vote())).await));
        assert_eq!(code(ctl(admin).heartbeat(beat("cs-1"))).await, denied);
        // A chunkserver: its own registration and heartbeat only.
        assert_eq!(code(ctl(cs1).heartbeat(beat("cs-2"))).await, denied, "a forged heartbeat");
        assert_eq!(code(ctl(cs1).register(register("cs-9"))).await, denied);
        assert_eq!(
            code(meta(cs1).lookup(LookupRequest { parent: 1, name: "f".into(), ..Default::default() })).await,
            denied
        );
        assert!(dropped(code(raft(cs1).vote(vote())).await));
        assert_eq!(code(chunk(cs1, 1).delete_chunks(DeleteChunksRequest { ids: chunk_ids.clone() })).await, denied);
        // A master passes the door (and then fails on the empty message);
        // the service port does not serve Raft even to a master.
        let got = code(raft(master).vote(vote())).await;
        assert!(!dropped(got) && ![denied, Code::Ok].contains(&got), "{got:?}");
        assert_eq!(code(raft_on_service_port(master).vote(vote())).await, Code::Unimplemented);
    });
    let leader_log = c.masters.iter().map(|m| m.log()).collect::<String>();
    assert!(leader_log.contains("only master certificates are admitted on this port"), "no refusal logged");
    // The CLI with a client certificate: admin verbs refused in one line.
    let client_dir = pki().identity(Role::Client, "someone");
    for args in [&["admin", "master", "add", "9", "127.0.0.1:1"][..], &["admin", "chunkserver", "drain", "cs-1"]] {
        let out = cli(&c, Some(&client_dir), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.trim().lines().count() == 1, "{args:?}: {err}");
        assert!(err.contains("not allowed"), "{args:?}: {err}");
    }
    // Nothing was deleted or drained: every copy is where it was.
    let out = cli(&c, Some(&client_dir), &["get", "/f", work.path().join("back").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(work.path().join("back")).unwrap(), data);
    rt().block_on(async {
        // Asked as a chunkserver (which needs no chunk token).
        let cs1 = as_identity(&pki().identity(Role::Chunkserver, "cs-1"));
        for cs in &c.chunkservers {
            let mut ch = ChunkClient::new(chan(cs1, &cs.addr, Role::Chunkserver));
            let r = ch.has_chunks(HasChunksRequest { ids: chunk_ids.clone() }).await.unwrap().into_inner();
            assert!(r.present.iter().all(|p| *p), "{}: a copy is gone", cs.addr);
        }
    });
    let status = c.ok(&["cluster", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let servers = v["chunkservers"].as_array().unwrap();
    assert!(servers.iter().all(|s| s["state"] == "alive" && s["alive"] == true), "{servers:?}");
    assert!(!servers.iter().any(|s| s["id"] == "evil" || s["id"] == "cs-9"), "{servers:?}");
}

#[test]
fn a_server_without_an_identity_or_with_the_wrong_one_does_not_start() {
    pki();
    let dir = tempfile::tempdir().unwrap();
    let run = |bin: &str, args: &[&str]| {
        let mut cmd = Command::new(bin_dir().join(bin));
        cmd.args(args).env_remove("TESSERA_TLS_DIR").env_remove("TESSERA_INSECURE");
        run_bounded(cmd, Duration::from_secs(30))
    };
    let data = dir.path().join("d").display().to_string();
    let master = ["--id", "1", "--listen", "127.0.0.1:1", "--data-dir", &data];
    let out = run("tessera-master", &master);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no TLS identity"), "{err}");
    let client = pki().identity(Role::Client, "someone").display().to_string();
    let out = run("tessera-master", &[&master[..], &["--tls-dir", &client]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(2) && err.contains("is for role client"), "{err}");
    let cs2 = pki().identity(Role::Chunkserver, "cs-2").display().to_string();
    let cs = ["--id", "cs-1", "--listen", "127.0.0.1:1", "--data-dir", &data, "--tls-dir", &cs2];
    let out = run("tessera-chunkserver", &cs);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(2) && err.contains("certificate is for \"cs-2\""), "{err}");
    let out = run("tessera", &["ls", "/"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.trim().lines().count() == 1 && err.contains("no TLS identity"), "{err}");
}

#[test]
fn an_insecure_cluster_works_only_in_plaintext_and_says_so() {
    let c = Cluster::start_with(Opts { masters: 3, chunkservers: 3, insecure: true, ..Default::default() });
    let work = tempfile::tempdir().unwrap();
    let data = tessera_tests::random_bytes(100_000, 72);
    std::fs::write(work.path().join("f"), &data).unwrap();
    c.ok(&["put", work.path().join("f").to_str().unwrap(), "/f"]);
    c.ok(&["get", "/f", work.path().join("back").to_str().unwrap()]);
    assert_eq!(std::fs::read(work.path().join("back")).unwrap(), data);
    let status = String::from_utf8_lossy(&c.ok(&["cluster", "status"]).stdout).to_string();
    assert_eq!(status.matches("INSECURE").count(), 3, "{status}");
    assert!(c.masters[0].log().contains("INSECURE"), "the server logs it");
    // A TLS client does not talk to it.
    let admin = as_identity(&pki().identity(Role::Admin, "test-admin"));
    rt().block_on(async {
        let got = code(MetaClient::new(chan(admin, &c.masters[0].addr, Role::Master)).node_status(Empty {})).await;
        assert_ne!(got, Code::Ok);
    });
}

/// `tessera up --insecure` from a shell that has a TLS identity exported
/// (and the other way round): `up` gives each server its own flags, the
/// caller's environment does not contradict them.
#[test]
fn tessera_up_ignores_the_callers_security_environment() {
    pki(); // exports TESSERA_TLS_DIR for every child of this test
    let dir = tempfile::tempdir().unwrap();
    let up = tessera_tests::LocalUp::start_with(dir.path(), &["--insecure"]);
    let status = || {
        let mut cmd = Command::new(bin_dir().join("tessera"));
        cmd.args(["--timeout", "5", "cluster", "status"])
            .env("TESSERA_MASTERS", up.masters())
            .env_remove("TESSERA_TLS_DIR")
            .env("TESSERA_INSECURE", "1");
        run_bounded(cmd, Duration::from_secs(30))
    };
    tessera_tests::eventually(Duration::from_secs(60), "the insecure cluster answers", || {
        String::from_utf8_lossy(&status().stdout).matches("INSECURE").count() == 3
    });
}

#[test]
fn a_revoked_certificate_is_refused_by_every_server_even_on_an_open_connection() {
    let c = Cluster::start(3, 3);
    let leaky_dir = pki().identity(Role::Client, "leaky");
    let leaky = as_identity(&leaky_dir);
    let runtime = rt();
    let _in_runtime = runtime.enter();
    // Connections opened, and used, before the revocation.
    let masters: Vec<_> = c.masters.iter().map(|m| MetaClient::new(chan(leaky, &m.addr, Role::Master))).collect();
    let servers: Vec<_> =
        c.chunkservers.iter().map(|s| ChunkClient::new(chan(leaky, &s.addr, Role::Chunkserver))).collect();
    runtime.block_on(async {
        for m in &masters {
            assert_eq!(code(m.clone().node_status(Empty {})).await, Code::Ok);
        }
        for s in &servers {
            assert_eq!(code(s.clone().stats(Empty {})).await, Code::Ok);
        }
    });
    let out = c.ok(&["admin", "revoke", leaky_dir.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("leaky/client"), "{out:?}");
    // Masters load revocations every 500 ms; chunkservers learn them from
    // their next heartbeat (1 s apart).
    runtime.block_on(async {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut refused = 0;
            for m in &masters {
                let st = tokio::time::timeout(Duration::from_secs(5), m.clone().node_status(Empty {})).await;
                refused += usize::from(matches!(st, Ok(Err(ref s)) if s.code() == Code::PermissionDenied));
            }
            for s in &servers {
                let st = tokio::time::timeout(Duration::from_secs(5), s.clone().stats(Empty {})).await;
                refused += usize::from(matches!(st, Ok(Err(ref s)) if s.code() == Code::PermissionDenied));
            }
            if refused == masters.len() + servers.len() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{refused} of 6 servers refuse a revoked certificate");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // A new connection is refused at its handshake.
        let fresh = MetaClient::new(chan(leaky, &c.masters[1].addr, Role::Master)).node_status(Empty {}).await;
        assert!(fresh.is_err());
    });
    // Everyone else is served; the list names it.
    let listed = c.ok(&["admin", "revoked", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(v.as_array().map(|a| a.len()), Some(1), "{v}");
    assert_eq!(v[0]["name"], "leaky/client");
    let out = cli(&c, Some(&leaky_dir), &["--timeout", "5", "ls", "/"]);
    assert!(!out.status.success(), "the revoked CLI was served");
    assert!(c.masters[0].log().contains("revoked"), "the refusal is logged");
}

/// Chunk access tokens: a chunkserver serves a chunk to a client only on a
/// read token the masters granted that client for that chunk, and stores
/// one only on a write token; tokens expire (3 s here) and a client renews
/// them by itself; masters and chunkservers need none, and only masters
/// may delete.
#[test]
fn chunkservers_serve_and_store_chunks_only_on_a_valid_token() {
    use tessera_proto::pb::{
        Cred, GetChunkRequest, GetExtentsRequest, PutChunkFrame, PutChunkHeader, PutSmallChunkRequest,
    };
    use tessera_rpc::chunk_token;
    let opts = Opts {
        masters: 1,
        chunkservers: 3,
        master_args: vec!["--chunk-token-ttl-s".into(), "3".into()],
        ..Default::default()
    };
    let c = Cluster::start_with(opts);
    let work = tempfile::tempdir().unwrap();
    let (fdata, gdata) = (tessera_tests::random_bytes(300_000, 81), tessera_tests::random_bytes(300_000, 82));
    for (name, data) in [("f", &fdata), ("g", &gdata)] {
        std::fs::write(work.path().join(name), data).unwrap();
        c.ok(&["put", work.path().join(name).to_str().unwrap(), &format!("/{name}")]);
    }
    let reader = as_identity(&pki().identity(Role::Client, "reader"));
    let other = as_identity(&pki().identity(Role::Client, "other"));
    let cs2 = as_identity(&pki().identity(Role::Chunkserver, "cs-2"));
    let master = &c.masters[0].addr;
    let cs = &c.chunkservers[0].addr;
    let get = |s, id: &bytes::Bytes, token: &bytes::Bytes| {
        let mut req = tonic::Request::new(GetChunkRequest { id: id.clone() });
        chunk_token::attach(&mut req, token);
        async move {
            let mut c = ChunkClient::new(chan(s, cs, Role::Chunkserver));
            match c.get_chunk(req).await {
                Ok(r) => {
                    let mut s = r.into_inner();
                    match s.message().await {
                        Ok(_) => Code::Ok,
                        Err(e) => e.code(),
                    }
                }
                Err(e) => e.code(),
            }
        }
    };
    // A file's extents, with their read tokens, as `s` gets them.
    let extents = |s, name: &str| {
        let name = name.to_string();
        async move {
            let mut m = MetaClient::new(chan(s, master, Role::Master));
            let cred = Some(Cred { uid: 0, gid: 0, groups: vec![] });
            let look = LookupRequest { parent: 1, name: name.into(), cred: cred.clone() };
            let ino = m.lookup(look).await.unwrap().into_inner().attr.unwrap().ino;
            m.get_extents(GetExtentsRequest { ino, cred }).await.unwrap().into_inner().extents
        }
    };
    let denied = Code::PermissionDenied;
    rt().block_on(async {
        let f = extents(reader, "f").await;
        let g = extents(reader, "g").await;
        let (fid, ftoken) = (f[0].id.clone(), f[0].token.clone());
        assert!(!ftoken.is_empty(), "no read token with the extents");
        assert_eq!(get(reader, &fid, &ftoken).await, Code::Ok);
        assert_eq!(get(reader, &fid, &bytes::Bytes::new()).await, denied, "no token");
        assert_eq!(get(reader, &g[0].id, &ftoken).await, denied, "a token for another chunk");
        assert_eq!(get(other, &fid, &ftoken).await, denied, "another holder's token");
        let mut forged = ftoken.to_vec();
        forged[20] ^= 1;
        assert_eq!(get(reader, &fid, &forged.into()).await, denied, "a forged token");
        // A chunkserver needs none (repair pushes, pipeline forwards).
        assert_eq!(get(cs2, &fid, &bytes::Bytes::new()).await, Code::Ok);

        // Stores: only on a write token from the ring.
        let data = bytes::Bytes::from(tessera_tests::random_bytes(5000, 83));
        let id = bytes::Bytes::copy_from_slice(tessera_proto::ChunkId::of(&data).as_bytes());
        let put = |token: bytes::Bytes| {
            let mut req = tonic::Request::new(PutSmallChunkRequest { id: id.clone(), data: data.clone() });
            chunk_token::attach(&mut req, &token);
            async move { ChunkClient::new(chan(reader, cs, Role::Chunkserver)).put_small_chunk(req).await }
        };
        assert_eq!(put(bytes::Bytes::new()).await.unwrap_err().code(), denied, "a put without a token");
        assert_eq!(put(ftoken.clone()).await.unwrap_err().code(), denied, "a put on a read token");
        let ring = MetaClient::new(chan(reader, master, Role::Master)).get_ring(Empty {}).await.unwrap().into_inner();
        let stored = put(ring.write_token.clone()).await.unwrap().into_inner();
        // The uploader gets a read token for what it sent.
        assert_eq!(get(reader, &id, &stored.read_token).await, Code::Ok);
        // A pipeline forwards only to the cluster's chunkservers, whatever
        // the write token: not to an address the client names.
        let piped = |forward: Vec<String>| {
            let header = PutChunkHeader { id: id.clone(), len: data.len() as u64, forward };
            let frames = vec![PutChunkFrame { header: Some(header), data: data.clone() }];
            let mut req = tonic::Request::new(tokio_stream::iter(frames));
            chunk_token::attach(&mut req, &ring.write_token);
            async move { ChunkClient::new(chan(reader, cs, Role::Chunkserver)).put_chunk(req).await }
        };
        let e = piped(vec!["127.0.0.1:9".to_string()]).await.unwrap_err();
        assert_eq!(e.code(), denied, "{e}");
        assert!(e.message().contains("not a chunkserver of this cluster"), "{e}");
        let peer = c.chunkservers[1].addr.clone();
        assert!(piped(vec![peer]).await.is_ok(), "a forward to a chunkserver of the cluster");
        let del = DeleteChunksRequest { ids: vec![fid.clone()] };
        assert_eq!(code(ChunkClient::new(chan(reader, cs, Role::Chunkserver)).delete_chunks(del)).await, denied);

        // Expiry: 3 s here.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(get(reader, &fid, &ftoken).await, denied, "an expired token");
        assert_eq!(put(ring.write_token.clone()).await.unwrap_err().code(), denied, "an expired write token");
        let fresh = extents(reader, "f").await;
        assert_eq!(get(reader, &fid, &fresh[0].token).await, Code::Ok);
    });
    let refusals = c.chunkservers[0].log();
    assert!(refusals.contains("chunk token expired") && refusals.contains("chunk token missing"), "{refusals}");
    // The library renews expired read tokens by itself: one file read
    // twice, its tokens expired in between.
    let fs = c.client();
    let runtime = rt();
    runtime.block_on(async {
        let ino = fs.lookup(1, "f").await.unwrap().ino;
        let ext = fs.extents(ino).await.unwrap().extents;
        let id = tessera_proto::ChunkId::from_slice(&ext[0].id).unwrap();
        let first = fs.transfer.fetch_chunk(id).await.unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let again = fs.transfer.fetch_chunk(id).await.unwrap();
        assert_eq!(first, again);
    });
    let out = cli(&c, Some(&pki().identity(Role::Client, "reader")), &["cat", "/f"]);
    assert!(out.status.success() && out.stdout == fdata, "{}", String::from_utf8_lossy(&out.stderr));
}
