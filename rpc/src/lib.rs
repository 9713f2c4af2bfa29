//! The one RPC layer of Tessera. Every connection a process makes is made
//! here (`pool`), every retry follows one policy (`retry`), and the masters
//! are reached through one leader-tracking client (`meta`). Security (TLS,
//! roles) and metrics hook in here once, for every caller.

pub mod authz;
pub mod certs;
pub mod chunk_token;
pub mod chunks;
pub mod error;
mod leader_probe;
pub mod listen;
mod maybe_tls;
pub mod meta;
pub mod metrics;
pub mod pool;
pub mod retry;
pub mod revoked;
pub mod server;
pub mod shutdown;
pub mod tls;
pub mod token_book;
pub mod trace;
pub mod uid_map;

pub use certs::Role;
pub use error::RpcError;
pub use pool::{pool, Profile};
pub use retry::Backoff;
