//! The client's view of the masters: the RPC layer's leader-tracking
//! `MetaClient` (redirects, retries, stale reads) plus this client's
//! write-behind ordering: every call but the `_unordered` ones first waits
//! for the changes this client acknowledged before the masters committed them.

use crate::error::Result;
use crate::write_behind::WriteBehind;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use tessera_rpc::meta::{AdminClient, MetaOptions, PbClient};

#[derive(Clone)]
pub struct MetaClient {
    rpc: tessera_rpc::meta::MetaClient,
    write_behind: Arc<WriteBehind>,
}

/// Write-behind changes in flight per client before the next one waits.
const WRITE_BEHIND_LIMIT: usize = 128;

impl MetaClient {
    pub fn new(addrs: Vec<String>, opts: MetaOptions) -> MetaClient {
        MetaClient {
            rpc: tessera_rpc::meta::MetaClient::new(addrs, opts),
            write_behind: Arc::new(WriteBehind::new(WRITE_BEHIND_LIMIT)),
        }
    }

    pub fn addrs(&self) -> &[String] {
        self.rpc.addrs()
    }

    pub fn options(&self) -> &MetaOptions {
        self.rpc.options()
    }

    /// This client's write-behind changes (shared by its clones).
    pub fn write_behind(&self) -> &Arc<WriteBehind> {
        &self.write_behind
    }

    /// A client bound to one master, for status queries of that master.
    pub fn client_for(&self, addr: &str) -> Result<PbClient> {
        Ok(self.rpc.client_for(addr)?)
    }

    /// The GC epoch last read, if read less than `max_age` ago.
    pub fn cached_epoch(&self, max_age: Duration) -> Option<u64> {
        self.rpc.cached_epoch(max_age)
    }

    pub fn cache_epoch(&self, epoch: u64, read_at: Instant) {
        self.rpc.cache_epoch(epoch, read_at)
    }

    /// A read (see `tessera_rpc::meta::MetaClient::read`), after this
    /// client's write-behind changes.
    pub async fn read<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: Fn(PbClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        self.write_behind.settle().await;
        self.read_unordered(what, f).await
    }

    /// `read` without waiting for this client's write-behind changes: only
    /// for reads the caller knows those changes do not affect.
    pub async fn read_unordered<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: Fn(PbClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        Ok(self.rpc.read(what, f).await?)
    }

    /// Runs `f` against the leader, after this client's write-behind
    /// changes, retrying through redirects and failures. File-system errors
    /// (a status carrying an errno) are returned at once.
    pub async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: Fn(PbClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        self.write_behind.settle().await;
        self.call_unordered(what, f).await
    }

    /// `call` without waiting for this client's write-behind changes: for
    /// sending those changes themselves.
    pub async fn call_unordered<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: Fn(PbClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        Ok(self.rpc.call(what, f).await?)
    }

    /// An operators' call (drain, add or remove a master), after this
    /// client's write-behind changes.
    pub async fn admin<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: Fn(AdminClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        self.write_behind.settle().await;
        Ok(self.rpc.admin(what, f).await?)
    }

    /// `call` of one unary RPC whose request is sent as is on every attempt
    /// (`f` gets a fresh copy each time).
    pub async fn unary<Q, T, F, Fut>(&self, what: &str, req: &Q, f: F) -> Result<T>
    where
        Q: Clone,
        F: Fn(PbClient, Q) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call(what, |c| f(c, req.clone())).await
    }

    /// `unary` without waiting for this client's write-behind changes.
    pub async fn unary_unordered<Q, T, F, Fut>(&self, what: &str, req: &Q, f: F) -> Result<T>
    where
        Q: Clone,
        F: Fn(PbClient, Q) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_unordered(what, |c| f(c, req.clone())).await
    }

    /// `read` of one unary RPC (see `unary`).
    pub async fn read_req<Q, T, F, Fut>(&self, what: &str, req: &Q, f: F) -> Result<T>
    where
        Q: Clone,
        F: Fn(PbClient, Q) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        self.read(what, |c| f(c, req.clone())).await
    }
}
