//! Chunk access tokens (the idea of HDFS block tokens): a chunkserver
//! serves a chunk to a client, or stores one from it, only on a token the
//! cluster signed for that client.
//!
//! * **Read tokens** name one chunk. The masters grant them with a file's
//!   extents, after checking that the caller may read it (GetExtents); a
//!   chunkserver grants one to the client that just uploaded the chunk (it
//!   has the bytes, checked against the id).
//! * **Write tokens** name no chunk: a chunk's id is the hash of its bytes,
//!   which the chunkserver checks, so a token per chunk would add nothing
//!   but a round trip to the masters per chunk. They come with the ring
//!   (GetRing), which a writer fetches every few seconds anyway.
//! * A token is bound to the certificate it was granted to (its serial), so
//!   a token that leaks is useless to another holder, and it expires
//!   (`--chunk-token-ttl-s`, 1 h by default).
//! * Masters and chunkservers (by their certificates) need no token: a
//!   pipeline forward, a repair push and the masters' orders are theirs.
//!
//! A token is `version | key epoch | expiry (unix s) | access | scope |
//! MAC`, the MAC a BLAKE3 keyed hash over the rest, the chunk id (read
//! tokens) and the holder's serial. The keys live in the masters'
//! replicated state; the leader adds a new one every day and keeps the one
//! before, and chunkservers get them with every heartbeat reply.

use bytes::Bytes;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tessera_proto::ChunkId;

/// The request header a token travels in (binary metadata).
pub const HEADER: &str = "tessera-chunk-token-bin";

const VERSION: u8 = 1;
const MAC_LEN: usize = 16;
const LEN: usize = 1 + 4 + 8 + 1 + 1 + MAC_LEN;
/// A new key is used for granting only once chunkservers had this long to
/// learn it (a heartbeat is 1 s apart).
const KEY_SETTLE_S: u64 = 10;

/// What a token lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read = 1,
    Write = 2,
}

/// One signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey {
    pub epoch: u32,
    pub secret: [u8; 32],
    /// When the leader made it (unix seconds).
    pub created: u64,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey {{ epoch: {}, created: {} }}", self.epoch, self.created)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("chunk token missing")]
    Missing,
    #[error("chunk token malformed")]
    Malformed,
    #[error("chunk token signed with a key this server does not know (epoch {0})")]
    UnknownKey(u32),
    #[error("chunk token expired")]
    Expired,
    #[error("chunk token is not for this chunk and caller")]
    OtherChunk,
    #[error("chunk token does not allow this")]
    WrongAccess,
    #[error("chunk token is forged or not this caller's")]
    BadSignature,
}

/// The prefix of a refusal's message (clients recognise it).
pub const REFUSAL: &str = "chunk token";

/// The keys this process holds: the masters load them from their state,
/// chunkservers from each heartbeat's reply.
static KEYS: parking_lot::RwLock<Option<Arc<Vec<TokenKey>>>> = parking_lot::RwLock::new(None);

/// Replaces the keys this process holds.
pub fn set_keys(keys: Vec<TokenKey>) {
    let mut cur = KEYS.write();
    if cur.as_deref() != Some(&keys) {
        tracing::info!(epochs = ?keys.iter().map(|k| k.epoch).collect::<Vec<_>>(), "chunk token keys updated");
        *cur = Some(Arc::new(keys));
    }
}

/// The keys this process holds (a master sends them to chunkservers).
pub fn keys() -> Vec<TokenKey> {
    KEYS.read().as_deref().cloned().unwrap_or_default()
}

/// Keys as a heartbeat reply carries them to chunkservers.
pub fn to_pb(keys: &[TokenKey]) -> Vec<tessera_proto::pb::TokenKey> {
    keys.iter()
        .map(|k| tessera_proto::pb::TokenKey { epoch: k.epoch, secret: k.secret.to_vec().into(), created: k.created })
        .collect()
}

/// Keys from a heartbeat reply (malformed ones dropped).
pub fn from_pb(keys: &[tessera_proto::pb::TokenKey]) -> Vec<TokenKey> {
    keys.iter()
        .filter_map(|k| {
            Some(TokenKey { epoch: k.epoch, secret: k.secret.as_ref().try_into().ok()?, created: k.created })
        })
        .collect()
}

pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn mac(key: &TokenKey, head: &[u8], chunk: Option<&ChunkId>, holder: &str) -> [u8; MAC_LEN] {
    let mut h = blake3::Hasher::new_keyed(&key.secret);
    h.update(b"tessera chunk token v1\0");
    h.update(head);
    if let Some(c) = chunk {
        h.update(c.as_bytes());
    }
    h.update(holder.as_bytes());
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&h.finalize().as_bytes()[..MAC_LEN]);
    out
}

/// A token with `key` for `holder` (a certificate serial); `chunk` None
/// only for write tokens.
pub fn mint_with(key: &TokenKey, access: Access, chunk: Option<&ChunkId>, holder: &str, expires: u64) -> Bytes {
    let mut t = Vec::with_capacity(LEN);
    t.push(VERSION);
    t.extend_from_slice(&key.epoch.to_le_bytes());
    t.extend_from_slice(&expires.to_le_bytes());
    t.push(access as u8);
    t.push(u8::from(chunk.is_some()));
    let m = mac(key, &t, chunk, holder);
    t.extend_from_slice(&m);
    Bytes::from(t)
}

/// A token from this process's newest settled key, valid `ttl_s` from
/// now; None without keys (an `--insecure` cluster, or none made yet).
pub fn mint(access: Access, chunk: Option<&ChunkId>, holder: &str, ttl_s: u64) -> Option<Bytes> {
    mint_until(access, chunk, holder, now_unix().saturating_add(ttl_s))
}

