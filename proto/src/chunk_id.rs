//! A chunk's identity is the BLAKE3 hash of its bytes.

use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ChunkId(pub [u8; 32]);

/// A BLAKE3 hash is uniform already, and finding two contents whose ids
/// share their first 8 bytes costs 2^32 hashes even for a birthday pair: so
/// maps and sets of ids hash those 8 bytes, not all 32 with a length
/// prefix (the leader's repair pass hashes every chunk id several times).
/// Equality still compares all 32 bytes.
impl std::hash::Hash for ChunkId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut head = [0u8; 8];
        head.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(head));
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid chunk id: {0}")]
pub struct BadChunkId(pub String);

impl ChunkId {
    pub fn of(data: &[u8]) -> ChunkId {
        ChunkId(*blake3::hash(data).as_bytes())
    }

    pub fn from_hash(h: blake3::Hash) -> ChunkId {
        ChunkId(*h.as_bytes())
    }

    pub fn from_slice(b: &[u8]) -> Result<ChunkId, BadChunkId> {
        let arr: [u8; 32] = b.try_into().map_err(|_| BadChunkId(format!("{} bytes, expected 32", b.len())))?;
        Ok(ChunkId(arr))
    }

    pub fn from_hex(s: &str) -> Result<ChunkId, BadChunkId> {
        let v = hex::decode(s).map_err(|e| BadChunkId(format!("{s}: {e}")))?;
        ChunkId::from_slice(&v)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Position on the placement ring: the hash is already uniform.
    pub fn ring_position(&self) -> u64 {
        u64::from_be_bytes(self.0[..8].try_into().unwrap_or([0; 8]))
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", &self.to_hex()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = ChunkId::of(b"hello");
        assert_eq!(ChunkId::from_hex(&id.to_hex()).unwrap(), id);
        assert!(ChunkId::from_hex("zz").is_err());
        assert!(ChunkId::from_slice(&[1, 2, 3]).is_err());
    }

    #[test]
    fn ids_sharing_their_hashed_head_stay_distinct() {
        let a = ChunkId::of(b"a");
        let mut b = a;
        b.0[31] ^= 1;
        let set: std::collections::HashSet<ChunkId> = [a, b, a].into_iter().collect();
        assert_eq!(set.len(), 2);
        assert!(set.contains(&a) && set.contains(&b));
    }
}
