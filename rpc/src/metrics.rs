//! RPC metrics for every server (a tower layer on the tonic server):
//! `tessera_rpc_requests_total{method, code}` and
//! `tessera_rpc_seconds{method}` (time to the response's headers: the
//! whole call for unary RPCs, the set-up for streams). `code` is the gRPC
//! status when the call failed before any message ("0" otherwise).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

/// Requests this process has answered (every service, every outcome): the
/// masters' web console plots its rate.
static SERVED: AtomicU64 = AtomicU64::new(0);

pub fn requests_served() -> u64 {
    SERVED.load(Ordering::Relaxed)
}

#[derive(Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;
    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics(inner)
    }
}

#[derive(Clone)]
pub struct RpcMetrics<S>(S);

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().to_string();
        let t0 = Instant::now();
        let fut = self.0.call(req);
        Box::pin(async move {
            let res = fut.await;
            SERVED.fetch_add(1, Ordering::Relaxed);
            let code = match &res {
                Ok(r) => r.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0"),
                Err(_) => "transport",
            };
            record(&method, code, t0.elapsed().as_secs_f64());
            res
        })
    }
}

/// Records one answered request. The handles are kept per thread, method
/// and status: a request costs a map lookup and two atomic updates, not a
/// registry lookup with freshly built labels.
fn record(method: &str, code: &str, secs: f64) {
    type Handles = (metrics::Histogram, std::collections::HashMap<String, metrics::Counter>);
    thread_local! {
        static HANDLES: std::cell::RefCell<std::collections::HashMap<String, Handles>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    // The path is the caller's to choose: past this many methods (Tessera
    // has under a hundred) the rest count as "other", so no caller can
    // grow the metrics without bound.
    const MAX_METHODS: usize = 256;
    HANDLES.with(|h| {
        let mut h = h.borrow_mut();
        let method = if h.contains_key(method) || h.len() < MAX_METHODS { method } else { "other" };
        if !h.contains_key(method) {
            let latency = metrics::histogram!("tessera_rpc_seconds", "method" => method.to_string());
            h.insert(method.to_string(), (latency, Default::default()));
        }
        let Some((latency, counters)) = h.get_mut(method) else { return };
        latency.record(secs);
        let code = if counters.contains_key(code) || counters.len() < 32 { code } else { "other" };
        if !counters.contains_key(code) {
            let c = metrics::counter!("tessera_rpc_requests_total", "method" => method.to_string(), "code" => code.to_string());
            counters.insert(code.to_string(), c);
        }
        if let Some(c) = counters.get(code) {
            c.increment(1);
        }
    });
}
