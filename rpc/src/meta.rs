//! A metadata client that finds the Raft leader by itself: it follows the
//! `tessera-leader` hint a follower returns, rotates through the masters when
//! one is unreachable, and retries with capped exponential backoff until a
//! total deadline (so elections are invisible to callers).

use crate::leader_probe::{LeaderProbe, ANSWER_WITHIN};
use crate::pool::{pool, Profile};
use crate::retry::Backoff;
use crate::RpcError;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_proto::pb::meta_client::MetaClient as Pb;
use tessera_proto::pb::Empty;
use tessera_proto::status::{errno_of, leader_of};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::Code;
use tracing::Instrument;

#[derive(Clone, Debug)]
pub struct MetaOptions {
    /// Deadline of one RPC attempt. Short, because a frozen leader (SIGSTOP,
    /// a stalled VM) still accepts connections and answers nothing: the
    /// client must give up on it about as fast as the followers elect a new
    /// one. A retry carries the same request id, so a slow but successful
    /// write is answered, not applied twice.
    pub rpc_timeout: Duration,
    /// How long a call keeps retrying through elections and outages.
    pub total_timeout: Duration,
    /// Opt-in: reads (lookup, getattr, readdir, ...) may be answered by any
    /// master from its applied state, possibly behind the leader, and keep
    /// working without a quorum. Writes still go to the leader.
    pub stale_reads: bool,
    /// A mount's cache-lease session, sent with every request: the leader
    /// registers reads under it and does not revoke this client's own
    /// changes from it (see the masters' leases.rs).
    pub session: Option<String>,
    /// Give up after this long when no master of this client has ever
    /// answered and every attempt failed to connect (refused, or the name
    /// does not resolve): a wrong `--masters` is an error in seconds, not
    /// after `total_timeout`. None (servers, mounts): keep waiting, a
    /// cluster may be starting.
    pub unreachable_after: Option<Duration>,
}

impl Default for MetaOptions {
    fn default() -> Self {
        MetaOptions {
            rpc_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(30),
            stale_reads: false,
            session: None,
            unreachable_after: None,
        }
    }
}

#[derive(Clone)]
pub struct MetaClient {
    inner: Arc<Inner>,
}

struct Inner {
    addrs: Vec<String>,
    opts: MetaOptions,
    leader: Mutex<Option<String>>,
    /// The master stale reads go to while it answers.
    read_from: AtomicUsize,
    /// The last GC epoch read, and when.
    epoch: Mutex<Option<(u64, Instant)>>,
    /// Masters whose last attempt timed out, and when.
    suspects: Mutex<HashMap<String, Instant>>,
    /// Some master answered this client once (with anything).
    answered: std::sync::atomic::AtomicBool,
    /// Who the other masters last said leads (leader_probe.rs).
    probe: LeaderProbe,
}

/// The innermost cause of a transport failure ("Connection refused",
/// "failed to lookup address"): tonic's own message says only "tcp
/// connect error" or "dns error".
fn root_cause(st: &tonic::Status) -> String {
    let mut e: &dyn std::error::Error = st;
    while let Some(next) = e.source() {
        e = next;
    }
    let inner = e.to_string();
    if inner == st.message() {
        inner
    } else {
        format!("{} ({inner})", st.message())
    }
}

type Result<T> = std::result::Result<T, RpcError>;

/// Statuses that say "this master, now" rather than "this request": an
/// election, a timeout, a lost connection. Others are final.
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled | Code::Aborted | Code::Internal
    )
}

/// No connection could be made (refused, unresolvable name): nothing of
/// the master's answered, unlike a status it sent.
fn is_connect_failure(st: &tonic::Status) -> bool {
    st.code() == Code::Unavailable
        && leader_of(st).is_none()
        && (st.message().contains("connect") || st.message().contains("dns"))
}

/// How long a master that timed out is passed over.
const SUSPECT_FOR: Duration = Duration::from_secs(3);

