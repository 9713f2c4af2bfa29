//! Fuzzing of what a request turns into once it passed the proto
//! conversions: sequences of state machine commands with hostile fields
//! (names empty, `.`/`..`, with `/` or NUL, at and past NAME_MAX;
//! timestamps at the ends of i64 and with nanoseconds past a second;
//! extents and sizes near 2^64; lock ranges backwards; unknown kinds,
//! modes, flags and lock types; inode numbers of things that do not
//! exist), from root and from an ordinary user. No command may panic or
//! fail with anything but a file-system error, and afterwards every name
//! leads to an inode, and every directory's parent is a directory.
//! `TESSERA_FUZZ_CASES` scales the run (bench/fuzz.sh).

use super::*;
use crate::values::{Splice, TimeSet};
use proptest::prelude::*;

fn cases() -> u32 {
    let all: u32 = std::env::var("TESSERA_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000);
    (all / 15).max(20)
}

fn ino() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 1u64..12, 1 => any::<u64>()]
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::sample::select(vec!["", ".", "..", "a/b", "a\0b", "\u{fffd}"]).prop_map(|s| s.as_bytes().to_vec()),
        1 => (254usize..258).prop_map(|n| vec![b'n'; n]),
        1 => prop::collection::vec(any::<u8>(), 0..8),
    ]
}

fn time() -> impl Strategy<Value = (i64, u32)> {
    prop_oneof![
        4 => (0i64..2_000_000_000, 0u32..1_000_000_000),
        1 => (prop::sample::select(vec![i64::MIN, -1, i64::MAX]), any::<u32>()),
    ]
}

fn time_set() -> impl Strategy<Value = Option<TimeSet>> {
    prop_oneof![Just(None), Just(Some(TimeSet::Now)), time().prop_map(|t| Some(TimeSet::At(t)))]
}

fn big() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..300_000, 1 => prop::sample::select(vec![u64::MAX, u64::MAX - 1, 1 << 63, i64::MAX as u64])]
}

fn extent() -> impl Strategy<Value = ExtentRec> {
    (prop::sample::select(vec![0usize, 32, 31, 33]), 0u8..3, big(), big())
        .prop_map(|(n, fill, offset, len)| ExtentRec { id: vec![fill; n], offset, len })
}

