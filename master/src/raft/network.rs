//! The sending side: one lazily-connected channel per peer; every RPC is
//! bounded by openraft's TTL so a dead peer costs a timeout, not a hang.

use crate::types::{NodeId, TypeConfig};
use bytes::Bytes;
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::error::{NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{BasicNode, RaftNetworkV2};
use std::future::Future;
use std::io::Cursor;
use std::time::Duration;
use tessera_proto::pb::raft_client::RaftClient;
use tessera_proto::pb::RaftBlob;
use tonic::transport::{Channel, Endpoint};

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
        Conn { addr: node.addr.clone(), client: None }
    }
}

impl Conn {
    fn client(&mut self) -> Result<RaftClient<Channel>, TransportError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let ep = Endpoint::from_shared(format!("http://{}", self.addr))
            .map_err(|e| TransportError(e.to_string()))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true);
        let c =
            RaftClient::new(ep.connect_lazy()).max_decoding_message_size(1 << 30).max_encoding_message_size(1 << 30);
        self.client = Some(c.clone());
        Ok(c)
    }

    /// Sends a JSON-encoded request and decodes a JSON `Result<Resp, Err>`.
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
        let data = Bytes::from(serde_json::to_vec(req).map_err(|e| TransportError(e.to_string()))?);
        let mut c = self.client()?;
        let mut r = tonic::Request::new(RaftBlob { data });
        r.set_timeout(ttl);
        let fut = async {
            match kind {
                "append" => c.append_entries(r).await,
                "vote" => c.vote(r).await,
                _ => c.install_snapshot(r).await,
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
        serde_json::from_slice(&resp.into_inner().data).map_err(|e| TransportError(e.to_string()))
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
    type SnapshotData = Cursor<Vec<u8>>;

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
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let req = (vote, snapshot.meta, snapshot.snapshot.into_inner());
        // A snapshot can be large: allow it far longer than a heartbeat.
        let ttl = option.hard_ttl().max(Duration::from_secs(60));
        let r: Result<SnapshotResponse<C>, String> =
            self.call("snapshot", &req, ttl).await.map_err(|e| StreamingError::Unreachable(Unreachable::new(&e)))?;
        r.map_err(|e| StreamingError::Unreachable(Unreachable::new(&TransportError(e))))
    }
}
