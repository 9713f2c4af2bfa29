//! The lock RPCs (fsm/locks.rs keeps the tables): a request on a file whose
//! locks another mount keeps (delegated) first has them recalled, and a
//! grant may hand the file's locks to the asking mount when it is the only
//! one using them and has a lease stream to this leader (to hear a recall).

use crate::error::MasterError;
use crate::fsm::locks::{session_of, Held, F_RDLCK, F_UNLCK, F_WRLCK};
use crate::fsm::read;
use crate::meta_service::{ok, MetaService, Res};
use crate::types::{Cred, Op, Reply};
use tessera_proto::pb::{Empty, HeldLock, LockReply, LockRequest, ReturnLocksRequest};

/// Recalls one request may cause before it reports the locks as held.
const RECALLS: usize = 3;
/// Locks of one kind one mount may give back at once.
const MAX_RETURNED: usize = 10_000;
/// Longest lock owner or session name.
const MAX_OWNER: usize = 256;

fn conflict_reply(h: &Held) -> LockReply {
    let typ = if h.write { F_WRLCK } else { F_RDLCK };
    LockReply { granted: false, typ, start: h.start, end: h.end, pid: h.pid, ..Default::default() }
}

/// The answer when the mount keeping a file's locks did not give them
/// back: some lock there may conflict (which one is not known here).
fn held_elsewhere() -> LockReply {
    LockReply { granted: false, typ: F_WRLCK, start: 0, end: u64::MAX, pid: 0, ..Default::default() }
}

fn held_locks(list: &[Held]) -> Vec<HeldLock> {
    list.iter().map(HeldLock::from).collect()
}

impl MetaService {
    pub(crate) async fn set_lock_rpc(&self, r: LockRequest) -> Res<LockReply> {
        if r.start > r.end || ![F_RDLCK, F_WRLCK, F_UNLCK].contains(&r.typ) {
            return Err(MasterError::fs(libc::EINVAL, "bad lock range or type").into());
        }
        if r.owner.len() > MAX_OWNER {
            return Err(MasterError::fs(libc::EINVAL, "lock owner too long").into());
        }
        let lease_ms = self.lock_lease.as_millis() as u64;
        let (ino, owner, pid, start, end, typ) = (r.ino, r.owner.clone(), r.pid, r.start, r.end, r.typ);
        let op = match r.flock {
            true => Op::SetFlock { ino, owner, pid, start, end, typ, lease_ms },
            false => Op::SetLock { ino, owner, pid, start, end, typ, lease_ms },
        };
        for _ in 0..RECALLS {
            match self.write(Cred::root(), op.clone()).await? {
                Reply::Lock(None) => return ok(self.granted(&r, lease_ms).await),
                Reply::Lock(Some(h)) => return ok(conflict_reply(&h)),
                Reply::LockDelegated(holder) => {
                    if !self.leases.recall_locks(&holder, ino).await {
                        return ok(held_elsewhere());
                    }
                }
                _ => return Err(MasterError::internal("lock command returned no verdict").into()),
            }
        }
        ok(held_elsewhere())
    }

    /// The reply to a granted lock, handing the file's locks to the mount
    /// when it asked and may have them.
    async fn granted(&self, r: &LockRequest, lease_ms: u64) -> LockReply {
        let mut reply =
            LockReply { granted: true, typ: r.typ, start: r.start, end: r.end, pid: r.pid, ..Default::default() };
        let session = session_of(&r.owner);
        if !r.delegate || r.typ == F_UNLCK || !self.leases.may_delegate_locks(r.ino) || !self.leases.streaming(session)
        {
            return reply;
        }
        // Predicted from this leader's state (the command checks again):
        // a refused hand-over would cost every lock call a second commit.
        let other = |h: &Held| session_of(&h.owner) != session;
        let table = |t| read::locks(&self.db, t, r.ino).map(|l| l.iter().any(other)).unwrap_or(true);
        let held_by_another = read::lock_delegation(&self.db, r.ino).map_or(true, |d| d.is_some_and(|d| d != session));
        if held_by_another || table(crate::fsm::model::key::LOCK) || table(crate::fsm::model::key::FLOCK) {
            return reply;
        }
        let op = Op::DelegateLocks { ino: r.ino, session: session.to_string(), lease_ms };
        // Not delegated when this fails: the lock itself is granted.
        if let Ok(Reply::Delegated(Some((posix, flock)))) = self.write(Cred::root(), op).await {
            reply.delegated = true;
            reply.posix = held_locks(&posix);
            reply.flock = held_locks(&flock);
        }
        reply
    }

    pub(crate) async fn get_lock_rpc(&self, r: LockRequest) -> Res<LockReply> {
        let table = if r.flock { crate::fsm::model::key::FLOCK } else { crate::fsm::model::key::LOCK };
        for _ in 0..RECALLS {
            match read::lock_delegation(&self.db, r.ino)? {
                Some(holder) if holder != session_of(&r.owner) => {
                    if !self.leases.recall_locks(&holder, r.ino).await {
                        return ok(held_elsewhere());
                    }
                }
                _ => {
                    let held = read::locks(&self.db, table, r.ino)?;
                    return match crate::fsm::locks::conflict(&held, &r.owner, r.start, r.end, r.typ == F_WRLCK) {
                        None => ok(LockReply {
                            granted: true,
                            typ: F_UNLCK,
                            start: r.start,
                            end: r.end,
                            ..Default::default()
                        }),
                        Some(h) => ok(conflict_reply(h)),
                    };
                }
            }
        }
        ok(held_elsewhere())
    }

    pub(crate) async fn return_locks_rpc(&self, r: ReturnLocksRequest) -> Res<Empty> {
        if r.session.is_empty() || r.session.len() > MAX_OWNER {
            return Err(MasterError::fs(libc::EINVAL, "bad lock session").into());
        }
        if r.posix.len() > MAX_RETURNED || r.flock.len() > MAX_RETURNED {
            return Err(MasterError::fs(libc::E2BIG, "too many locks returned at once").into());
        }
        let mine = |h: &HeldLock| h.owner.len() <= MAX_OWNER && session_of(&h.owner) == r.session && h.start <= h.end;
        if !r.posix.iter().chain(&r.flock).all(mine) {
            return Err(MasterError::fs(libc::EINVAL, "a returned lock is not the session's").into());
        }
        let locks =
            (!r.keep).then(|| (r.posix.iter().map(Held::from).collect(), r.flock.iter().map(Held::from).collect()));
        let lease_ms = self.lock_lease.as_millis() as u64;
        self.write(Cred::root(), Op::ReturnLocks { ino: r.ino, session: r.session, locks, lease_ms }).await?;
        ok(Empty {})
    }
}
