//! Which role may call which RPC: one table for every server, checked by a
//! tower layer before any handler runs. A call from a role the table does
//! not name is answered PERMISSION_DENIED and logged with the peer's name.
//! A server running `--insecure` has no identities and lets every call in.

use crate::certs::Identity;
use crate::certs::Role::{self, Admin, Chunkserver, Client, Master};
use crate::listen::PeerInfo;
use crate::uid_map::Creds;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

const PEOPLE: &[Role] = &[Client, Admin];
const PEOPLE_AND_MASTERS: &[Role] = &[Client, Admin, Master];
const EVERYONE: &[Role] = &[Client, Admin, Master, Chunkserver];
const DATA_WRITERS: &[Role] = &[Client, Admin, Chunkserver];

/// The roles allowed to call `path` (`/tessera.Service/Method`); empty for
/// a method this table does not know (refused).
pub fn allowed(path: &str) -> &'static [Role] {
    let Some((service, method)) = path.strip_prefix("/tessera.").and_then(|p| p.split_once('/')) else {
        return &[];
    };
    match service {
        // Raft messages replace the state: masters only.
        "Raft" => &[Master],
        // Membership and drains: operators only.
        "Admin" => &[Admin],
        // What a chunkserver says of itself (its id is checked against its
        // certificate's name by the handler).
        "ChunkserverControl" => &[Chunkserver],
        "Meta" => match method {
            // Masters probe each other; every process may ask who leads.
            "NodeStatus" => EVERYONE,
            "Epoch" => PEOPLE_AND_MASTERS,
            // Chunkservers report bad copies they find.
            "ReportBadChunk" | "GetRing" => EVERYONE,
            _ => PEOPLE,
        },
        "Chunk" => match method {
            // Clients write and read data; a chunkserver forwards a put
            // down the pipeline and a repair source pushes to its target.
            "PutChunk" | "PutSmallChunk" | "PutSmallStream" | "GetChunk" | "HasChunks" => DATA_WRITERS,
            // Deleting, repairing, scrubbing and watching a server are
            // the masters' orders.
            "DeleteChunks" | "Replicate" | "Verify" | "Presence" => &[Master],
            "Stats" => &[Master, Admin, Client],
            _ => &[],
        },
        _ => &[],
    }
}

/// Whether the peer `info` may call `path`; the refusal's message.
pub fn check(path: &str, info: Option<&PeerInfo>) -> Result<(), String> {
    let Some(info) = info else {
        return Err("no peer information on this connection".into());
    };
    let Some(id) = &info.identity else {
        return Ok(()); // --insecure: every caller trusted
    };
    if let Some(why) = crate::revoked::refused(id) {
        return Err(why);
    }
    if allowed(path).contains(&id.role) {
        return Ok(());
    }
    Err(format!("{path} is not allowed to {} (role {})", id.name, id.role))
}

/// The peer's identity on a request a handler serves (None on an
/// `--insecure` server).
pub fn peer_of<T>(req: &tonic::Request<T>) -> Option<&crate::certs::Identity> {
    req.extensions().get::<PeerInfo>().and_then(|i| i.identity.as_deref())
}

tokio::task_local! {
    /// The identity of the peer whose call is being served (None on an
    /// `--insecure` server), set by the layer for the handler's future.
    static CALLER: Option<Arc<Identity>>;
}

/// The credentials `c` a request carries, as its caller's certificate lets
/// it act (`UidMap`). Outside a served call, or on an `--insecure` server,
/// they are taken as sent.
pub fn map_creds(c: Creds) -> Creds {
    let map = CALLER.try_with(|id| id.as_ref().map(|id| id.uid_map)).ok().flatten();
    map.unwrap_or_default().apply(c)
}

#[derive(Clone, Copy, Default)]
pub struct AuthzLayer;

impl<S> tower::Layer<S> for AuthzLayer {
    type Service = Authz<S>;
    fn layer(&self, inner: S) -> Authz<S> {
        Authz(inner)
    }
}