/// Marks a request as a stale read (header `tessera-read: stale`) and
/// names the client's lease session (`tessera-session`).
#[derive(Clone, Default)]
pub struct ReadMode {
    stale: bool,
    session: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl Interceptor for ReadMode {
    fn call(&mut self, mut req: tonic::Request<()>) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        if self.stale {
            req.metadata_mut().insert(tessera_proto::status::READ_MODE_HEADER, MetadataValue::from_static("stale"));
        }
        if let Some(s) = &self.session {
            req.metadata_mut().insert(tessera_proto::status::SESSION_HEADER, s.clone());
        }
        if let Ok(id) = crate::trace::new_request_id().parse() {
            req.metadata_mut().insert(crate::trace::REQUEST_ID_HEADER, id);
        }
        Ok(req)
    }
}

/// A channel to one master that marks requests as the client's options say.
pub type Marked = InterceptedService<Channel, ReadMode>;
/// The namespace service's client.
pub type PbClient = Pb<Marked>;
/// The operators' service's client.
pub type AdminClient = tessera_proto::pb::admin_client::AdminClient<Marked>;
/// The chunkservers' service's client.
pub type ControlClient = tessera_proto::pb::chunkserver_control_client::ChunkserverControlClient<Marked>;

fn meta_client(ch: Marked) -> PbClient {
    Pb::new(ch)
        .max_decoding_message_size(tessera_proto::GRPC_MAX_MESSAGE)
        .max_encoding_message_size(tessera_proto::GRPC_MAX_MESSAGE)
}

fn admin_client(ch: Marked) -> AdminClient {
    AdminClient::new(ch)
}

fn control_client(ch: Marked) -> ControlClient {
    ControlClient::new(ch).max_encoding_message_size(tessera_proto::GRPC_MAX_MESSAGE)
}

impl MetaClient {
    pub fn new(addrs: Vec<String>, opts: MetaOptions) -> MetaClient {
        let addrs: Vec<String> = addrs.into_iter().map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
        MetaClient {
            inner: Arc::new(Inner {
                // Spread stale readers over the masters.
                read_from: AtomicUsize::new(rand::random::<u32>() as usize % addrs.len().max(1)),
                addrs,
                opts,
                leader: Mutex::new(None),
                answered: std::sync::atomic::AtomicBool::new(false),
                epoch: Mutex::new(None),
                suspects: Mutex::new(HashMap::new()),
                probe: Default::default(),
            }),
        }
    }

    pub fn addrs(&self) -> &[String] {
        &self.inner.addrs
    }

    pub fn options(&self) -> &MetaOptions {
        &self.inner.opts
    }

    /// A client bound to one master, for status queries of that master.
    pub fn client_for(&self, addr: &str) -> Result<PbClient> {
        self.client_with(addr, false)
    }

    fn client_with(&self, addr: &str, stale: bool) -> Result<PbClient> {
        Ok(meta_client(self.marked(addr, stale)?))
    }

    fn marked(&self, addr: &str, stale: bool) -> Result<Marked> {
        let session = self.inner.opts.session.as_deref().and_then(|s| MetadataValue::try_from(s).ok());
        let mode = ReadMode { stale, session };
        Ok(InterceptedService::new(pool().channel(addr, Profile::Control, crate::Role::Master)?, mode))
    }

    /// The GC epoch last read, if read less than `max_age` ago.
    pub fn cached_epoch(&self, max_age: Duration) -> Option<u64> {
        let e = *self.inner.epoch.lock();
        e.filter(|(_, at)| at.elapsed() < max_age).map(|(v, _)| v)
    }

    pub fn cache_epoch(&self, epoch: u64, read_at: Instant) {
        *self.inner.epoch.lock() = Some((epoch, read_at));
    }

    /// A master that just let an attempt time out (frozen or partitioned)
    /// is passed over for a few seconds, while the others elect a leader.
    fn mark_suspect(&self, addr: &str) {
        self.inner.suspects.lock().insert(addr.to_string(), Instant::now());
    }

