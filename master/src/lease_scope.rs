//! Which mount a request comes from, and what a change touches: the two
//! inputs of cache-lease revocation (leases.rs).
//!
//! A mount names its lease session in a request header; a tower layer puts
//! it in a task-local for the request's handler, so that every change,
//! wherever it is proposed, knows whose caches it need not revoke.

use crate::fsm::read;
use crate::leases::Touched;
use crate::types::Op;
use rocksdb::DB;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

tokio::task_local! {
    static SESSION: Option<Arc<str>>;
}

/// The lease session of the mount whose request is being handled.
pub fn current_session() -> Option<Arc<str>> {
    SESSION.try_with(|s| s.clone()).ok().flatten()
}

/// Runs each request's handler with its session header in scope.
#[derive(Clone, Copy, Default)]
pub struct SessionLayer;

impl<S> tower::Layer<S> for SessionLayer {
    type Service = SessionScope<S>;
    fn layer(&self, inner: S) -> SessionScope<S> {
        SessionScope(inner)
    }
}

#[derive(Clone)]
pub struct SessionScope<S>(S);

impl<S, B> tower::Service<http::Request<B>> for SessionScope<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let session = req
            .headers()
            .get(tessera_proto::status::SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .map(Arc::from);
        Box::pin(SESSION.scope(session, self.0.call(req)))
    }
}

/// The inode a name refers to now, if any (no permission check: this only
/// widens what is revoked).
fn ino_of(db: &DB, parent: u64, name: &[u8]) -> Option<u64> {
    read::lookup(db, &crate::types::Cred::root(), parent, name).ok().map(|i| i.ino)
}

/// What `op` will change, read before it is proposed (the inodes names
/// refer to are looked up now: after the change they may be gone).
pub fn touched(db: &DB, op: &Op) -> Touched {
    let mut t = Touched::default();
    let name = |t: &mut Touched, parent: u64, n: &[u8], removes: bool| {
        t.inos.push(parent);
        t.entries.push((parent, n.to_vec()));
        if removes {
            t.inos.extend(ino_of(db, parent, n));
        }
    };
    match op {
        Op::Mkdir { parent, name: n, .. } | Op::Symlink { parent, name: n, .. } => name(&mut t, *parent, n, false),
        // A create may truncate an existing file.
        Op::Create { parent, name: n, .. } => name(&mut t, *parent, n, true),
        Op::CreateBehind(c) => name(&mut t, c.parent, &c.name, false),
        Op::Link { ino, new_parent, new_name } => {
            t.inos.push(*ino);
            name(&mut t, *new_parent, new_name, false);
        }
        Op::Unlink { parent, name: n, .. } | Op::Rmdir { parent, name: n } => name(&mut t, *parent, n, true),
        Op::UnlinkMany { items, .. } => {
            for i in items {
                name(&mut t, i.parent, &i.name, true);
            }
        }
        Op::Rename { parent, name: n, new_parent, new_name, .. }
        | Op::RenameSeen { parent, name: n, new_parent, new_name, .. } => {
            name(&mut t, *parent, n, true);
            name(&mut t, *new_parent, new_name, true);
        }
        Op::SetAttr { ino, .. } | Op::SetXattr { ino, .. } | Op::RemoveXattr { ino, .. } => t.inos.push(*ino),
        Op::Commit { ino, create, .. } => {
            t.inos.push(*ino);
            if let Some(c) = create {
                name(&mut t, c.parent, &c.name, false);
            }
        }
        Op::SettleUnsealed { revert, .. } => t.inos.extend(revert.iter().map(|(ino, _)| *ino)),
        Op::TouchAtimes { inos } => {
            t.inos.extend(inos);
            (t.attrs_only, t.include_origin) = (true, true);
        }
        _ => {}
    }
    t.inos.sort_unstable();
    t.inos.dedup();
    t
}
