//! One span per RPC served: the method, the calling peer's address and the
//! caller's request id, so every log line a request causes says whose it
//! was (`tonic::transport::Server::trace_fn`).

use tonic::codegen::http;
use tonic::transport::server::TcpConnectInfo;

/// The per-call id a metadata client sends (random, one per attempt).
pub const REQUEST_ID_HEADER: &str = "tessera-request-id";

/// A fresh request id for one call.
pub fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The span a server opens around each request it serves.
pub fn server_span(req: &http::Request<()>) -> tracing::Span {
    let peer = req
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(|i| i.remote_addr())
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    let id = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info_span!("rpc", method = %req.uri().path(), peer = %peer, request = %id)
}
