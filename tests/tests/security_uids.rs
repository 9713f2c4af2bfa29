//! Who a request acts as: the uid/gid/groups a client sends are believed
//! only as far as its certificate's uid map allows (root squashed, a fixed
//! uid, a uid range), through a mount, the CLI and a raw gRPC call alike;
//! and the masters check the caller on reads of content and on commits.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tessera_proto::pb::{meta_client::MetaClient, Cred, Empty, GetExtentsRequest, LookupRequest};
use tessera_rpc::tls::{Security, Tls};
use tessera_rpc::uid_map::UidMap;
use tessera_tests::{bin_dir, pki, run_bounded, sh, sh_as, Cluster, Role};
use tonic::Code;

fn as_identity(dir: &std::path::Path) -> &'static Security {
    Box::leak(Box::new(Security::Tls(Arc::new(Tls::load(dir).unwrap()))))
}

fn errno<T>(r: std::io::Result<T>) -> i32 {
    r.err().and_then(|e| e.raw_os_error()).unwrap_or(0)
}

/// `tessera ARGS` with the identity in `tls_dir`.
fn cli(c: &Cluster, tls_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(bin_dir().join("tessera"));
    cmd.args(args).env("TESSERA_MASTERS", c.masters_arg()).env("TESSERA_LOG", "warn").env("TESSERA_TLS_DIR", tls_dir);
    run_bounded(cmd, Duration::from_secs(60))
}

#[test]
fn a_squashed_root_cannot_read_another_users_private_file() {
    let c = Cluster::start(3, 3);
    let host = c.mount(&[]);
    let h = host.path();
    let data = tessera_tests::random_bytes(300_000, 83);
    std::fs::write(h.join("secret"), &data).unwrap();
    std::os::unix::fs::chown(h.join("secret"), Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(h.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(h.join("public"), b"for everyone").unwrap();
    let (ok, out) = sh(h, "python3 -c \"import os; os.setxattr('public', 'trusted.t', b'root only')\"");
    assert!(ok, "root on a trusted host sets trusted.*: {out}");
    std::fs::File::open(h.join("secret")).unwrap().sync_all().unwrap();

    let squashed = pki().mapped_identity(Role::Client, "squashed-host", UidMap::SquashRoot);
    let sq = c.mount(&["--tls-dir", squashed.to_str().unwrap()]);
    let s = sq.path();
    // Root on the squashed host acts as nobody: the kernel lets root open
    // anything, the masters do not.
    assert_eq!(errno(std::fs::read(s.join("secret"))), libc::EACCES, "{}", sq.log());
    assert_eq!(std::fs::read(s.join("public")).unwrap(), b"for everyone");
    let (ok, out) = sh(s, "python3 -c \"import os; os.setxattr('public', 'trusted.u', b'x')\"");
    assert!(!ok && out.contains("PermissionError"), "a squashed root set trusted.*: {out}");
    let (ok, out) = sh(s, "python3 -c \"import os; print(os.listxattr('public'))\"");
    assert!(ok && !out.contains("trusted.t"), "a squashed root listed trusted.*: {out}");
    // Not even while its owner holds it open on the same mount (the mount
    // shares one open file between processes).
    let held = {
        let s = s.to_path_buf();
        std::thread::spawn(move || sh_as(1000, &s, "exec 3<secret; sleep 3"))
    };
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert_eq!(errno(std::fs::read(s.join("secret"))), libc::EACCES, "read through the owner's open file");
    assert!(held.join().unwrap().0);
    // Its other users are themselves: uid 1000 reads its own file, byte for byte.
    let (ok, theirs) = sh_as(1000, s, "cksum < secret");
    let (_, ours) = sh(h, "cksum < secret");
    assert!(ok && theirs == ours, "uid 1000 through the squashed mount: {theirs} vs {ours}");
    // A squashed root writes as nobody: not into root's 0755 directory
    // (refused at once, not lost later), and as nobody into a 0777 one.
    assert_eq!(errno(std::fs::write(s.join("by-squashed-root"), b"x")), libc::EACCES);
    std::fs::create_dir(h.join("pub")).unwrap();
    std::fs::set_permissions(h.join("pub"), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(s.join("pub/by-squashed-root"), b"x").unwrap();
    std::fs::File::open(s.join("pub/by-squashed-root")).unwrap().sync_all().unwrap();
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(h.join("pub/by-squashed-root")).unwrap();
    assert_eq!((md.uid(), md.gid()), (tessera_rpc::uid_map::NOBODY, tessera_rpc::uid_map::NOBODY));

    // The CLI with that certificate (it asks as root, the caller's euid).
    let work = tempfile::tempdir().unwrap();
    let out = cli(&c, &squashed, &["get", "/secret", work.path().join("s").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.to_lowercase().contains("permission denied"), "{err}");
    assert!(!work.path().join("s").exists() || std::fs::read(work.path().join("s")).unwrap().is_empty());

    // Raw gRPC, forging credentials: each certificate's map holds.
    let fixed = pki().mapped_identity(Role::Client, "batch", UidMap::Fixed { uid: 2000, gid: 2000 });
    let range = pki().mapped_identity(Role::Client, "lab", UidMap::Range { lo: 1000, hi: 1999 });
    let forged = |uid| Some(Cred { uid, gid: uid, groups: vec![0, 1000] });
    let (squashed, fixed, range) = (as_identity(&squashed), as_identity(&fixed), as_identity(&range));
    let admin = as_identity(&pki().identity(Role::Admin, "test-admin"));
    let first = c.masters[0].addr.clone();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let leader = |sec: &'static Security| {
            let first = first.clone();
            async move {
                let ch = tessera_rpc::pool::channel_as(sec, &first, Role::Master).unwrap();
                let st = MetaClient::new(ch).node_status(Empty {}).await.unwrap().into_inner();
                MetaClient::new(tessera_rpc::pool::channel_as(sec, &st.leader_addr, Role::Master).unwrap())
            }
        };
        let ino = {
            let mut m = leader(squashed).await;
            let r = m.lookup(LookupRequest { parent: 1, name: "secret".into(), cred: forged(0) }).await;
            r.unwrap().into_inner().attr.unwrap().ino
        };
        let extents = |sec: &'static Security, uid| {
            let m = leader(sec);
            async move {
                let call = async move { m.await.get_extents(GetExtentsRequest { ino, cred: forged(uid) }).await };
                match tokio::time::timeout(Duration::from_secs(10), call).await.expect("GetExtents answered in 10 s") {
                    Ok(r) => Ok(r.into_inner().extents.len()),
                    Err(st) => Err(st.code()),
                }
            }
        };
        assert_eq!(extents(squashed, 0).await, Err(Code::PermissionDenied), "squashed root forged");
        assert!(extents(squashed, 1000).await.is_ok(), "squash-root believes uid 1000");
        assert_eq!(extents(fixed, 1000).await, Err(Code::PermissionDenied), "fixed uid 2000 claimed 1000");
        assert_eq!(extents(fixed, 0).await, Err(Code::PermissionDenied), "fixed uid 2000 claimed root");
        assert!(extents(range, 1000).await.is_ok(), "uid 1000 is in the range");
        assert_eq!(extents(range, 0).await, Err(Code::PermissionDenied), "root is outside the range");
        assert_eq!(extents(range, 1001).await, Err(Code::PermissionDenied), "uid 1001 is not the owner");
        assert!(extents(admin, 0).await.is_ok(), "an unmapped admin certificate is believed");
    });
    drop(sq);
    drop(host);
}
