//! Raft transport over tonic: openraft's messages travel as JSON blobs on
//! the `Raft` gRPC service, served on the same port as the metadata API.

pub mod network;
pub mod service;