/// `mint`, valid until `expires` (unix seconds).
pub fn mint_until(access: Access, chunk: Option<&ChunkId>, holder: &str, expires: u64) -> Option<Bytes> {
    let keys = KEYS.read().clone()?;
    let now = now_unix();
    let settled = keys.iter().filter(|k| k.created + KEY_SETTLE_S <= now).max_by_key(|k| k.epoch);
    let key = settled.or_else(|| keys.iter().min_by_key(|k| k.epoch))?;
    Some(mint_with(key, access, chunk, holder, expires))
}

/// When a well-formed token expires (unix seconds); unchecked.
pub fn expiry_of(token: &[u8]) -> Option<u64> {
    (token.len() == LEN).then(|| token[5..13].try_into().ok().map(u64::from_le_bytes)).flatten()
}

/// Whether `token` lets `holder` do `access` on `chunk` now, by `keys`.
pub fn check_with(
    keys: &[TokenKey],
    token: &[u8],
    access: Access,
    chunk: &ChunkId,
    holder: &str,
    now: u64,
) -> Result<(), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if token.len() != LEN || token[0] != VERSION {
        return Err(TokenError::Malformed);
    }
    let epoch = u32::from_le_bytes(token[1..5].try_into().map_err(|_| TokenError::Malformed)?);
    let expires = u64::from_le_bytes(token[5..13].try_into().map_err(|_| TokenError::Malformed)?);
    let (granted, scoped) = (token[13], token[14]);
    let key = keys.iter().find(|k| k.epoch == epoch).ok_or(TokenError::UnknownKey(epoch))?;
    let scope = match scoped {
        0 => None,
        1 => Some(chunk),
        _ => return Err(TokenError::Malformed),
    };
    let expect = mac(key, &token[..15], scope, holder);
    // Constant time: a MAC compared byte by byte would leak its prefix.
    let diff = expect.iter().zip(&token[15..]).fold(0u8, |d, (a, b)| d | (a ^ b));
    if diff != 0 {
        // Signed for another chunk, or not at all: a chunk-scoped token
        // checks against the chunk asked for.
        return Err(if scoped == 1 { TokenError::OtherChunk } else { TokenError::BadSignature });
    }
    if granted != access as u8 {
        return Err(TokenError::WrongAccess);
    }
    if access == Access::Read && scoped != 1 {
        return Err(TokenError::WrongAccess);
    }
    if now > expires {
        return Err(TokenError::Expired);
    }
    Ok(())
}

/// `check_with` this process's keys, now.
pub fn check(token: &[u8], access: Access, chunk: &ChunkId, holder: &str) -> Result<(), TokenError> {
    let keys = KEYS.read().clone().unwrap_or_default();
    check_with(&keys, token, access, chunk, holder, now_unix())
}

/// The token a request carries (empty: none).
pub fn of_request<T>(req: &tonic::Request<T>) -> Bytes {
    req.metadata().get_bin(HEADER).and_then(|v| v.to_bytes().ok()).unwrap_or_default()
}

/// Puts `token` on a request (none for an empty one).
pub fn attach<T>(req: &mut tonic::Request<T>, token: &[u8]) {
    if !token.is_empty() {
        req.metadata_mut().insert_bin(HEADER, tonic::metadata::MetadataValue::from_bytes(token));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(epoch: u32) -> TokenKey {
        TokenKey { epoch, secret: [epoch as u8; 32], created: 0 }
    }

    #[test]
    fn a_read_token_opens_its_chunk_for_its_holder_until_it_expires() {
        let (a, b) = (ChunkId::of(b"a"), ChunkId::of(b"b"));
        let keys = [key(1), key(2)];
        let t = mint_with(&keys[1], Access::Read, Some(&a), "serial-1", 100);
        assert_eq!(check_with(&keys, &t, Access::Read, &a, "serial-1", 100), Ok(()));
        assert_eq!(check_with(&keys, &t, Access::Read, &a, "serial-1", 101), Err(TokenError::Expired));
        assert_eq!(check_with(&keys, &t, Access::Read, &b, "serial-1", 50), Err(TokenError::OtherChunk));
        assert_eq!(check_with(&keys, &t, Access::Read, &a, "serial-2", 50), Err(TokenError::OtherChunk));
        assert_eq!(check_with(&keys, &t, Access::Write, &a, "serial-1", 50), Err(TokenError::WrongAccess));
        assert_eq!(check_with(&keys[..1], &t, Access::Read, &a, "serial-1", 50), Err(TokenError::UnknownKey(2)));
        assert_eq!(check_with(&keys, b"", Access::Read, &a, "serial-1", 50), Err(TokenError::Missing));
    }

    #[test]
    fn a_write_token_opens_any_chunk_but_not_reads_and_no_bit_can_change() {
        let (a, b) = (ChunkId::of(b"a"), ChunkId::of(b"b"));
        let keys = [key(7)];
        let t = mint_with(&keys[0], Access::Write, None, "s", 100);
        assert_eq!(check_with(&keys, &t, Access::Write, &a, "s", 1), Ok(()));
        assert_eq!(check_with(&keys, &t, Access::Write, &b, "s", 1), Ok(()));
        assert_eq!(check_with(&keys, &t, Access::Read, &a, "s", 1), Err(TokenError::WrongAccess));
        assert_eq!(check_with(&keys, &t, Access::Write, &a, "t", 1), Err(TokenError::BadSignature));
        for i in 0..t.len() {
            for bit in 0..8 {
                let mut bad = t.to_vec();
                bad[i] ^= 1 << bit;
                assert!(check_with(&keys, &bad, Access::Write, &a, "s", 1).is_err(), "byte {i} bit {bit}");
            }
        }
        assert_eq!(check_with(&keys, &t[1..], Access::Write, &a, "s", 1), Err(TokenError::Malformed));
    }
}
