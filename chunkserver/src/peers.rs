//! The chunkservers of this cluster, as the masters listed them in the
//! last heartbeat reply. A pipeline forward goes only to one of them: the
//! address list in a put's header comes from the caller, and without this
//! check a client could have a chunkserver open connections to any address
//! it names (the certificate check on the far side stops the bytes, not
//! the connection attempts). Drained servers hold nothing the ring needs
//! and are not listed.

use parking_lot::RwLock;
use std::collections::HashSet;
use std::sync::Arc;
use tessera_proto::REPLICATION;

#[derive(Clone, Default)]
pub struct Peers(Arc<RwLock<Option<HashSet<String>>>>);

impl Peers {
    /// The masters' list, from a heartbeat reply.
    pub fn set(&self, addrs: Vec<String>) {
        *self.0.write() = Some(addrs.into_iter().collect());
    }

    /// Why a put may not be forwarded along `forward`, if it may not.
    pub fn refusal(&self, forward: &[String]) -> Option<String> {
        if forward.is_empty() {
            return None;
        }
        if forward.len() >= REPLICATION {
            return Some(format!("a pipeline of {} more servers (at most {})", forward.len(), REPLICATION - 1));
        }
        let g = self.0.read();
        let Some(known) = g.as_ref() else {
            return Some("this server has not heard the cluster's chunkservers from a master yet".into());
        };
        forward
            .iter()
            .find(|a| !known.contains(a.as_str()))
            .map(|a| format!("a pipeline forward to {a}, which is not a chunkserver of this cluster"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_go_only_to_listed_servers_and_not_too_far() {
        let p = Peers::default();
        let fwd = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(p.refusal(&[]), None, "no forward at all");
        assert!(p.refusal(&fwd(&["127.0.0.1:1"])).is_some_and(|m| m.contains("not heard")));
        p.set(fwd(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]));
        assert_eq!(p.refusal(&fwd(&["127.0.0.1:2", "127.0.0.1:3"])), None);
        assert!(p.refusal(&fwd(&["127.0.0.1:2", "10.0.0.9:22"])).is_some_and(|m| m.contains("10.0.0.9:22")));
        assert!(p.refusal(&fwd(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"])).is_some());
    }
}