    fn is_suspect(&self, addr: &str) -> bool {
        let m = self.inner.suspects.lock();
        m.get(addr).is_some_and(|t| t.elapsed() < SUSPECT_FOR)
    }

    /// Resolves once the other masters name a leader other than
    /// `waiting_on` (leader_probe.rs).
    async fn leader_moved_from(&self, waiting_on: &str) -> String {
        let ask = |addr: String| async move {
            let mut c = self.client_for(&addr).ok()?;
            let r = tokio::time::timeout(ANSWER_WITHIN, c.node_status(Empty {})).await.ok()?.ok()?.into_inner();
            let term = r.master.as_ref().map_or(0, |m| m.term);
            (!r.leader_addr.is_empty()).then_some((term, r.leader_addr))
        };
        self.inner.probe.moved_from(&self.inner.addrs, waiting_on, ask).await
    }

    fn set_leader(&self, addr: Option<String>) {
        *self.inner.leader.lock() = addr;
    }

    fn leader(&self) -> Option<String> {
        self.inner.leader.lock().clone()
    }

    /// A read: like `call`, unless stale reads were opted into; then any
    /// master answers from its applied state (one sticky choice, the next
    /// one on failure), still retried until the total deadline.
    pub async fn read<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: Fn(PbClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        if !self.inner.opts.stale_reads || self.inner.addrs.is_empty() {
            return self.call(what, f).await;
        }
        let mut backoff = Backoff::meta().within(self.inner.opts.total_timeout);
        loop {
            let i = self.inner.read_from.load(Ordering::Relaxed) % self.inner.addrs.len();
            let addr = &self.inner.addrs[i];
            let client = self.client_with(addr, true)?;
            let last = match tokio::time::timeout(self.inner.opts.rpc_timeout, f(client)).await {
                Ok(Ok(resp)) => return Ok(resp.into_inner()),
                Ok(Err(st)) if errno_of(&st).is_some() || !retryable(st.code()) => {
                    return Err(RpcError::status(what, st))
                }
                Ok(Err(st)) => format!("{addr}: {}", root_cause(&st)),
                Err(_) => format!("{addr}: timed out after {:?}", self.inner.opts.rpc_timeout),
            };
            let _ = self.inner.read_from.compare_exchange(i, i + 1, Ordering::Relaxed, Ordering::Relaxed);
            if backoff.expired() {
                return Err(RpcError::NoMaster { addrs: self.inner.addrs.join(","), last });
            }
            tracing::debug!(rpc = what, error = %last, "retrying stale read elsewhere");
            backoff.wait().await;
        }
    }

    /// Runs `f` against the leader, retrying through redirects and failures.
    /// File-system errors (a status carrying an errno) are returned at once.
    pub async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: Fn(PbClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_on(what, meta_client, f).await
    }

    /// `call` on the operators' service (the leader answers).
    pub async fn admin<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: Fn(AdminClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_on(what, admin_client, f).await
    }

    /// `call` on the chunkservers' service (the leader answers).
    pub async fn control<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: Fn(ControlClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_on(what, control_client, f).await
    }

