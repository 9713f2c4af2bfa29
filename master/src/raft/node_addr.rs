//! A master's two addresses, as one membership entry holds them.
//!
//! Clients, chunkservers and operators reach a master at its service
//! address; its peers send Raft messages to its Raft address, a listener of
//! its own that admits master certificates only. The membership is stored
//! in the Raft log and snapshots as openraft's `BasicNode { addr }`, so the
//! pair is written into that one string as `SERVICE/RAFT` (no address has a
//! `/`). An entry without `/`, as every membership written before the Raft
//! listener existed, is a master that serves Raft on its service address.

/// Where to reach one master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAddr {
    /// The metadata, operators' and chunkservers' services.
    pub service: String,
    /// Raft; None: on the service address (a master without `--raft-listen`).
    pub raft: Option<String>,
}

impl NodeAddr {
    pub fn parse(s: &str) -> NodeAddr {
        match s.split_once('/') {
            Some((service, raft)) => NodeAddr { service: service.to_string(), raft: Some(raft.to_string()) },
            None => NodeAddr { service: s.to_string(), raft: None },
        }
    }

    /// From an operator's request: each address bounded and without `/`.
    pub fn checked(service: &str, raft: &str) -> Result<NodeAddr, String> {
        for a in [service, raft] {
            if a.len() > 255 || a.contains('/') || a.chars().any(char::is_whitespace) {
                return Err(format!("{a:?} is not a host:port address"));
            }
        }
        if service.is_empty() {
            return Err("a master needs its service address".into());
        }
        Ok(NodeAddr { service: service.to_string(), raft: (!raft.is_empty()).then(|| raft.to_string()) })
    }

    /// The address Raft messages go to.
    pub fn raft_target(&self) -> &str {
        self.raft.as_deref().unwrap_or(&self.service)
    }

    /// The membership entry's string.
    pub fn encode(&self) -> String {
        match &self.raft {
            Some(r) => format!("{}/{r}", self.service),
            None => self.service.clone(),
        }
    }
}

/// The service address of a membership entry (what clients are sent to).
pub fn service_of(node: &openraft::BasicNode) -> String {
    NodeAddr::parse(&node.addr).service
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_addresses_round_trip_and_an_old_entry_means_one_port() {
        let n = NodeAddr::parse("127.0.0.1:7400/127.0.0.1:7420");
        assert_eq!(n.service, "127.0.0.1:7400");
        assert_eq!(n.raft_target(), "127.0.0.1:7420");
        assert_eq!(NodeAddr::parse(&n.encode()), n);
        let old = NodeAddr::parse("[::1]:7400");
        assert_eq!((old.service.as_str(), old.raft_target()), ("[::1]:7400", "[::1]:7400"));
        assert_eq!(old.encode(), "[::1]:7400");
        assert_eq!(service_of(&openraft::BasicNode::new("a:1/b:2")), "a:1");
    }
}
