//! Chunk transfer to and from chunkservers: pipelined uploads, verified
//! downloads with fallback between replicas, least-loaded replica first.

use crate::chunk_token;
use crate::token_book::TokenBook;
use crate::RpcError;
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tessera_proto::pb::chunk_client::ChunkClient;
use tessera_proto::pb::{GetChunkRequest, HasChunksRequest, PutChunkFrame, PutChunkHeader, PutSmallFrame};
use tessera_proto::{ChunkId, MAX_FRAME};
use tonic::transport::Channel;

type Result<T> = std::result::Result<T, RpcError>;

pub struct ChunkIo {
    /// One PutSmallStream per chunkserver, opened on first use.
    small: Mutex<HashMap<String, Arc<SmallPuts>>>,
    inflight: Mutex<HashMap<String, usize>>,
    timeout: Duration,
    /// The chunk access tokens this client holds.
    tokens: Arc<TokenBook>,
}

/// What a corrupt replica looked like, for reporting to the master.
#[derive(Debug, Clone)]
pub struct BadReplica {
    pub id: ChunkId,
    pub addr: String,
    pub reason: String,
}

/// Whether the chunk was already there, and the read token the server gave.
type PutAnswer = std::result::Result<(bool, Bytes), tonic::Status>;

/// A client's stream of small puts to one chunkserver: frames go out on
/// `frames`; results come back by `seq` to whoever waits in `pending`.
struct SmallPuts {
    frames: tokio::sync::mpsc::Sender<PutSmallFrame>,
    pending: Arc<Mutex<HashMap<u64, tokio::sync::oneshot::Sender<PutAnswer>>>>,
    next: AtomicU64,
    closed: Arc<AtomicBool>,
    /// When the write token the stream was opened with runs out (unix
    /// seconds; 0: none): the server ends the stream then, so it is
    /// replaced a minute before.
    expires: u64,
}

impl SmallPuts {
    /// A sequence number and where its result will arrive; None if the
    /// stream has closed (checked after registering, so a close either
    /// sees the waiter and drops it or is seen here).
    fn expect(&self) -> Option<(u64, tokio::sync::oneshot::Receiver<PutAnswer>)> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending.lock().insert(seq, tx);
        if self.closed.load(Ordering::SeqCst) {
            self.forget(seq);
            return None;
        }
        Some((seq, rx))
    }

    fn forget(&self, seq: u64) {
        self.pending.lock().remove(&seq);
    }

    fn close(&self) {
        Self::shut(&self.closed, &self.pending);
    }

    /// Marks the stream closed and fails every put still waiting on it.
    fn shut(closed: &AtomicBool, pending: &Mutex<HashMap<u64, tokio::sync::oneshot::Sender<PutAnswer>>>) {
        closed.store(true, Ordering::SeqCst);
        pending.lock().clear();
    }
}

struct InflightGuard<'a> {
    io: &'a ChunkIo,
    addr: String,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        let mut m = self.io.inflight.lock();
        if let Some(n) = m.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
        }
    }
}

impl ChunkIo {
    pub fn new(timeout: Duration) -> ChunkIo {
        ChunkIo {
            small: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            timeout,
            tokens: Arc::default(),
        }
    }

    /// The chunk access tokens this client holds (the ring brings the
    /// write token, a file's extents its read tokens).
    pub fn tokens(&self) -> &Arc<TokenBook> {
        &self.tokens
    }

    fn client(&self, addr: &str) -> Result<ChunkClient<Channel>> {
        let ch = crate::pool()
            .channel(addr, crate::Profile::Bulk, crate::Role::Chunkserver)
            .map_err(|e| RpcError::Chunk { id: String::new(), msg: e.to_string() })?;
        Ok(ChunkClient::new(ch)
            .max_decoding_message_size(tessera_proto::GRPC_MAX_MESSAGE)
            .max_encoding_message_size(tessera_proto::GRPC_MAX_MESSAGE))
    }

    /// How long a write of `len` bytes to one server may take before that
    /// server is taken for dead (a stopped process still accepts
    /// connections): generous for a busy disk, short enough that a write
    /// moves on to a substitute well within a mount's I/O timeout.
    fn write_timeout(&self, len: usize) -> Duration {
        let transfer = Duration::from_secs_f64(len as f64 / f64::from(8u32 << 20));
        self.timeout.min(Duration::from_secs(10) + transfer)
    }

