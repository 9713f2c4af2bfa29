//! One span per RPC served: the method, the calling peer (its certificate's name and role, and address) and the
//! caller's request id, so every log line a request causes says whose it
//! was (`tonic::transport::Server::trace_fn`).

use crate::listen::PeerInfo;
use tonic::codegen::http;

/// The per-call id a metadata client sends (random, one per attempt).
pub const REQUEST_ID_HEADER: &str = "tessera-request-id";

/// A fresh request id for one call.
pub fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The span a server opens around each request it serves.
pub fn server_span(req: &http::Request<()>) -> tracing::Span {
    let info = req.extensions().get::<PeerInfo>();
    let peer = info.and_then(|i| i.remote).map_or_else(|| "-".to_string(), |a| a.to_string());
    // Who the certificate says the caller is: "name/role" ("-": insecure).
    let who = info
        .and_then(|i| i.identity.as_deref())
        .map_or_else(|| "-".to_string(), |id| format!("{}/{}", id.name, id.role));
    let id = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info_span!("rpc", method = %req.uri().path(), peer = %peer, who = %who, request = %id)
}
