//! Lock delegation: a file's locks handed to one mount, refused to others
//! while it keeps them, written back when it returns them, and gone with
//! its lease.

use super::*;
use crate::fsm::locks::{Held, F_RDLCK, F_WRLCK};

fn lock(owner: &str, typ: i32, lease_ms: u64) -> Op {
    Op::SetLock { ino: 10, owner: owner.into(), pid: 1, start: 0, end: 9, typ, lease_ms }
}

fn delegate(session: &str, lease_ms: u64) -> Op {
    Op::DelegateLocks { ino: 10, session: session.into(), lease_ms }
}

fn held(owner: &str, start: u64, end: u64, write: bool) -> Held {
    Held { owner: owner.into(), pid: 7, start, end, write }
}

#[test]
fn delegated_locks_refuse_other_sessions_until_returned_then_apply_as_returned() {
    let mut ns = Ns::new();
    assert!(matches!(ns.run(&ROOT, lock("m1:1", F_RDLCK, 60_000)), Ok(Reply::Lock(None))));
    // Its own lock comes with the hand-over.
    match ns.run(&ROOT, delegate("m1", 60_000)) {
        Ok(Reply::Delegated(Some((posix, flock)))) => {
            assert_eq!(posix, vec![Held { owner: "m1:1".into(), pid: 1, start: 0, end: 9, write: false }]);
            assert!(flock.is_empty());
        }
        r => panic!("{r:?}"),
    }
    // Another session's lock command is not applied: the holder is named.
    assert!(matches!(ns.run(&ROOT, lock("m2:1", F_RDLCK, 60_000)), Ok(Reply::LockDelegated(s)) if s == "m1"));
    assert!(matches!(ns.run(&ROOT, delegate("m2", 60_000)), Ok(Reply::Delegated(None))));
    // The holder's own commands still apply.
    assert!(matches!(ns.run(&ROOT, lock("m1:2", F_RDLCK, 60_000)), Ok(Reply::Lock(None))));
    // It gives them back as it kept them: a write lock of m1:1 on 0-4.
    let kept = (vec![held("m1:1", 0, 4, true)], vec![]);
    ns.run(&ROOT, Op::ReturnLocks { ino: 10, session: "m1".into(), locks: Some(kept), lease_ms: 60_000 }).unwrap();
    assert!(matches!(ns.run(&ROOT, lock("m2:1", F_RDLCK, 60_000)), Ok(Reply::Lock(Some(h))) if h.owner == "m1:1"));
    // m1:2's read lock went with the return; 5-9 is free.
    let free = Op::SetLock { ino: 10, owner: "m2:1".into(), pid: 1, start: 5, end: 9, typ: F_WRLCK, lease_ms: 60_000 };
    assert!(matches!(ns.run(&ROOT, free), Ok(Reply::Lock(None))));
    // Now two sessions hold locks there: no one may have them.
    assert!(matches!(ns.run(&ROOT, delegate("m1", 60_000)), Ok(Reply::Delegated(None))));
    // A second return finds nothing delegated: refused if it carries locks.
    let again = Op::ReturnLocks { ino: 10, session: "m1".into(), locks: Some((vec![], vec![])), lease_ms: 60_000 };
    assert_eq!(ns.run(&ROOT, again).unwrap_err().errno, libc::ESTALE);
    let keep = Op::ReturnLocks { ino: 10, session: "m1".into(), locks: None, lease_ms: 60_000 };
    assert!(ns.run(&ROOT, keep).is_ok());
}

#[test]
fn a_delegation_ends_with_its_sessions_lease_even_without_locks() {
    let mut ns = Ns::new();
    ns.run(&ROOT, lock("m1:1", F_WRLCK, 2_000)).unwrap();
    assert!(matches!(ns.run(&ROOT, delegate("m1", 2_000)), Ok(Reply::Delegated(Some(_)))));
    // The mount dropped its lock here (the masters' table still has it),
    // then died: its lease runs out.
    for _ in 0..3 {
        ns.run(&ROOT, Op::RenewSession { session: "other".into(), lease_ms: 1_000 }).ok();
    }
    ns.run(&ROOT, Op::ExpireSessions { sessions: vec!["m1".into()] }).unwrap();
    assert!(matches!(ns.run(&ROOT, lock("m2:1", F_WRLCK, 60_000)), Ok(Reply::Lock(None))));
    // A late return from the dead session is refused.
    let late = Op::ReturnLocks { ino: 10, session: "m1".into(), locks: Some((vec![], vec![])), lease_ms: 60_000 };
    assert_eq!(ns.run(&ROOT, late).unwrap_err().errno, libc::ESTALE);
}

#[test]
fn a_delegated_file_stays_on_its_sessions_list_after_its_last_lock_in_the_table_goes() {
    let mut ns = Ns::new();
    ns.run(&ROOT, lock("m1:1", F_WRLCK, 2_000)).unwrap();
    ns.run(&ROOT, delegate("m1", 2_000)).unwrap();
    // The mount's own unlock reaching the masters' table (a command sent
    // before the hand-over was known) must not drop the file from the
    // session: expiry would then miss the delegation.
    ns.run(&ROOT, lock("m1:1", libc::F_UNLCK, 2_000)).unwrap();
    for _ in 0..3 {
        ns.run(&ROOT, Op::RenewSession { session: "other".into(), lease_ms: 1_000 }).ok();
    }
    ns.run(&ROOT, Op::ExpireSessions { sessions: vec!["m1".into()] }).unwrap();
    assert!(matches!(ns.run(&ROOT, lock("m2:1", F_WRLCK, 60_000)), Ok(Reply::Lock(None))));
}
