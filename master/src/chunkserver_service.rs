//! The ChunkserverControl service: chunkservers register, report what they
//! hold and prove they live (heartbeats go to the leader, whose soft state
//! of liveness and locations they feed).

use crate::error::MasterError;
use crate::fsm::read;
use crate::meta_service::{ok, MetaService, Res};
use crate::types::{Cred, Op};
use std::sync::Arc;
use tessera_proto::pb::chunkserver_control_server::ChunkserverControl;
use tessera_proto::pb::*;
use tonic::Request;

pub struct ChunkserverControlService {
    pub meta: Arc<MetaService>,
}

/// A chunkserver speaks only for itself: the id it registers or
/// heartbeats as must be its certificate's name (with TLS; an
/// `--insecure` cluster trusts what it says).
fn check_speaks_for_itself<T>(req: &Request<T>, id: &str) -> Result<(), tonic::Status> {
    match tessera_rpc::authz::peer_of(req) {
        Some(peer) if peer.name != id => {
            tracing::warn!(peer = %peer.name, claimed = %id, "chunkserver refused: it claimed another's id");
            Err(tonic::Status::permission_denied(format!(
                "chunkserver {} cannot speak for chunkserver {id}",
                peer.name
            )))
        }
        _ => Ok(()),
    }
}

#[tonic::async_trait]
impl ChunkserverControl for ChunkserverControlService {
    #[tracing::instrument(skip_all, fields(id = %req.get_ref().id))]
    async fn register(&self, req: Request<RegisterRequest>) -> Res<Empty> {
        check_speaks_for_itself(&req, &req.get_ref().id)?;
        let r = req.into_inner();
        if r.id.is_empty() || r.addr.is_empty() {
            return Err(MasterError::fs(libc::EINVAL, "chunkserver id and address are required").into());
        }
        // Re-registering with identical details is a no-op read, not a log entry.
        self.meta.barrier().await?;
        let known = read::servers(&self.meta.db)?;
        let same = known
            .iter()
            .any(|s| s.id == r.id && s.addr == r.addr && s.capacity >> 30 == r.capacity >> 30 && s.zone == r.zone);
        if !same {
            let op = Op::RegisterChunkserver { id: r.id, addr: r.addr, capacity: r.capacity, zone: r.zone };
            self.meta.write(Cred::root(), op).await?;
        }
        ok(Empty {})
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Res<HeartbeatReply> {
        check_speaks_for_itself(&req, &req.get_ref().id)?;
        self.meta.leader_only()?;
        let need_full_report = self.meta.cluster.heartbeat(req.get_ref());
        // As this master loaded them (admin_service::load_revocations).
        let revoked = tessera_rpc::revoked::serials();
        let token_keys = tessera_rpc::chunk_token::to_pb(&tessera_rpc::chunk_token::keys());
        let chunkservers = read::servers(&self.meta.db)?
            .into_iter()
            .filter(|s| s.state != crate::fsm::model::ServerState::Drained)
            .map(|s| s.addr)
            .collect();
        ok(HeartbeatReply { need_full_report, revoked, token_keys, chunkservers })
    }

    async fn token_keys(&self, _req: Request<Empty>) -> Res<TokenKeysReply> {
        // As this master loaded them (chunk_tokens::keep_keys).
        ok(TokenKeysReply { keys: tessera_rpc::chunk_token::to_pb(&tessera_rpc::chunk_token::keys()) })
    }
}
