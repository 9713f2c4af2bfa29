//! The servers' side of a connection: accept, complete the TLS handshake
//! (bounded in time and in number at once), learn the peer's identity from
//! its certificate, and hand the connection to tonic with that identity
//! attached to every request it carries (`PeerInfo` in the extensions).

use crate::certs::{identity_of, Identity, Role};
use crate::maybe_tls::MaybeTls;
use crate::tls::{security, Security};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// A peer that has not finished its handshake in this long is dropped: a
/// silent or slow client cannot hold a connection slot.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait in the
/// kernel's backlog.
const HANDSHAKES_AT_ONCE: usize = 128;
/// Connections a server keeps open at once (each may carry up to
/// `server::STREAMS_PER_CONNECTION` calls); at the cap, new ones wait in
/// the kernel's backlog until one closes. Far above a cluster's need (a
/// connection per peer process and profile), far below the descriptors a
/// flood would take.
const CONNECTIONS_AT_ONCE: usize = 4096;

/// Who sent a request: the peer's address and, with TLS, its verified
/// identity (None: an `--insecure` server, which trusts every caller).
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub remote: Option<SocketAddr>,
    pub identity: Option<Arc<Identity>>,
}

impl PeerInfo {
    /// How the peer is named in logs: its certificate's name and role, or
    /// its address.
    pub fn describe(&self) -> String {
        let addr = self.remote.map_or_else(|| "-".to_string(), |a| a.to_string());
        match &self.identity {
            Some(id) => format!("{} ({}, {addr})", id.name, id.role),
            None => addr,
        }
    }
}

/// What an accepted connection carries besides its bytes: who is at the
/// other end, and its slot among the connections at once (freed as the
/// connection is dropped).
pub struct Accepted {
    peer: PeerInfo,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// One accepted connection, plaintext or TLS, and who is at its other end.
pub type PeerIo = MaybeTls<tokio_rustls::server::TlsStream<TcpStream>, Accepted>;

impl tonic::transport::server::Connected for PeerIo {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.peer.clone()
    }
}

/// The connections to serve, for `serve_with_incoming_shutdown`.
pub type Incoming = tokio_stream::wrappers::ReceiverStream<io::Result<PeerIo>>;

/// Binds `addr` and returns the stream of its connections, each past its
/// handshake. Fails at once if the address cannot be bound or this
/// process has no identity.
pub async fn incoming(addr: SocketAddr) -> io::Result<Incoming> {
    incoming_admitting(addr, None).await
}

/// `incoming`, where a connection whose certificate is not of `only`'s role
/// is dropped right after its handshake, before it can send a request (a
/// listener for one kind of peer, as the masters' Raft listener). An
/// `--insecure` server has no identities and admits every connection.
pub async fn incoming_admitting(addr: SocketAddr, only: Option<Role>) -> io::Result<Incoming> {
    let sec = security().map_err(io::Error::other)?;
    let listener = TcpListener::bind(addr).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(HANDSHAKES_AT_ONCE);
    let handshakes = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_AT_ONCE));
    let connections = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_AT_ONCE));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = connections.clone().acquire_owned().await else { return };
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = tx.closed() => return,
            };
            let (tcp, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: pass, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Ok(permit) = handshakes.clone().acquire_owned().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Some(io) = handshake(sec, tcp, remote, slot, only).await {
                    let _ = tx.send(Ok(io)).await;
                }
            });
        }
    });
    Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
}

async fn handshake(
    sec: &Security,
    tcp: TcpStream,
    remote: SocketAddr,
    slot: tokio::sync::OwnedSemaphorePermit,
    only: Option<Role>,
) -> Option<PeerIo> {
    let tls = match sec {
        Security::Insecure => {
            let peer = PeerInfo { remote: Some(remote), identity: None };
            return Some(PeerIo::plain(tcp, Accepted { peer, _slot: slot }));
        }
        Security::Tls(t) => t,
    };
    let stream = match tokio::time::timeout(HANDSHAKE_LIMIT, tls.acceptor().accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(peer = %remote, error = %e, "TLS handshake refused");
            return None;
        }
        Err(_) => {
            tracing::warn!(peer = %remote, "TLS handshake timed out");
            return None;
        }
    };
    // The verifier required a certificate chained to the cluster CA; what
    // it names is read once per connection.
    let der = stream.get_ref().1.peer_certificates().and_then(|c| c.first().cloned());
    let identity = match der.map(|d| identity_of(&d)) {
        Some(Ok(id)) => id,
        Some(Err(e)) => {
            tracing::warn!(peer = %remote, error = %e, "peer certificate refused");
            return None;
        }
        None => {
            tracing::warn!(peer = %remote, "peer sent no certificate");
            return None;
        }
    };
    if let Some(why) = crate::revoked::refused(&identity) {
        tracing::warn!(peer = %remote, "{why}: connection refused");
        return None;
    }
    if only.is_some_and(|r| r != identity.role) {
        tracing::warn!(peer = %remote, name = %identity.name, role = %identity.role, "only {} certificates are admitted on this port: connection refused", only.map_or("", Role::as_str));
        return None;
    }
    let peer = PeerInfo { remote: Some(remote), identity: Some(Arc::new(identity)) };
    Some(PeerIo::tls(stream, Accepted { peer, _slot: slot }))
}
