//! The certificates the cluster revoked, by serial: the masters load them
//! from their replicated state, chunkservers from each heartbeat's reply.
//! `listen` refuses a revoked peer's handshake, `authz` every call of one
//! on a connection it already had.

use crate::certs::Identity;
use std::collections::HashSet;
use std::sync::Arc;

/// Serials of the certificates the cluster revoked: the masters load them
/// from their replicated state, chunkservers from each heartbeat's reply.
static REVOKED: parking_lot::RwLock<Option<Arc<HashSet<String>>>> = parking_lot::RwLock::new(None);

/// Replaces the set of revoked certificate serials (lowercase hex).
pub fn set(serials: HashSet<String>) {
    let mut cur = REVOKED.write();
    if cur.as_deref() != Some(&serials) {
        if !serials.is_empty() {
            tracing::info!(count = serials.len(), "revoked certificates updated");
        }
        *cur = Some(Arc::new(serials));
    }
}

/// Why `id` may not be served at all (its certificate is revoked).
pub fn refused(id: &Identity) -> Option<String> {
    let revoked = REVOKED.read().as_ref().is_some_and(|r| r.contains(&id.serial));
    revoked.then(|| format!("the certificate of {} (serial {}) is revoked", id.name, id.serial))
}

/// The revoked serials this process holds (a master sends them to the
/// chunkservers in each heartbeat reply).
pub fn serials() -> Vec<String> {
    REVOKED.read().as_ref().map(|r| r.iter().cloned().collect()).unwrap_or_default()
}
