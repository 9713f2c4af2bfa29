//! The Admin service: operators' changes to the cluster (drain a
//! chunkserver, add or remove a master). Served apart from the namespace so
//! that it can be offered to operators only.

use crate::error::MasterError;
use crate::meta_service::{ok, MetaService, Res};
use crate::types::{Cred, Op};
use std::sync::Arc;
use tessera_proto::pb::admin_server::Admin;
use tessera_proto::pb::*;
use tonic::{Request, Status};

pub struct AdminService {
    pub meta: Arc<MetaService>,
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn set_chunkserver_state(&self, req: Request<ChunkserverStateRequest>) -> Res<Empty> {
        let r = req.into_inner();
        let state = match crate::fsm::model::ServerState::parse(&r.state) {
            Some(s @ (crate::fsm::model::ServerState::Draining | crate::fsm::model::ServerState::Alive)) => s,
            _ => return Err(MasterError::fs(libc::EINVAL, "state must be \"draining\" or \"alive\"").into()),
        };
        self.meta.write(Cred::root(), Op::SetServerState { id: r.id.clone(), state }).await?;
        // An operator's act: logged (with the RPC span's peer and request).
        tracing::info!(server = %r.id, state = state.name(), "chunkserver state set by an operator");
        ok(Empty {})
    }

    #[tracing::instrument(skip_all, fields(id = req.get_ref().id, addr = %req.get_ref().addr))]
    async fn add_master(&self, req: Request<AddMasterRequest>) -> Res<Empty> {
        self.meta.leader_only()?;
        let mut r = req.into_inner();
        crate::raft::node_addr::NodeAddr::checked(&r.addr, "").map_err(Status::invalid_argument)?;
        if r.raft_addr.is_empty() {
            r.raft_addr = raft_addr_of(&r.addr).await?;
        }
        let addr =
            crate::raft::node_addr::NodeAddr::checked(&r.addr, &r.raft_addr).map_err(Status::invalid_argument)?;
        let node = openraft::BasicNode { addr: addr.encode() };
        // Learner first: it catches up without counting toward the quorum.
        self.meta.raft.add_learner(r.id, node, true).await.map_err(|e| self.meta.membership_err(e))?;
        let ids: std::collections::BTreeSet<u64> = [r.id].into_iter().collect();
        self.meta
            .raft
            .change_membership(openraft::ChangeMembers::AddVoterIds(ids), false)
            .await
            .map_err(|e| self.meta.membership_err(e))?;
        tracing::info!(id = r.id, "master added as voter");
        ok(Empty {})
    }

    #[tracing::instrument(skip_all, fields(id = req.get_ref().id))]
    async fn remove_master(&self, req: Request<RemoveMasterRequest>) -> Res<Empty> {
        self.meta.leader_only()?;
        let ids: std::collections::BTreeSet<u64> = [req.get_ref().id].into_iter().collect();
        self.meta
            .raft
            .change_membership(openraft::ChangeMembers::RemoveVoters(ids), false)
            .await
            .map_err(|e| self.meta.membership_err(e))?;
        tracing::info!(id = req.get_ref().id, "master removed");
        ok(Empty {})
    }

    #[tracing::instrument(skip_all, fields(serial = %req.get_ref().serial, name = %req.get_ref().name))]
    async fn revoke_certificate(&self, req: Request<RevokeCertificateRequest>) -> Res<Empty> {
        let r = req.into_inner();
        self.meta.write(Cred::root(), Op::RevokeCert { serial: r.serial.clone(), name: r.name.clone() }).await?;
        tracing::warn!(serial = %r.serial, name = %r.name, "certificate revoked by an operator");
        ok(Empty {})
    }

    async fn list_revoked(&self, req: Request<Empty>) -> Res<RevokedReply> {
        self.meta.read_barrier(req.metadata()).await?;
        let all = crate::fsm::read::revoked(&self.meta.db)?;
        let certificates = all
            .into_iter()
            .map(|(serial, r)| RevokedCertificate { serial, name: r.name, at: crate::convert::ts(r.at) })
            .collect();
        ok(RevokedReply { certificates })
    }
}

/// Keeps this process's set of revoked certificates (`tessera_rpc::authz`)
/// equal to the replicated one, on every master, leader or not: each
/// refuses a revoked peer within this period of the revocation's apply.
pub async fn load_revocations(db: Arc<rocksdb::DB>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tick.tick().await;
        match crate::fsm::read::revoked(&db) {
            Ok(all) => tessera_rpc::revoked::set(all.into_iter().map(|(s, _)| s).collect()),
            Err(e) => tracing::warn!(error = %e, "reading revoked certificates failed"),
        }
    }
}

/// The Raft address the master at `service` says it has (empty: it serves
/// Raft on `service`). A master just started may take a few seconds to
/// answer; one that never does is not added, rather than added with a
/// guess that would leave it without Raft.
async fn raft_addr_of(service: &str) -> Result<String, Status> {
    use tessera_proto::pb::meta_client::MetaClient;
    let ch = tessera_rpc::pool()
        .channel(service, tessera_rpc::Profile::Control, tessera_rpc::Role::Master)
        .map_err(|e| Status::invalid_argument(format!("{service}: {e}")))?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let asked =
            tokio::time::timeout(std::time::Duration::from_secs(2), MetaClient::new(ch.clone()).node_status(Empty {}))
                .await;
        let why = match asked {
            Ok(Ok(r)) => return Ok(r.into_inner().master.map(|m| m.raft_addr).unwrap_or_default()),
            Ok(Err(e)) => e.message().to_string(),
            Err(_) => "no answer".to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(Status::failed_precondition(format!(
                "the master to add, at {service}, did not say where it serves Raft ({why}): start it first, or give --raft-addr"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
