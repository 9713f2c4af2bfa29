//! The sending side: one lazily-connected channel per peer; every RPC is
//! bounded by openraft's TTL so a dead peer costs a timeout, not a hang.

use super::append_stream;
use crate::types::{NodeId, TypeConfig};
use bytes::Bytes;
use futures::Stream;
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::base::{BoxFuture, BoxStream};
use openraft::error::{NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::StreamAppendResult;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::OptionalSend;
use openraft::{BasicNode, RaftNetworkV2};
use std::future::Future;
use std::time::Duration;
use tessera_proto::pb::raft_client::RaftClient;
use tessera_proto::pb::{RaftBlob, SnapshotPart};
use tonic::transport::Channel;

type C = TypeConfig;

pub struct Network;

pub struct Conn {
    addr: String,
    client: Option<RaftClient<Channel>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl RaftNetworkFactory<C> for Network {
    type Network = Conn;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        let _ = target;
        Conn { addr: super::node_addr::NodeAddr::parse(&node.addr).raft_target().to_string(), client: None }
    }
}

impl Conn {
    fn client(&mut self) -> Result<RaftClient<Channel>, TransportError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let ch = tessera_rpc::pool()
            .channel(&self.addr, tessera_rpc::Profile::Raft, tessera_rpc::Role::Master)
            .map_err(|e| TransportError(e.to_string()))?;
        let c = RaftClient::new(ch).max_decoding_message_size(1 << 30).max_encoding_message_size(1 << 30);
        self.client = Some(c.clone());
        Ok(c)
    }

    /// Sends an encoded request (wire.rs) and decodes a `Result<Resp, Err>`.
    async fn call<Req, Resp, Err>(
        &mut self,
        kind: &'static str,
        req: &Req,
        ttl: Duration,
    ) -> Result<Result<Resp, Err>, TransportError>
    where
        Req: serde::Serialize,
        Resp: for<'de> serde::Deserialize<'de>,
        Err: for<'de> serde::Deserialize<'de>,
    {
        let data = Bytes::from(super::wire::encode(req).map_err(|e| TransportError(e.to_string()))?);
        let mut c = self.client()?;
        let mut r = tonic::Request::new(RaftBlob { data });
        r.set_timeout(ttl);
        let fut = async {
            match kind {
                "append" => c.append_entries(r).await,
                _ => c.vote(r).await,
            }
        };
        let resp = tokio::time::timeout(ttl, fut)
            .await
            .map_err(|_| TransportError(format!("{kind} to {} timed out", self.addr)))?
            .map_err(|s| {
                // Drop the channel so the next call reconnects.
                self.client = None;
                TransportError(format!("{kind} to {}: {}", self.addr, s.message()))
            })?;
        super::wire::decode(&resp.into_inner().data).map_err(|e| TransportError(e.to_string()))
    }
}

fn to_rpc_err<E: std::error::Error>(e: TransportError) -> RPCError<C, E> {
    if e.0.contains("timed out") {
        RPCError::Network(NetworkError::new(&e))
    } else {
        RPCError::Unreachable(Unreachable::new(&e))
    }
}

