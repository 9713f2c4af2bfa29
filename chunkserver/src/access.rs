//! Who may read or store chunks here (tessera_rpc::chunk_token): masters
//! and chunkservers by their certificates (the masters' orders, pipeline
//! forwards, repair pushes); clients and admins on a chunk token the
//! cluster signed for them. An `--insecure` server has no identities and
//! lets every caller in.

use bytes::Bytes;
use tessera_proto::ChunkId;
use tessera_rpc::certs::Role;
use tessera_rpc::chunk_token::{self, Access};
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

/// Lets the call in, or refuses it (PERMISSION_DENIED, "chunk token …").
/// `chunk` is the chunk asked for (None: a write stream, whose token names
/// no chunk). Some(holder) when the caller needed a token.
pub fn admit<T>(req: &Request<T>, access: Access, chunk: Option<&ChunkId>) -> Result<Option<Holder>, Status> {
    let Some(id) = tessera_rpc::authz::peer_of(req) else {
        return Ok(None); // --insecure
    };
    if matches!(id.role, Role::Master | Role::Chunkserver) {
        return Ok(None);
    }
    let token = chunk_token::of_request(req);
    // A write token names no chunk: any id checks it.
    let any = ChunkId([0; 32]);
    match chunk_token::check(&token, access, chunk.unwrap_or(&any), &id.serial) {
        Ok(()) => Ok(Some(Holder { serial: id.serial.clone(), expires: chunk_token::expiry_of(&token).unwrap_or(0) })),
        Err(e) => {
            tracing::info!(peer = %id.name, error = %e, "chunk access refused");
            // EACCES: the server is alive and refused (a writer does not
            // pass it over; it asks the masters again and retries).
            Err(tessera_proto::status::errno_status(libc::EACCES, e.to_string()))
        }
    }
}
