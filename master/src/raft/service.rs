//! The receiving side: decode, hand to the local Raft, encode the result.

use crate::types::{Raft, TypeConfig};
use bytes::Bytes;
use openraft::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use std::io::Cursor;
use tessera_proto::pb::raft_server::Raft as RaftRpc;
use tessera_proto::pb::RaftBlob;
use tonic::{Request, Response, Status};

type C = TypeConfig;

pub struct RaftService {
    pub raft: Raft,
}

fn decode<T: for<'de> serde::Deserialize<'de>>(b: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(b).map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Response<RaftBlob>, Status> {
    let data = serde_json::to_vec(v).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftBlob { data: Bytes::from(data) }))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(&self, req: Request<RaftBlob>) -> Result<Response<RaftBlob>, Status> {
        let rpc = decode(&req.get_ref().data)?;
        encode(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftBlob>) -> Result<Response<RaftBlob>, Status> {
        let rpc = decode(&req.get_ref().data)?;
        encode(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<RaftBlob>) -> Result<Response<RaftBlob>, Status> {
        let (vote, meta, data): (VoteOf<C>, SnapshotMetaOf<C>, Vec<u8>) = decode(&req.get_ref().data)?;
        let snap = SnapshotOf::<C, Cursor<Vec<u8>>> { meta, snapshot: Cursor::new(data) };
        let r = self.raft.install_full_snapshot(vote, snap).await.map_err(|e| e.to_string());
        encode(&r)
    }
}