impl RaftNetworkV2<C> for Conn {
    type SnapshotData = crate::store::snapshot::SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let r: Result<AppendEntriesResponse<C>, RaftError<C>> =
            self.call("append", &rpc, option.hard_ttl()).await.map_err(to_rpc_err)?;
        // A remote RaftError is fatal on the peer: treat the peer as unreachable.
        r.map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }

    /// Replication to this follower over one long-lived bidi stream (see
    /// `wire`): each request is one HTTP/2 data frame, sent as soon as
    /// openraft makes it (pipelined; a commit-only one may ride on the next,
    /// see `append_stream`), and each result comes back in order.
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<'s, Result<BoxStream<'s, Result<StreamAppendResult<C>, RPCError<C>>>, RPCError<C>>>
    where
        S: Stream<Item = AppendEntriesRequest<C>> + OptionalSend + Unpin + 'static,
    {
        Box::pin(async move {
            let ttl = option.soft_ttl();
            let mut c = self.client().map_err(to_rpc_err)?;
            let inflight = append_stream::Inflight::default();
            let outbound = append_stream::outbound(input, inflight.clone());
            let opened = tokio::time::timeout(ttl, c.append_stream(outbound))
                .await
                .map_err(|_| to_rpc_err(TransportError(format!("append stream to {} timed out", self.addr))))?;
            let inbound = match opened {
                Ok(r) => r.into_inner(),
                Err(s) => {
                    self.client = None;
                    return Err(to_rpc_err(TransportError(format!("append stream to {}: {}", self.addr, s.message()))));
                }
            };
            let replies = append_stream::Replies::new(inbound, inflight, ttl);
            let replies = futures::stream::unfold(Some((self, replies)), |state| async move {
                let (conn, mut replies) = state?;
                match replies.next().await {
                    Ok(None) => None,
                    Ok(Some(r)) => Some((Ok(r), Some((conn, replies)))),
                    Err(e) => {
                        conn.client = None;
                        let e = TransportError(format!("append stream to {}: {e}", conn.addr));
                        Some((Err(to_rpc_err(e)), None))
                    }
                }
            });
            let replies: BoxStream<'s, _> = Box::pin(replies);
            Ok(replies)
        })
    }

    async fn vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        let r: Result<VoteResponse<C>, RaftError<C>> =
            self.call("vote", &rpc, option.hard_ttl()).await.map_err(to_rpc_err)?;
        // A remote RaftError is fatal on the peer: treat the peer as unreachable.
        r.map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Self::SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let unreachable = |e: String| StreamingError::Unreachable(Unreachable::new(&TransportError(e)));
        let size = match &snapshot.snapshot.path {
            Some(p) => tokio::fs::metadata(p).await.map_err(|e| unreachable(e.to_string()))?.len(),
            None => 0,
        };
        let header = super::wire::encode(&(vote, &snapshot.meta)).map_err(|e| unreachable(e.to_string()))?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        // Frames are read from the checkpoint file as the receiver takes
        // them: memory stays at a few frames whatever the snapshot's size.
        let path = snapshot.snapshot.path.clone();
        let reader = tokio::spawn(send_file(tx, header, path));
        let mut c = self.client().map_err(|e| unreachable(e.0))?;
        // A snapshot may be large: allow it time in proportion (>= 5 MB/s).
        let ttl = option.hard_ttl().max(Duration::from_secs(60) + Duration::from_secs(size / 5_000_000));
        let call = c.stream_snapshot(tokio_stream::wrappers::ReceiverStream::new(rx));
        let resp = tokio::select! {
            r = tokio::time::timeout(ttl, call) => r,
            closed = cancel => {
                reader.abort();
                return Err(StreamingError::Closed(closed));
            }
        };
        reader.abort();
        let resp = resp.map_err(|_| unreachable(format!("snapshot to {} timed out", self.addr)))?.map_err(|s| {
            self.client = None;
            unreachable(format!("snapshot to {}: {}", self.addr, s.message()))
        })?;
        let r: Result<SnapshotResponse<C>, String> =
            super::wire::decode(&resp.into_inner().data).map_err(|e| unreachable(e.to_string()))?;
        tracing::info!(to = %self.addr, bytes = size, last_log = ?snapshot.meta.last_log_id, "snapshot sent");
        r.map_err(unreachable)
    }
}

/// Feeds the snapshot stream: header, the file in 1 MiB frames, its BLAKE3.
async fn send_file(tx: tokio::sync::mpsc::Sender<SnapshotPart>, header: Vec<u8>, path: Option<std::path::PathBuf>) {
    use tokio::io::AsyncReadExt;
    if tx.send(SnapshotPart { header: header.into(), ..Default::default() }).await.is_err() {
        return;
    }
    let mut hasher = blake3::Hasher::new();
    if let Some(path) = path {
        let mut f = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            // Dropping the sender ends the stream early: the receiver sees
            // no checksum and refuses the snapshot.
            Err(e) => return tracing::warn!(path = %path.display(), error = %e, "cannot read snapshot"),
        };
        loop {
            let mut buf = vec![0u8; 1 << 20];
            let n = match f.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => return tracing::warn!(path = %path.display(), error = %e, "cannot read snapshot"),
            };
            buf.truncate(n);
            hasher.update(&buf);
            if tx.send(SnapshotPart { data: buf.into(), ..Default::default() }).await.is_err() {
                return;
            }
        }
    }
    let sum = hasher.finalize().as_bytes().to_vec();
    let _ = tx.send(SnapshotPart { blake3: sum.into(), ..Default::default() }).await;
}