fn xattr_name() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec!["user.k", "trusted.t", "security.s", "system.posix_acl_access", "user.", "nope", ""])
        .prop_map(|s| s.as_bytes().to_vec())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (ino(), name(), any::<u32>()).prop_map(|(parent, name, mode)| Op::Mkdir { parent, name, mode }),
        (ino(), name(), any::<u32>(), -1i32..5, any::<bool>(), any::<bool>()).prop_map(
            |(parent, name, mode, kind, exclusive, truncate)| Op::Create {
                parent,
                name,
                mode,
                kind,
                rdev: 0,
                exclusive,
                truncate
            }
        ),
        (ino(), name(), prop::collection::vec(any::<u8>(), 0..6)).prop_map(|(parent, name, target)| Op::Symlink {
            parent,
            name,
            target
        }),
        (ino(), ino(), name()).prop_map(|(ino, new_parent, new_name)| Op::Link { ino, new_parent, new_name }),
        (ino(), name(), prop::collection::vec(ino(), 0..2)).prop_map(|(parent, name, open)| Op::Unlink {
            parent,
            name,
            open
        }),
        (ino(), name()).prop_map(|(parent, name)| Op::Rmdir { parent, name }),
        (ino(), name(), ino(), name(), 0u32..8, prop::collection::vec(ino(), 0..2)).prop_map(
            |(parent, name, new_parent, new_name, flags, open)| Op::Rename {
                parent,
                name,
                new_parent,
                new_name,
                flags,
                open
            }
        ),
        (
            ino(),
            prop::option::of(any::<u32>()),
            prop::option::of(0u32..3),
            prop::option::of(big()),
            time_set(),
            time_set()
        )
            .prop_map(|(ino, mode, uid, size, atime, mtime)| Op::SetAttr {
                ino,
                mode,
                uid,
                gid: uid,
                size,
                atime,
                mtime,
                by_handle: false
            }),
        (ino(), prop::collection::vec(extent(), 0..4), big(), prop::option::of(time())).prop_map(
            |(ino, extents, size, mtime)| Op::Commit {
                ino,
                extents,
                size,
                gc_epoch: 0,
                mtime,
                splice: None,
                create: None,
                unsealed: false,
                attrs: None
            }
        ),
        (
            ino(),
            big(),
            prop::collection::vec((big(), prop::collection::vec(extent(), 0..3)), 0..3),
            big(),
            any::<bool>()
        )
            .prop_map(|(ino, keep, patches, size, unsealed)| Op::Commit {
                ino,
                extents: Vec::new(),
                size,
                gc_epoch: 0,
                mtime: None,
                splice: Some(Splice { keep, patches }),
                create: None,
                unsealed,
                attrs: None
            }),
        (ino(), xattr_name(), prop::collection::vec(any::<u8>(), 0..4), 0u32..4)
            .prop_map(|(ino, name, value, flags)| Op::SetXattr { ino, name, value, flags }),
        (ino(), xattr_name()).prop_map(|(ino, name)| Op::RemoveXattr { ino, name }),
        (ino(), big(), big(), -2i32..4, any::<bool>()).prop_map(|(ino, start, end, typ, flock)| {
            let owner = "s1:o".to_string();
            if flock {
                Op::SetFlock { ino, owner, pid: 1, start, end, typ, lease_ms: 1000 }
            } else {
                Op::SetLock { ino, owner, pid: 1, start, end, typ, lease_ms: 1000 }
            }
        }),
        ino().prop_map(|ino| Op::ReleaseLocks { ino, owner: "s1:o".into() }),
        prop::collection::vec(ino(), 0..3).prop_map(|inos| Op::ReleaseOrphans { inos }),
        prop::collection::vec(ino(), 0..3).prop_map(|inos| Op::TouchAtimes { inos }),
        (0u32..5).prop_map(|count| Op::LeaseInos { count }),
        (prop::sample::select(vec!["0a", "", "AB", "zz", "0123456789abcdef0123456789abcdef0123456789"]), name())
            .prop_map(|(serial, name)| Op::RevokeCert {
                serial: serial.to_string(),
                name: String::from_utf8_lossy(&name).into_owned()
            }),
        (time(), any::<bool>()).prop_map(|(older_than, orphans)| Op::CollectGarbage {
            ids: vec![vec![1; 32], vec![2; 32]],
            older_than,
            orphans
        }),
    ]
}

/// Names lead to inodes; directories' parents are directories.
fn check_links(ns: &Ns) -> Result<(), String> {
    let sm = super::super::cf(&ns.db, super::super::CF_SM).map_err(|e| e.to_string())?;
    for item in ns.db.prefix_iterator_cf(sm, [key::DENTRY]) {
        let (k, v) = item.map_err(|e| e.to_string())?;
        if k.first() != Some(&key::DENTRY) {
            break;
        }
        let d: Dentry = decode(&v).map_err(|e| e.to_string())?;
        let parent = u64::from_be_bytes(k[1..9].try_into().map_err(|_| "short dentry key")?);
        let i = read::inode(&ns.db, d.ino).map_err(|e| format!("name {:?} in {parent}: {e}", &k[9..]))?;
        if i.is_dir() {
            let p = read::inode(&ns.db, i.parent).map_err(|e| format!("parent of dir {}: {e}", i.ino))?;
            if !p.is_dir() {
                return Err(format!("dir {}'s parent {} is not a directory", i.ino, p.ino));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn hostile_commands_never_panic_or_break_the_namespace(
        ops in prop::collection::vec((op(), any::<bool>()), 1..40),
    ) {
        let mut ns = Ns::new();
        for (op, as_root) in ops {
            let cred = if as_root { ROOT } else { user(1000) };
            let _ = ns.run(&cred, op);
        }
        if let Err(e) = check_links(&ns) {
            prop_assert!(false, "{}", e);
        }
    }
}