    fn track(&self, addr: &str) -> InflightGuard<'_> {
        *self.inflight.lock().entry(addr.to_string()).or_default() += 1;
        InflightGuard { io: self, addr: addr.to_string() }
    }

    /// Which of `ids` the chunkserver at `addr` already holds.
    pub async fn has(&self, addr: &str, ids: &[ChunkId]) -> Result<Vec<bool>> {
        let mut c = self.client(addr)?;
        let req = HasChunksRequest { ids: ids.iter().map(|i| Bytes::copy_from_slice(i.as_bytes())).collect() };
        let mut req = tonic::Request::new(req);
        chunk_token::attach(&mut req, &self.tokens.write());
        let r = tokio::time::timeout(Duration::from_secs(5), c.has_chunks(req))
            .await
            .map_err(|_| RpcError::Chunk { id: String::new(), msg: format!("{addr}: has timed out") })?
            .map_err(|e| RpcError::status(&format!("has on {addr}"), e))?;
        Ok(r.into_inner().present)
    }

    /// Sends `data` once to `targets[0]`, which forwards along the rest.
    /// Returns the addresses that confirmed a durable copy.
    pub async fn put_pipeline(&self, targets: &[String], id: ChunkId, data: Bytes) -> Result<Vec<String>> {
        let Some(first) = targets.first() else {
            return Ok(Vec::new());
        };
        let _g = self.track(first);
        let mut c = self.client(first)?;
        let header = PutChunkHeader {
            id: Bytes::copy_from_slice(id.as_bytes()),
            len: data.len() as u64,
            forward: targets[1..].to_vec(),
        };
        let mut frames = Vec::with_capacity(data.len() / MAX_FRAME + 1);
        let mut off = 0;
        loop {
            let end = (off + MAX_FRAME).min(data.len());
            frames.push(PutChunkFrame {
                header: if off == 0 { Some(header.clone()) } else { None },
                data: data.slice(off..end), // zero-copy slice of the chunk buffer
            });
            off = end;
            if off >= data.len() {
                break;
            }
        }
        let mut req = tonic::Request::new(tokio_stream::iter(frames));
        chunk_token::attach(&mut req, &self.tokens.write());
        let r = tokio::time::timeout(self.write_timeout(data.len()), c.put_chunk(req))
            .await
            .map_err(|_| RpcError::Chunk { id: id.to_hex(), msg: format!("put to {first} timed out") })?
            .map_err(|e| RpcError::status(&format!("put chunk {id} to {first}"), e))?
            .into_inner();
        self.tokens.learn_upload(id, r.read_token);
        Ok(r.stored)
    }

    /// Stores a small chunk (at most one frame) on `addr` alone, as one
    /// frame on this client's PutSmallStream to it (see `small_puts`).
    pub async fn put_small(&self, addr: &str, id: ChunkId, data: Bytes) -> Result<()> {
        let _g = self.track(addr);
        let puts = self.small_puts(addr)?;
        let failed = |msg: String| RpcError::Chunk { id: id.to_hex(), msg: format!("put to {addr}: {msg}") };
        let (seq, answer) = puts.expect().ok_or_else(|| failed("stream closed".into()))?;
        let limit = self.write_timeout(data.len());
        let frame = PutSmallFrame { seq, id: Bytes::copy_from_slice(id.as_bytes()), data };
        let exchange = async {
            if puts.frames.send(frame).await.is_err() {
                return Err(failed("stream closed".into()));
            }
            match answer.await {
                Ok(Ok((_already_present, read_token))) => {
                    self.tokens.learn_upload(id, read_token);
                    Ok(())
                }
                Ok(Err(st)) => Err(RpcError::status(&format!("put chunk {id} to {addr}"), st)),
                Err(_) => Err(failed("stream ended".into())),
            }
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(r) => {
                puts.forget(seq);
                r
            }
            Err(_) => {
                // The next put opens a fresh stream rather than queue
                // behind a server that stopped answering this one.
                puts.close();
                Err(failed("timed out".into()))
            }
        }
    }

    /// The open PutSmallStream to `addr`, or a new one. The task reading
    /// its results holds no sender: dropping the ChunkIo ends the stream.
    fn small_puts(&self, addr: &str) -> Result<Arc<SmallPuts>> {
        let mut streams = self.small.lock();
        let fresh = |s: &&Arc<SmallPuts>| s.expires == 0 || s.expires > chunk_token::now_unix() + 60;
        if let Some(s) = streams.get(addr).filter(|s| !s.closed.load(Ordering::SeqCst)).filter(fresh) {
            return Ok(s.clone());
        }
        let mut c = self.client(addr)?;
        let (frames, rx) = tokio::sync::mpsc::channel(1024);
        let token = self.tokens.write();
        let puts = Arc::new(SmallPuts {
            frames,
            pending: Arc::default(),
            next: AtomicU64::new(0),
            closed: Arc::default(),
            expires: chunk_token::expiry_of(&token).unwrap_or(0),
        });
        let (pending, closed) = (puts.pending.clone(), puts.closed.clone());
        let addr2 = addr.to_string();
        // The stream carries the write token it was opened with; the server
        // ends it when that runs out, and the next put opens another.
        let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        chunk_token::attach(&mut req, &token);
        tokio::spawn(async move {
            match c.put_small_stream(req).await {
                Ok(resp) => {
                    let mut inbound = resp.into_inner();
                    loop {
                        match inbound.message().await {
                            Ok(Some(r)) => {
                                let waiter = pending.lock().remove(&r.seq);
                                let result = match r.code {
                                    0 => Ok((r.already_present, r.read_token)),
                                    code => Err(tessera_proto::status::from_fields(code, &r.message, r.errno)),
                                };
                                if let Some(w) = waiter {
                                    let _ = w.send(result);
                                }
                            }
                            Ok(None) => break,
                            Err(st) => {
                                tracing::debug!(server = %addr2, error = %st.message(), "small-put stream failed");
                                break;
                            }
                        }
                    }
                }
                Err(st) => tracing::debug!(server = %addr2, error = %st.message(), "cannot open a small-put stream"),
            }
            SmallPuts::shut(&closed, &pending);
        });
        streams.insert(addr.to_string(), puts.clone());
        Ok(puts)
    }

    /// Fetches a whole chunk from one of `addrs` (least loaded first) and
    /// verifies its hash; a corrupt or failing replica is skipped and
    /// reported through `on_bad`.
    pub async fn get_verified(
        &self,
        addrs: &[String],
        id: ChunkId,
        on_bad: &(dyn Fn(BadReplica) + Send + Sync),
    ) -> Result<Bytes> {
        let mut order: Vec<String> = addrs.to_vec();
        {
            let m = self.inflight.lock();
            // Stable sort keeps ring order among equally loaded replicas.
            order.sort_by_key(|a| m.get(a).copied().unwrap_or(0));
        }
        let mut errors = Vec::new();
        for addr in &order {
            match self.get_one(addr, id).await {
                Ok(b) => {
                    let actual = ChunkId::of(&b);
                    if actual == id {
                        return Ok(b);
                    }
                    let reason = format!("content hashes to {actual}");
                    tracing::warn!(chunk = %id, server = %addr, %reason, "corrupt replica; trying another");
                    on_bad(BadReplica { id, addr: addr.clone(), reason: reason.clone() });
                    errors.push(format!("{addr}: {reason}"));
                }
                Err(e) => {
                    tracing::debug!(chunk = %id, server = %addr, error = %e, "replica read failed");
                    errors.push(format!("{addr}: {e}"));
                }
            }
        }
        Err(RpcError::Chunk { id: id.to_hex(), msg: format!("no good replica ({})", errors.join("; ")) })
    }

    async fn get_one(&self, addr: &str, id: ChunkId) -> Result<Bytes> {
        let _g = self.track(addr);
        let mut c = self.client(addr)?;
        let fetch = async {
            let mut req = tonic::Request::new(GetChunkRequest { id: Bytes::copy_from_slice(id.as_bytes()) });
            chunk_token::attach(&mut req, &self.tokens.read(&id));
            let mut s = c.get_chunk(req).await.map_err(|e| RpcError::status("get chunk", e))?.into_inner();
            let mut buf: Option<BytesMut> = None;
            while let Some(f) = s.message().await.map_err(|e| RpcError::status("get chunk", e))? {
                if buf.is_none() && f.data.len() as u64 == f.total_len {
                    // A chunk in one frame: no copy. (A further frame would be
                    // a server error; the hash check catches it anyway.)
                    return Ok(f.data);
                }
                let b = buf.get_or_insert_with(|| BytesMut::with_capacity(f.total_len as usize));
                b.extend_from_slice(&f.data);
            }
            Ok::<_, RpcError>(buf.map(BytesMut::freeze).unwrap_or_default())
        };
        tokio::time::timeout(self.timeout, fetch)
            .await
            .map_err(|_| RpcError::Chunk { id: id.to_hex(), msg: format!("get from {addr} timed out") })?
    }
}