    /// Runs `f` on the leader's `make` client: the one routing and retry
    /// loop of every service the masters serve.
    async fn call_on<C, T, F, Fut>(&self, what: &str, make: fn(Marked) -> C, f: F) -> Result<T>
    where
        F: Fn(C) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        if self.inner.addrs.is_empty() {
            return Err(RpcError::NoMaster { addrs: String::new(), last: "no master address given".into() });
        }
        let mut backoff = Backoff::meta().within(self.inner.opts.total_timeout);
        let started = Instant::now();
        let mut only_unreachable = true;
        let mut rotate = 0usize;
        let mut last: String;
        loop {
            let addr = match self.leader() {
                Some(a) => a,
                None => {
                    // Next master in turn, passing over those that just
                    // timed out while another may answer.
                    let n = self.inner.addrs.len();
                    let mut pick = None;
                    for _ in 0..n {
                        rotate += 1;
                        let a = &self.inner.addrs[rotate % n];
                        if !self.is_suspect(a) {
                            pick = Some(a.clone());
                            break;
                        }
                    }
                    pick.unwrap_or_else(|| self.inner.addrs[rotate % n].clone())
                }
            };
            let span = tracing::debug_span!("meta_rpc", rpc = what, master = %addr);
            let client = make(self.marked(&addr, false)?);
            let t0 = Instant::now();
            // The span is attached to the future (an entered guard held
            // across an await corrupts the span stack of the worker thread).
            let attempt = tokio::time::timeout(self.inner.opts.rpc_timeout, f(client)).instrument(span.clone());
            // A frozen leader answers nothing until the deadline; the
            // others may have elected a successor long before (None).
            let (res, moved) = tokio::select! {
                r = attempt => (r, None),
                l = self.leader_moved_from(&addr) => (Ok(Err(tonic::Status::unavailable("leader moved"))), Some(l)),
            };
            let _g = span.enter();
            tracing::debug!(micros = t0.elapsed().as_micros() as u64, ok = matches!(res, Ok(Ok(_))), "answered");
            let answered = match &res {
                Ok(Ok(_)) => true,
                Ok(Err(st)) => !is_connect_failure(st),
                Err(_) => false,
            };
            if answered {
                self.inner.answered.store(true, Ordering::Relaxed);
            } else if !matches!(&res, Ok(Err(st)) if is_connect_failure(st)) {
                only_unreachable = false;
            }
            let redirected = match res {
                _ if moved.is_some() => {
                    let l = moved.unwrap_or_default();
                    tracing::debug!(new_leader = %l, "leader moved while waiting: retrying there");
                    last = format!("{addr}: no answer, and the other masters name {l} leader");
                    self.mark_suspect(&addr);
                    self.set_leader(Some(l));
                    true
                }
                Ok(Ok(resp)) => {
                    self.inner.suspects.lock().remove(&addr);
                    self.set_leader(Some(addr));
                    return Ok(resp.into_inner());
                }
                Ok(Err(st)) => {
                    if errno_of(&st).is_some() {
                        self.set_leader(Some(addr));
                        return Err(RpcError::status(what, st));
                    }
                    match st.code() {
                        code if retryable(code) => {
                            last = format!("{addr}: {}", root_cause(&st));
                            // No answer in time (the channel's own deadline)
                            // or no connection: pass this master over awhile.
                            let unresponsive = matches!(st.code(), Code::DeadlineExceeded | Code::Cancelled)
                                || is_connect_failure(&st);
                            if unresponsive {
                                self.mark_suspect(&addr);
                            }
                            match leader_of(&st) {
                                // A follower that has not noticed yet still
                                // names the frozen leader: do not go back to it.
                                Some(l) if l != addr && !self.is_suspect(&l) => {
                                    self.set_leader(Some(l));
                                    true
                                }
                                _ => {
                                    self.set_leader(None);
                                    false
                                }
                            }
                        }
                        _ => return Err(RpcError::status(what, st)),
                    }
                }
                Err(_) => {
                    last = format!("{addr}: timed out after {:?}", self.inner.opts.rpc_timeout);
                    self.mark_suspect(&addr);
                    self.set_leader(None);
                    false
                }
            };
            drop(_g);
            let unreachable = self.inner.opts.unreachable_after.is_some_and(|limit| {
                only_unreachable && !self.inner.answered.load(Ordering::Relaxed) && started.elapsed() >= limit
            });
            if unreachable {
                let last = format!("{last}; is --masters right?");
                return Err(RpcError::NoMaster { addrs: self.inner.addrs.join(","), last });
            }
            if backoff.expired() {
                return Err(RpcError::NoMaster { addrs: self.inner.addrs.join(","), last });
            }
            if !redirected {
                tracing::debug!(rpc = what, error = %last, "retrying metadata call");
                backoff.wait().await;
            }
        }
    }
}
