//! Who may read or store chunks here (tessera_rpc::chunk_token): masters
//! and chunkservers by their certificates (the masters' orders, pipeline
//! forwards, repair pushes); clients and admins on a chunk token the
//! cluster signed for them. An `--insecure` server has no identities and
//! lets every caller in.

use bytes::Bytes;
use std::time::{Duration, Instant};
use tessera_proto::ChunkId;
use tessera_rpc::certs::Role;
use tessera_rpc::chunk_token::{self, Access, TokenError};
use tonic::{Request, Status};

/// A caller a token was checked for.
pub struct Holder {
    /// Its certificate's serial (what tokens are bound to).
    pub serial: String,
    /// When the token it showed expires (unix seconds).
    pub expires: u64,
}

impl Holder {
    /// A read token for `id`, for this caller, good as long as the token it
    /// showed: it just sent the chunk's bytes.
    pub fn read_token(&self, id: &ChunkId) -> Bytes {
        chunk_token::mint_until(Access::Read, Some(id), &self.serial, self.expires).unwrap_or_default()
    }
}

/// Asks the masters for the token keys when a client shows a token signed
/// with one this server has not heard of (a key the leader just made, or a
/// server that just started): its next heartbeat would bring it within a
/// second, but the client should not wait for that.
pub struct KeyFetch {
    meta: Option<tessera_rpc::meta::MetaClient>,
    /// When the last fetch began: at most one per FETCH_EVERY.
    last: tokio::sync::Mutex<Option<Instant>>,
}

const FETCH_EVERY: Duration = Duration::from_millis(200);

impl KeyFetch {
    pub fn new(meta: Option<tessera_rpc::meta::MetaClient>) -> KeyFetch {
        KeyFetch { meta, last: tokio::sync::Mutex::new(None) }
    }

    async fn fetch(&self) {
        let Some(meta) = &self.meta else { return };
        let mut last = self.last.lock().await;
        if last.is_some_and(|t| t.elapsed() < FETCH_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let asked = tokio::time::timeout(
            Duration::from_secs(2),
            meta.control("token_keys", |mut c| async move { c.token_keys(tessera_proto::pb::Empty {}).await }),
        )
        .await;
        match asked {
            Ok(Ok(r)) if !r.keys.is_empty() => chunk_token::set_keys(chunk_token::from_pb(&r.keys)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "fetching chunk token keys failed"),
            Err(_) => tracing::debug!("fetching chunk token keys timed out"),
        }
    }
}

/// Lets the call in, or refuses it (PERMISSION_DENIED, "chunk token …").
/// `chunk` is the chunk asked for (None: a write stream, whose token names
/// no chunk). Some(holder) when the caller needed a token.
pub async fn admit<T>(
    keys: &KeyFetch,
    req: &Request<T>,
    access: Access,
    chunk: Option<&ChunkId>,
) -> Result<Option<Holder>, Status> {
    let Some(id) = tessera_rpc::authz::peer_of(req) else {
        return Ok(None); // --insecure
    };
    if matches!(id.role, Role::Master | Role::Chunkserver) {
        return Ok(None);
    }
    let token = chunk_token::of_request(req);
    // A write token names no chunk: any id checks it.
    let any = ChunkId([0; 32]);
    let mut checked = chunk_token::check(&token, access, chunk.unwrap_or(&any), &id.serial);
    if matches!(checked, Err(TokenError::UnknownKey(_))) {
        keys.fetch().await;
        checked = chunk_token::check(&token, access, chunk.unwrap_or(&any), &id.serial);
    }
    match checked {
        Ok(()) => Ok(Some(Holder { serial: id.serial.clone(), expires: chunk_token::expiry_of(&token).unwrap_or(0) })),
        Err(e) => {
            tracing::info!(peer = %id.name, error = %e, "chunk access refused");
            // EACCES: the server is alive and refused (a writer does not
            // pass it over; it asks the masters again and retries).
            Err(tessera_proto::status::errno_status(libc::EACCES, e.to_string()))
        }
    }
}
