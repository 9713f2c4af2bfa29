//! A metadata client that finds the Raft leader by itself: it follows the
//! `tessera-leader` hint a follower returns, rotates through the masters when
//! one is unreachable, and retries with capped exponential backoff until a
//! total deadline (so elections are invisible to callers).

use crate::error::{ClientError, Result};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_proto::pb::meta_client::MetaClient as Pb;
use tessera_proto::status::{errno_of, leader_of};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

#[derive(Clone, Debug)]
pub struct MetaOptions {
    /// Deadline of one RPC attempt.
    pub rpc_timeout: Duration,
    /// How long a call keeps retrying through elections and outages.
    pub total_timeout: Duration,
}

impl Default for MetaOptions {
    fn default() -> Self {
        MetaOptions { rpc_timeout: Duration::from_secs(5), total_timeout: Duration::from_secs(30) }
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
    channels: Mutex<HashMap<String, Channel>>,
}

pub type PbClient = Pb<Channel>;

impl MetaClient {
    pub fn new(addrs: Vec<String>, opts: MetaOptions) -> MetaClient {
        let addrs: Vec<String> = addrs.into_iter().map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
        MetaClient {
            inner: Arc::new(Inner { addrs, opts, leader: Mutex::new(None), channels: Mutex::new(HashMap::new()) }),
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
        Ok(Pb::new(self.channel(addr)?)
            .max_decoding_message_size(tessera_proto::GRPC_MAX_MESSAGE)
            .max_encoding_message_size(tessera_proto::GRPC_MAX_MESSAGE))
    }

    fn channel(&self, addr: &str) -> Result<Channel> {
        let mut chans = self.inner.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = chans.get(addr) {
            return Ok(c.clone());
        }
        let ep = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ClientError::NoMaster { addrs: addr.to_string(), last: e.to_string() })?
            .connect_timeout(Duration::from_secs(2))
            .timeout(self.inner.opts.rpc_timeout)
            .tcp_nodelay(true);
        let ch = ep.connect_lazy();
        chans.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    fn set_leader(&self, addr: Option<String>) {
        *self.inner.leader.lock().unwrap_or_else(|p| p.into_inner()) = addr;
    }

    fn leader(&self) -> Option<String> {
        self.inner.leader.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `f` against the leader, retrying through redirects and failures.
    /// File-system errors (a status carrying an errno) are returned at once.
    pub async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: Fn(PbClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        if self.inner.addrs.is_empty() {
            return Err(ClientError::NoMaster { addrs: String::new(), last: "no master address given".into() });
        }
        let deadline = Instant::now() + self.inner.opts.total_timeout;
        let mut backoff = Duration::from_millis(25);
        let mut rotate = 0usize;
        let mut last: String;
        loop {
            let addr = match self.leader() {
                Some(a) => a,
                None => {
                    rotate += 1;
                    self.inner.addrs[rotate % self.inner.addrs.len()].clone()
                }
            };
            let span = tracing::debug_span!("meta_rpc", rpc = what, master = %addr);
            let _g = span.enter();
            let client = self.client_for(&addr)?;
            let res = tokio::time::timeout(self.inner.opts.rpc_timeout, f(client)).await;
            let redirected = match res {
                Ok(Ok(resp)) => {
                    self.set_leader(Some(addr));
                    return Ok(resp.into_inner());
                }
                Ok(Err(st)) => {
                    if errno_of(&st).is_some() {
                        self.set_leader(Some(addr));
                        return Err(ClientError::from_status(what, &st));
                    }
                    match st.code() {
                        Code::Unavailable
                        | Code::DeadlineExceeded
                        | Code::Unknown
                        | Code::Cancelled
                        | Code::Aborted
                        | Code::Internal => {
                            last = format!("{addr}: {}", st.message());
                            match leader_of(&st) {
                                Some(l) if l != addr => {
                                    self.set_leader(Some(l));
                                    true
                                }
                                _ => {
                                    self.set_leader(None);
                                    false
                                }
                            }
                        }
                        _ => return Err(ClientError::from_status(what, &st)),
                    }
                }
                Err(_) => {
                    last = format!("{addr}: timed out after {:?}", self.inner.opts.rpc_timeout);
                    self.set_leader(None);
                    false
                }
            };
            drop(_g);
            if Instant::now() >= deadline {
                return Err(ClientError::NoMaster { addrs: self.inner.addrs.join(","), last });
            }
            if !redirected {
                tracing::debug!(rpc = what, error = %last, "retrying metadata call");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
        }
    }
}
