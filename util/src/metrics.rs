//! The Prometheus endpoint every process can serve (`--metrics-listen`):
//! `metrics-exporter-prometheus`'s own HTTP listener, text format at any
//! path (`/metrics` by convention). The crates record with the `metrics`
//! macros; without a listener they record nothing.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Latency buckets (seconds) for every `*_seconds` histogram: from half a
/// millisecond (a cached metadata read) to 10 s (a write through a fault).
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the recorder and starts the listener (call inside a tokio
/// runtime).
pub fn serve(listen: std::net::SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| format!("metrics listener on {listen}: {e}"))
}
