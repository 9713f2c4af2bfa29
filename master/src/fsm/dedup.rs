//! Exactly-once writes: the result of every command that carries a client
//! request id is remembered, so a retry (after a timeout or a leader change)
//! gets the first answer instead of creating, renaming or deleting twice.
//! The memory is bounded: results older than `WINDOW` log entries are
//! dropped, identically on every replica: applying entry i forgets the id
//! remembered at entry i - WINDOW by point lookups (a scan from the start
//! of the queue would wade through the tombstones of every id already
//! forgotten, slower with every entry).

use super::model::key;
use super::Txn;
use crate::types::CommandResult;
use std::io;

/// Log entries a request id is remembered for.
pub const WINDOW: u64 = 200_000;

fn result_key(rid: &str) -> Vec<u8> {
    key::bytes(key::REQUEST, rid.as_bytes())
}

/// The request id remembered at log index `index`, if any.
fn order_key(index: u64) -> Vec<u8> {
    key::ino(key::REQUEST_ORDER, index)
}

pub fn lookup(txn: &Txn, rid: &str) -> io::Result<Option<CommandResult>> {
    if rid.is_empty() {
        return Ok(None);
    }
    txn.get(&result_key(rid))
}

pub fn remember(txn: &mut Txn, rid: &str, index: u64, result: &CommandResult) {
    if rid.is_empty() {
        return;
    }
    txn.put(result_key(rid), result);
    txn.put(order_key(index), &rid.to_string());
}

/// Forgets the id remembered WINDOW entries before `index`; called for
/// every applied entry, so each remembered id is forgotten exactly once.
pub fn forget_expired(txn: &mut Txn, index: u64) -> io::Result<()> {
    forget_older_than(txn, index, WINDOW)
}

fn forget_older_than(txn: &mut Txn, index: u64, window: u64) -> io::Result<()> {
    if let Some(old) = index.checked_sub(window) {
        if let Some(old_rid) = txn.get::<String>(&order_key(old))? {
            txn.delete(result_key(&old_rid));
            txn.delete(order_key(old));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::{cf, CF_SM};
    use crate::types::Reply;

    #[test]
    fn ids_are_remembered_for_the_window_then_forgotten() {
        let t = tempfile::tempdir().unwrap();
        let db = crate::store::open_db(t.path()).unwrap();
        let window = 50;
        for index in 1..=500u64 {
            let mut txn = Txn::new(&db);
            // Every third entry carries no request id (like a membership change).
            let rid = if index % 3 == 0 { String::new() } else { format!("rid-{index}") };
            remember(&mut txn, &rid, index, &Ok(Reply::None));
            forget_older_than(&mut txn, index, window).unwrap();
            let mut batch = rocksdb::WriteBatch::default();
            txn.into_batch(&mut batch).unwrap();
            db.write(batch).unwrap();
        }
        let txn = Txn::new(&db);
        assert!(lookup(&txn, "rid-499").unwrap().is_some(), "a recent id was forgotten");
        assert!(lookup(&txn, "rid-451").unwrap().is_some(), "an id inside the window was forgotten");
        assert!(lookup(&txn, "rid-449").unwrap().is_none(), "an id outside the window is still remembered");
        let sm = cf(&db, CF_SM).unwrap();
        let kept = db.iterator_cf(sm, rocksdb::IteratorMode::Start).count();
        // Two keys per remembered id, at most `window` ids.
        assert!(kept <= 2 * window as usize, "{kept} keys kept");
    }
}