#[derive(Clone)]
pub struct Authz<S>(S);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Authz<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        match check(path, req.extensions().get::<PeerInfo>()) {
            Ok(()) => {
                let who = req.extensions().get::<PeerInfo>().and_then(|i| i.identity.clone());
                Box::pin(CALLER.scope(who, self.0.call(req)))
            }
            Err(why) => {
                let peer = req.extensions().get::<PeerInfo>().map_or_else(|| "-".into(), PeerInfo::describe);
                tracing::warn!(peer = %peer, method = %path, "refused: role not allowed");
                let resp = tonic::Status::permission_denied(why).into_http::<R>();
                Box::pin(std::future::ready(Ok(resp)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(role: Role) -> PeerInfo {
        PeerInfo {
            remote: None,
            identity: Some(Arc::new(Identity {
                name: "p".into(),
                role,
                uid_map: Default::default(),
                serial: "0a".into(),
            })),
        }
    }

    #[test]
    fn the_table_gives_each_role_its_calls_only() {
        let ok = |path: &str, role| check(path, Some(&peer(role))).is_ok();
        for role in [Client, Admin, Chunkserver] {
            assert!(!ok("/tessera.Raft/Vote", role));
            assert!(!ok("/tessera.Raft/StreamSnapshot", role));
            assert!(!ok("/tessera.Chunk/DeleteChunks", role));
        }
        assert!(ok("/tessera.Raft/AppendStream", Master));
        assert!(!ok("/tessera.Admin/AddMaster", Client));
        assert!(!ok("/tessera.Admin/SetChunkserverState", Master));
        assert!(ok("/tessera.Admin/AddMaster", Admin));
        assert!(!ok("/tessera.ChunkserverControl/Heartbeat", Client));
        assert!(!ok("/tessera.ChunkserverControl/Register", Admin));
        assert!(ok("/tessera.ChunkserverControl/Heartbeat", Chunkserver));
        assert!(ok("/tessera.Meta/Lookup", Client));
        assert!(!ok("/tessera.Meta/Commit", Chunkserver));
        assert!(ok("/tessera.Chunk/PutChunk", Chunkserver));
        assert!(!ok("/tessera.Chunk/Replicate", Client));
        assert!(!ok("/tessera.Nope/X", Admin), "an unknown service is refused");
        assert!(!ok("/tessera.Chunk/Unknown", Master), "an unknown method is refused");
        assert!(!ok("/grpc.health.v1.Health/Check", Admin));
        let insecure = PeerInfo { remote: None, identity: None };
        assert!(check("/tessera.Raft/Vote", Some(&insecure)).is_ok());
        assert!(check("/tessera.Raft/Vote", None).is_err());
    }

    #[test]
    fn a_served_call_acts_as_its_certificate_allows() {
        let root = Creds { uid: 0, gid: 0, groups: vec![] };
        assert_eq!(map_creds(root.clone()), root, "outside a call: as sent");
        let squashed = Identity {
            name: "h".into(),
            role: Client,
            uid_map: crate::uid_map::UidMap::SquashRoot,
            serial: "0b".into(),
        };
        let got = CALLER.sync_scope(Some(Arc::new(squashed)), || map_creds(root.clone()));
        assert_eq!(got.uid, crate::uid_map::NOBODY);
        assert_eq!(CALLER.sync_scope(None, || map_creds(root.clone())), root, "--insecure: as sent");
    }

    #[test]
    fn a_revoked_certificate_is_refused_every_call() {
        // A serial of its own: the other tests run alongside.
        let id = Identity { name: "p".into(), role: Admin, uid_map: Default::default(), serial: "5e".into() };
        let p = PeerInfo { remote: None, identity: Some(Arc::new(id)) };
        assert!(check("/tessera.Admin/AddMaster", Some(&p)).is_ok());
        crate::revoked::set(["5e".to_string()].into_iter().collect());
        let e = check("/tessera.Meta/NodeStatus", Some(&p)).unwrap_err();
        assert!(e.contains("revoked"), "{e}");
        crate::revoked::set(Default::default());
        assert!(check("/tessera.Admin/AddMaster", Some(&p)).is_ok());
    }
}
