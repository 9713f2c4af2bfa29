//! How a server process stops: on SIGINT or SIGTERM, with a bounded grace
//! for open connections. (Shared by the master and the chunkserver until
//! the rpc/util crate of the re-layering gives it a better home.)

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// How long a stopping server waits for open connections to close: mounts'
/// Watch streams, Raft peers and clients' put streams never close on their
/// own, and tonic's graceful stop would wait for them forever.
pub const GRACE: Duration = Duration::from_secs(2);

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The signal future a server is built with (`serve_with_shutdown`).
pub type Signal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs the server `serve` builds around the shutdown signal until it
/// stops; once the signal came, open connections get `GRACE`, then the
/// server is dropped (and its connections with it).
pub async fn serve_until_signal<F, E>(serve: impl FnOnce(Signal) -> F) -> Result<(), E>
where
    F: Future<Output = Result<(), E>>,
{
    let (stopping_tx, stopping) = tokio::sync::oneshot::channel::<()>();
    let served = serve(Box::pin(async move {
        signal().await;
        let _ = stopping_tx.send(());
    }));
    let grace = async {
        match stopping.await {
            Ok(()) => tokio::time::sleep(GRACE).await,
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = served => r,
        _ = grace => {
            tracing::info!("connections still open {GRACE:?} after the signal: closing them");
            Ok(())
        }
    }
}
