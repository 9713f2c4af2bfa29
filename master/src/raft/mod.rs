//! Raft transport over tonic, on the `Raft` gRPC service served on the same
//! port as the metadata API. Replication (and heartbeats) run over one
//! bidi stream per follower carrying bincode (`wire`); votes and snapshots
//! are unary calls carrying JSON.

pub mod append_stream;
pub mod network;
pub mod service;
pub mod wire;
