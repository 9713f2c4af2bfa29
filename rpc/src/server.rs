//! The tonic server every Tessera server is built from: the per-RPC span
//! and per-connection limits, set once here.

use std::time::Duration;

/// Streams one connection may have open at once: a mount's many FUSE
/// threads and its long-lived streams fit; a peer opening streams without
/// end does not.
pub const STREAMS_PER_CONNECTION: u32 = 1024;
/// A connection whose peer stops answering HTTP/2 pings for this long is
/// closed, with every call on it: a vanished client holds no stream.
const PING_EVERY: Duration = Duration::from_secs(15);
const PING_LIMIT: Duration = Duration::from_secs(10);

/// The tonic server every Tessera server is built from: the per-RPC span,
/// and the per-connection limits above.
pub fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .trace_fn(crate::trace::server_span)
        .max_concurrent_streams(Some(STREAMS_PER_CONNECTION))
        .http2_keepalive_interval(Some(PING_EVERY))
        .http2_keepalive_timeout(Some(PING_LIMIT))
}
