//! One channel pool per process: a connection per (address, profile),
//! shared by every client in the process, with the HTTP/2 settings tuned
//! once here. A tonic `Channel` multiplexes concurrent calls, so one per
//! peer is enough; profiles keep bulk chunk streams and Raft snapshots off
//! the connection that carries small control calls.

use crate::certs::Role;
use crate::tls::{security, server_name, Security};
use crate::RpcError;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Which connection to a peer a call uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Metadata calls, heartbeats, reports, small chunk queries.
    Control,
    /// Chunk data: puts, gets, copies between chunkservers.
    Bulk,
    /// Raft between masters (votes, appends, snapshots).
    Raft,
}

/// Largest HTTP/2 frame we accept: chunks arrive in 1 MiB frames rather than
/// 16 KiB ones (measured: a cold 1 GiB read through a mount used a quarter
/// less CPU).
const MAX_FRAME: u32 = 1 << 20;
/// Flow-control windows: one stream may have 4 MiB in flight, a connection
/// 16 MiB, so a pipelined chunk upload is not throttled by window updates.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;
/// A peer that stops answering pings for this long loses its connection
/// (failing calls on it), even while idle: a frozen or vanished peer is
/// noticed without waiting on each call's own deadline.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

fn connect_timeout(p: Profile) -> Duration {
    match p {
        // Raft retries every heartbeat interval; a dead peer must not hold a
        // replication task for long.
        Profile::Raft => Duration::from_secs(1),
        Profile::Control | Profile::Bulk => Duration::from_secs(2),
    }
}

pub fn endpoint(addr: &str, p: Profile) -> Result<Endpoint, RpcError> {
    let ep = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| RpcError::BadAddress { addr: addr.to_string(), why: e.to_string() })?;
    Ok(ep
        .connect_timeout(connect_timeout(p))
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .max_frame_size(Some(MAX_FRAME))
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true))
}

/// A pooled channel, and whether the runtime that drives it still runs. A
/// channel's worker task lives on the runtime that created it; a process
/// that runs several runtimes one after another (tests, a CLI) must not
/// hand out a channel whose worker is gone.
struct Pooled {
    channel: Channel,
    runtime_alive: Arc<AtomicBool>,
}

#[derive(Default)]
pub struct Pool {
    channels: Mutex<HashMap<(String, Profile, Role), Pooled>>,
}

/// The process's pool.
pub fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::default)
}

/// Set to false when the runtime drops the task that owns it (at runtime
/// shutdown, which drops every task).
struct AliveFlag(Arc<AtomicBool>);

impl Drop for AliveFlag {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Pool {
    /// The channel to the server of role `to` (a master or a chunkserver:
    /// its certificate must say so) at `addr` for `profile`, connecting
    /// lazily: the first call on it connects, and a broken connection is
    /// re-made by the next. Must be called inside a tokio runtime.
    pub fn channel(&self, addr: &str, profile: Profile, to: Role) -> Result<Channel, RpcError> {
        let sec = security().map_err(RpcError::Security)?;
        let key = (addr.to_string(), profile, to);
        let mut chans = self.channels.lock();
        if let Some(p) = chans.get(&key) {
            if p.runtime_alive.load(Ordering::SeqCst) {
                return Ok(p.channel.clone());
            }
        }
        let channel = endpoint(addr, profile)?.connect_with_connector_lazy(Connector { sec, to });
        let runtime_alive = Arc::new(AtomicBool::new(true));
        let flag = AliveFlag(runtime_alive.clone());
        tokio::spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await
        });
        chans.insert(key, Pooled { channel: channel.clone(), runtime_alive });
        Ok(channel)
    }
}

/// A channel of its own (not pooled) to the server of role `to` at
/// `addr`, with the given security rather than the process's: for tests
/// that present another identity, or none.
pub fn channel_as(sec: &'static Security, addr: &str, to: Role) -> Result<Channel, RpcError> {
    Ok(endpoint(addr, Profile::Control)?.connect_with_connector_lazy(Connector { sec, to }))
}

/// Makes a pooled channel's connections: TCP (no Nagle), then, unless the
/// process runs `--insecure`, a TLS 1.3 handshake that checks the server's
/// certificate names role `to` and presents this process's own.
#[derive(Clone, Copy)]
struct Connector {
    sec: &'static Security,
    to: Role,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl tower::Service<http::Uri> for Connector {
    type Response =
        hyper_util::rt::TokioIo<crate::maybe_tls::MaybeTls<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>;
    type Error = std::io::Error;
    type Future = BoxFuture<std::io::Result<Self::Response>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let Connector { sec, to } = *self;
        Box::pin(async move {
            use crate::maybe_tls::MaybeTls;
            let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
            let port = uri.port_u16().unwrap_or(80);
            // Errors say which step failed: "dns error" and "tcp connect
            // error" mean nothing answered (the metadata client gives up
            // early on masters that never did, see meta.rs), a TLS error
            // means something answered and refused.
            let step =
                |what: &'static str| move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"));
            let addrs: Vec<_> =
                tokio::net::lookup_host((host.as_str(), port)).await.map_err(step("dns error"))?.collect();
            let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
            let mut tcp = None;
            for a in addrs {
                match tokio::net::TcpStream::connect(a).await {
                    Ok(t) => {
                        tcp = Some(t);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            let tcp = tcp.ok_or(last).map_err(step("tcp connect error"))?;
            tcp.set_nodelay(true)?;
            let io = match sec {
                Security::Insecure => MaybeTls::plain(tcp, ()),
                Security::Tls(t) => MaybeTls::tls(
                    t.connector().connect(server_name(to), tcp).await.map_err(step("tls handshake error"))?,
                    (),
                ),
            };
            Ok(hyper_util::rt::TokioIo::new(io))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_is_shared_within_a_runtime_and_remade_in_the_next() {
        crate::tls::install(Security::Insecure);
        let pool = Pool::default();
        let first = tokio::runtime::Runtime::new().unwrap();
        first.block_on(async {
            pool.channel("127.0.0.1:9", Profile::Control, Role::Master).unwrap();
            pool.channel("127.0.0.1:9", Profile::Control, Role::Master).unwrap();
            pool.channel("127.0.0.1:9", Profile::Bulk, Role::Chunkserver).unwrap();
        });
        let alive = |pool: &Pool| {
            let m = pool.channels.lock();
            m.values().filter(|p| p.runtime_alive.load(Ordering::SeqCst)).count()
        };
        assert_eq!(pool.channels.lock().len(), 2, "one per (address, profile)");
        assert_eq!(alive(&pool), 2);
        drop(first);
        assert_eq!(alive(&pool), 0, "the runtime's end marks its channels dead");
        let second = tokio::runtime::Runtime::new().unwrap();
        second.block_on(async { pool.channel("127.0.0.1:9", Profile::Control, Role::Master).unwrap() });
        assert_eq!(alive(&pool), 1, "a dead channel is replaced, not handed out");
    }

    #[test]
    fn a_bad_address_is_an_error_not_a_panic() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        crate::tls::install(Security::Insecure);
        let e = rt.block_on(async { Pool::default().channel("not an address\n", Profile::Control, Role::Master) });
        assert!(matches!(e, Err(RpcError::BadAddress { .. })));
    }
}
