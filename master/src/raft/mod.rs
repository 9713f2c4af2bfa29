//! Raft transport over tonic, on the `Raft` gRPC service: served on a
//! listener of its own that admits masters only (`--raft-listen`), or on the
//! metadata API's port by a master started without one. Replication (and heartbeats) run over one
//! bidi stream per follower carrying bincode (`wire`); votes and snapshots
//! are unary calls carrying JSON.

pub mod append_stream;
pub mod network;
pub mod node_addr;
pub mod service;
pub mod wire;
