//! Exactly-once writes: the result of every command that carries a client
//! request id is remembered, so a retry (after a timeout or a leader change)
//! gets the first answer instead of creating, renaming or deleting twice.
//! The memory is bounded: results older than `WINDOW` log entries are
//! dropped, a few per applied entry, identically on every replica.

use super::model::key;
use super::Txn;
use crate::types::CommandResult;
use std::io;

/// Log entries a request id is remembered for.
pub const WINDOW: u64 = 200_000;
const PRUNE_PER_APPLY: usize = 4;

fn result_key(rid: &str) -> Vec<u8> {
    key::bytes(key::REQUEST, rid.as_bytes())
}

fn order_key(index: u64, rid: &str) -> Vec<u8> {
    let mut k = key::ino(key::REQUEST_ORDER, index);
    k.extend_from_slice(rid.as_bytes());
    k
}

pub fn lookup(txn: &Txn, rid: &str) -> io::Result<Option<CommandResult>> {
    if rid.is_empty() {
        return Ok(None);
    }
    txn.get(&result_key(rid))
}

pub fn remember(txn: &mut Txn, rid: &str, index: u64, result: &CommandResult) -> io::Result<()> {
    if rid.is_empty() {
        return Ok(());
    }
    txn.put(result_key(rid), result);
    txn.put_raw(order_key(index, rid), Vec::new());
    // Forget the oldest ids that fell out of the window.
    let cutoff = index.saturating_sub(WINDOW);
    for k in txn.keys_with_prefix(&[key::REQUEST_ORDER], PRUNE_PER_APPLY)? {
        let at = u64::from_be_bytes(k.get(1..9).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]));
        if at >= cutoff {
            break;
        }
        txn.delete(result_key(std::str::from_utf8(&k[9..]).unwrap_or_default()));
        txn.delete(k);
    }
    Ok(())
}
