//! The web console every master serves (`--console-listen`): the cluster
//! overview (masters, chunkservers with zone, capacity and ring share,
//! replication health and repair ETA), throughput of the last minutes
//! plotted live, and a namespace browser down to where each copy of a
//! file's chunks lives. Read-only, server-rendered, no external assets
//! (it works offline); one small script refreshes the figures from
//! `/api/status` every two seconds.
//!
//! What it shows is this master's own knowledge: a follower says so and
//! names the leader, whose console has the repair figures. Like every
//! Tessera port it has no authentication yet (issue #21): `tessera up`
//! binds it to loopback.

pub mod history;
pub mod html;
pub mod view;

use crate::meta_service::MetaService;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

const CSS: &str = include_str!("console.css");
/// Requests served at once; more wait their turn.
const CONCURRENT_PAGES: usize = 8;
const JS: &str = include_str!("console.js");

#[derive(Clone)]
struct Console {
    meta: Arc<MetaService>,
    history: Arc<history::History>,
}

/// Serves the console on `addr` until the process ends; the error is the
/// bind's (logged by the caller).
pub async fn serve(addr: SocketAddr, meta: Arc<MetaService>) -> std::io::Result<()> {
    let history = Arc::new(history::History::default());
    tokio::spawn(history::sample(meta.clone(), history.clone()));
    let app = Router::new()
        .route("/", get(overview))
        .route("/browse", get(browse))
        .route("/api/status", get(status))
        .route("/static/console.css", get(|| async { ([(header::CONTENT_TYPE, "text/css")], CSS) }))
        .route("/static/console.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], JS) }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .with_state(Console { meta, history })
        // Pages are built from the master's memory and disk: a bounded
        // number at once, whoever asks (it has no login yet).
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(CONCURRENT_PAGES));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "web console serving");
    axum::serve(listener, app).await
}

async fn overview(State(c): State<Console>) -> Html<String> {
    Html(html::overview(&c.meta.console_overview()))
}

async fn status(State(c): State<Console>) -> Response {
    let mut o = c.meta.console_overview();
    o.history = c.history.samples();
    match serde_json::to_string(&o) {
        Ok(s) => ([(header::CONTENT_TYPE, "application/json")], s).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn browse(State(c): State<Console>, RawQuery(q): RawQuery) -> Html<String> {
    let path = q.as_deref().and_then(|q| query_value(q, "path")).unwrap_or_else(|| "/".to_string());
    let path = if path.starts_with('/') { path } else { format!("/{path}") };
    let role = c.meta.console_role();
    Html(html::browse(&path, &role, c.meta.console_node(&path)))
}

/// The value of `key` in a query string, percent-decoded ('+' is a space).
fn query_value(q: &str, key: &str) -> Option<String> {
    let raw = q.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))?;
    let mut out = Vec::with_capacity(raw.len());
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(query_value("path=/a%20b/c&x=1", "path").as_deref(), Some("/a b/c"));
        assert_eq!(query_value("x=1&path=%2Fd+e", "path").as_deref(), Some("/d e"));
        assert_eq!(query_value("path=100%", "path").as_deref(), Some("100%"));
        assert_eq!(query_value("path=%zz", "path").as_deref(), Some("%zz"));
        assert_eq!(query_value("other=1", "path"), None);
    }
}
