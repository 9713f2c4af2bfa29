//! The Watch stream: a mount's cache lease, renewed and revoked on it
//! (leases.rs has the protocol).

use crate::error::MasterError;
use crate::meta_service::{MetaService, Res, WatchStream};
use openraft::LinearizerOption;
use std::time::Duration;
use tessera_proto::pb::{WatchEvent, WatchRequest};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Clears the in-flight flag of a renewal however its task ends.
struct RenewDone(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for RenewDone {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Events queued per mount before the leader treats it as not answering.
const QUEUE: usize = 1024;

impl MetaService {
    pub(crate) async fn open_watch(&self, req: Request<Streaming<WatchRequest>>) -> Res<WatchStream> {
        self.leader_only()?;
        let mut inbound = req.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(5), inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no session named on the watch stream"))??
            .ok_or_else(|| Status::cancelled("watch stream closed"))?;
        if first.session.is_empty() || first.session.len() > 256 {
            return Err(MasterError::fs(libc::EINVAL, "bad lease session").into());
        }
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        let conn = self.leases.connect(&first.session, tx);
        tracing::debug!(session = %first.session, conn, "mount watching");
        let leases = self.leases.clone();
        let raft = self.raft.clone();
        // One renewal in flight per stream: a mount renews every quarter
        // lease, so one sent while another is being answered is dropped
        // (a caller cannot make the leader spawn tasks without bound).
        let renewing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        tokio::spawn(async move {
            let mut msg = Some(first);
            while let Some(m) = msg {
                if m.ack > 0 {
                    leases.acked(conn, m.ack);
                }
                if m.renew > 0 && !renewing.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    let (leases, raft, renewing) = (leases.clone(), raft.clone(), renewing.clone());
                    tokio::spawn(async move {
                        let _done = RenewDone(renewing);
                        // Only a leader that a quorum still follows, now,
                        // extends a lease.
                        let fresh = LinearizerOption::new(Some(Duration::ZERO), true);
                        let confirmed = tokio::time::timeout(leases.lease, raft.ensure_linearizable(fresh)).await;
                        if !matches!(confirmed, Ok(Ok(_))) {
                            return;
                        }
                        if let Some(tx) = leases.renewed(conn) {
                            let lease_ms = leases.lease.as_millis() as u32;
                            let _ = tx.try_send(Ok(WatchEvent { renewed: m.renew, lease_ms, ..Default::default() }));
                        }
                    });
                }
                // An error ends the stream as its end does.
                msg = inbound.message().await.unwrap_or_default();
            }
            leases.disconnect(conn);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
