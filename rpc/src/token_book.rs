//! The chunk access tokens a client holds (chunk_token.rs): the write token
//! that came with the ring, and a read token per chunk, from a file's
//! extents (with the file and the credentials they were granted for, so an
//! expired one can be renewed) or from the chunkserver the client uploaded
//! the chunk to.

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use tessera_proto::pb::Cred;
use tessera_proto::ChunkId;

/// Read tokens held at most (about 100 bytes each): a client that read
/// more distinct chunks within a token's life drops the expired ones, then
/// all, and learns them again as files' extents are read again.
const READ_TOKENS: usize = 1 << 20;

/// Which file a read token came with, and as whom (0: an upload).
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    pub ino: u64,
    pub cred: Option<Cred>,
}

#[derive(Default)]
pub struct TokenBook {
    write: RwLock<Bytes>,
    read: Mutex<HashMap<ChunkId, (Bytes, u64)>>,
    /// The credentials each file's extents were read as.
    creds: Mutex<HashMap<u64, Option<Cred>>>,
}

impl TokenBook {
    /// The write token the ring brought (an empty one is ignored: an
    /// `--insecure` cluster grants none).
    pub fn set_write(&self, token: Bytes) {
        if !token.is_empty() {
            *self.write.write() = token;
        }
    }

    pub fn write(&self) -> Bytes {
        self.write.read().clone()
    }

    /// Read tokens that came with file `ino`'s extents, read as `cred`.
    pub fn learn_extents<'a>(&self, ino: u64, cred: Option<Cred>, grants: impl Iterator<Item = (&'a [u8], &'a Bytes)>) {
        let mut read = self.read.lock();
        let mut any = false;
        for (id, token) in grants {
            if let (Ok(id), false) = (ChunkId::from_slice(id), token.is_empty()) {
                read.insert(id, (token.clone(), ino));
                any = true;
            }
        }
        Self::bound(&mut read);
        drop(read);
        if any {
            let mut creds = self.creds.lock();
            if creds.len() >= READ_TOKENS {
                creds.clear();
            }
            creds.insert(ino, cred);
        }
    }

    /// The read token a chunkserver gave for a chunk this client uploaded.
    pub fn learn_upload(&self, id: ChunkId, token: Bytes) {
        if token.is_empty() {
            return;
        }
        let mut read = self.read.lock();
        // A token from a file's extents keeps its file (to renew it by).
        let ino = read.get(&id).map_or(0, |(_, ino)| *ino);
        read.insert(id, (token, ino));
        Self::bound(&mut read);
    }

    /// The read token held for `id` (empty: none).
    pub fn read(&self, id: &ChunkId) -> Bytes {
        self.read.lock().get(id).map(|(t, _)| t.clone()).unwrap_or_default()
    }

    /// Where the token for `id` came from, to ask for a fresh one.
    pub fn source(&self, id: &ChunkId) -> Option<Source> {
        let ino = self.read.lock().get(id).map(|(_, ino)| *ino).filter(|i| *i != 0)?;
        let cred = self.creds.lock().get(&ino).cloned()?;
        Some(Source { ino, cred })
    }

    fn bound(read: &mut HashMap<ChunkId, (Bytes, u64)>) {
        if read.len() < READ_TOKENS {
            return;
        }
        let now = crate::chunk_token::now_unix();
        read.retain(|_, (t, _)| crate::chunk_token::expiry_of(t).is_some_and(|e| e >= now));
        if read.len() >= READ_TOKENS {
            read.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_kept_with_their_file_and_an_upload_keeps_the_file() {
        let b = TokenBook::default();
        let (a, c) = (ChunkId::of(b"a"), ChunkId::of(b"c"));
        let cred = Cred { uid: 5, gid: 6, groups: vec![] };
        let (ta, tc) = (Bytes::from_static(b"ta"), Bytes::from_static(b"tc"));
        b.learn_extents(9, Some(cred.clone()), [(a.as_bytes().as_slice(), &ta)].into_iter());
        b.learn_upload(c, tc.clone());
        assert_eq!(b.read(&a), ta);
        assert_eq!(b.source(&a), Some(Source { ino: 9, cred: Some(cred.clone()) }));
        assert_eq!(b.source(&c), None, "an upload has no file to renew by");
        b.learn_upload(a, Bytes::from_static(b"new"));
        assert_eq!(b.read(&a), Bytes::from_static(b"new"));
        assert_eq!(b.source(&a).map(|s| s.ino), Some(9));
        b.set_write(Bytes::new());
        assert!(b.write().is_empty());
        b.set_write(Bytes::from_static(b"w"));
        assert_eq!(b.write(), Bytes::from_static(b"w"));
    }
}
