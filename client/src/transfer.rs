//! Streaming file transfer. Upload: read a chunk, hash it once, ask its ring
//! owners which already hold it (dedup), pipeline it to the others; up to
//! `parallel` chunks are in flight, so memory stays at parallel x chunk size.
//! Download: fetch chunks in order with `parallel` read-ahead, verify each.

use crate::error::{ClientError, Result};
use crate::meta::MetaClient;
use crate::placement::RingView;
use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesOrdered, StreamExt};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tessera_proto::pb::{
    ChunkLocationsRequest, Cred, Extent, GetExtentsReply, GetExtentsRequest, ReportBadChunkRequest,
};
use tessera_proto::ChunkId;
use tessera_rpc::chunks::{BadReplica, ChunkIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A read token this close to its expiry (seconds) is renewed before use.
const RENEW_BEFORE_S: u64 = 60;

#[derive(Default, Debug)]
pub struct TransferStats {
    /// Bytes the client sent to chunkservers (once per chunk, not per replica).
    pub sent_bytes: AtomicU64,
    /// Bytes of chunks that were already fully replicated (dedup).
    pub skipped_bytes: AtomicU64,
}

#[derive(Clone)]
pub struct Transfer {
    pub meta: MetaClient,
    pub ring: Arc<RingView>,
    pub io: Arc<ChunkIo>,
    pub chunk_size: usize,
    pub parallel: usize,
    pub stats: Arc<TransferStats>,
    /// Chunk buffers in flight across all uploads, in MiB.
    pub buffers: Arc<tokio::sync::Semaphore>,
    /// Verified chunks kept for repeated reads (the FUSE mount sets one).
    pub cache: Option<Arc<crate::cache::ChunkCache>>,
}

impl Transfer {
    /// Uploads everything `reader` yields; returns the extents and total size.
    pub async fn upload<R: AsyncRead + Unpin>(
        &self,
        mut reader: R,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(Vec<Extent>, u64)> {
        let mut pending = FuturesOrdered::new();
        let mut extents = Vec::new();
        let mut size = 0u64;
        let mut eof = false;
        while !eof || !pending.is_empty() {
            while !eof && pending.len() < self.parallel.max(1) {
                // One memory budget across every concurrent upload (files in
                // parallel share it). Never wait for it while chunks of this
                // file are in flight: they would not progress meanwhile.
                let mib = self.chunk_size.div_ceil(1 << 20).max(1) as u32;
                let permit = match self.buffers.clone().try_acquire_many_owned(mib) {
                    Ok(p) => p,
                    Err(_) if !pending.is_empty() => break,
                    Err(_) => self
                        .buffers
                        .clone()
                        .acquire_many_owned(mib)
                        .await
                        .map_err(|e| ClientError::fs(libc::EIO, e.to_string()))?,
                };
                let mut buf = BytesMut::with_capacity(self.chunk_size);
                while buf.len() < self.chunk_size {
                    let n = reader.read_buf(&mut buf).await?;
                    if n == 0 {
                        eof = true;
                        break;
                    }
                }
                if buf.is_empty() {
                    break;
                }
                let data = buf.freeze();
                size += data.len() as u64;
                let t = self.clone();
                pending.push_back(async move {
                    let _permit = permit;
                    let id = ChunkId::of(&data);
                    let len = data.len() as u64;
                    t.store_chunk(id, data).await?;
                    Ok::<_, ClientError>((id, len))
                });
            }
            if let Some(r) = pending.next().await {
                let (id, len) = r?;
                progress(len);
                extents.push(Extent {
                    id: Bytes::copy_from_slice(id.as_bytes()),
                    len,
                    offset: 0,
                    ..Default::default()
                });
            }
        }
        Ok((extents, size))
    }

    fn reporter(&self) -> impl Fn(BadReplica) + Send + Sync + 'static {
        let meta = self.meta.clone();
        move |b: BadReplica| {
            let meta = meta.clone();
            tokio::spawn(async move {
                let req = ReportBadChunkRequest {
                    id: Bytes::copy_from_slice(b.id.as_bytes()),
                    server_addr: b.addr.clone(),
                    reason: b.reason.clone(),
                };
                let _ = meta
                    .call("report_bad_chunk", |mut c| {
                        let r = req.clone();
                        async move { c.report_bad_chunk(r).await }
                    })
                    .await;
            });
        }
    }

    /// Reads one chunk, verified, through the cache when there is one.
    pub async fn fetch_chunk(&self, id: ChunkId) -> Result<Bytes> {
        match &self.cache {
            None => self.fetch_chunk_uncached(id).await,
            Some(cache) => cache
                .get_or_fetch(id, || async { self.fetch_chunk_uncached(id).await.map_err(|e| e.to_string()) })
                .await
                .map_err(|msg| ClientError::Chunk { id: id.to_hex(), msg }),
        }
    }

    /// Reads one chunk, verified, trying ring owners then reported
    /// locations. A chunk nobody holds yet is asked for again for a few
    /// seconds: a reader may race a writer whose commit was sent while its
    /// chunks were still uploading (an unsealed commit), or a restarting
    /// chunkserver.
    async fn fetch_chunk_uncached(&self, id: ChunkId) -> Result<Bytes> {
        let mut backoff = tessera_rpc::Backoff::new(Duration::from_millis(20), Duration::from_millis(500))
            .within(Duration::from_secs(3));
        loop {
            match self.fetch_chunk_once(id).await {
                Err(e) if !backoff.expired() => {
                    tracing::debug!(chunk = %id, error = %e, "no replica answered; asking again");
                    backoff.wait().await;
                }
                r => return r,
            }
        }
    }

    /// A file's extents as `cred` may read them, and the read tokens that
    /// come with them (kept for reading its chunks).
    pub async fn extents_as(&self, ino: u64, cred: Option<Cred>) -> Result<GetExtentsReply> {
        let req = GetExtentsRequest { ino, cred: cred.clone() };
        let reply = self
            .meta
            .read("get_extents", |mut c| {
                let r = req.clone();
                async move { c.get_extents(r).await }
            })
            .await?;
        self.io.tokens().learn_extents(ino, cred, reply.extents.iter().map(|e| (e.id.as_ref(), &e.token)));
        Ok(reply)
    }

    /// Asks the masters again for the read token of `id` (the file it came
    /// with, as whom it was read), when it is about to run out or a
    /// chunkserver refused it; false when there is nothing to ask with.
    async fn renew_read_token(&self, id: &ChunkId) -> Result<bool> {
        let Some(src) = self.io.tokens().source(id) else { return Ok(false) };
        tracing::debug!(chunk = %id, ino = src.ino, "renewing read tokens");
        self.extents_as(src.ino, src.cred).await?;
        Ok(true)
    }

    async fn fetch_chunk_once(&self, id: ChunkId) -> Result<Bytes> {
        let token = self.io.tokens().read(&id);
        let now = tessera_rpc::chunk_token::now_unix();
        if tessera_rpc::chunk_token::expiry_of(&token).is_some_and(|e| e < now + RENEW_BEFORE_S) {
            self.renew_read_token(&id).await?;
        }
        match self.fetch_chunk_trying_all(id).await {
            Err(e)
                if e.to_string().contains(tessera_rpc::chunk_token::REFUSAL) && self.renew_read_token(&id).await? =>
            {
                self.fetch_chunk_trying_all(id).await
            }
            r => r,
        }
    }

    async fn fetch_chunk_trying_all(&self, id: ChunkId) -> Result<Bytes> {
        let on_bad = self.reporter();
        let cands = self.ring.read_candidates(&id).await?;
        match self.io.get_verified(&cands, id, &on_bad).await {
            Ok(b) => Ok(b),
            Err(first) => {
                let req = ChunkLocationsRequest { ids: vec![Bytes::copy_from_slice(id.as_bytes())] };
                let locs = self
                    .meta
                    .call("chunk_locations", |mut c| {
                        let r = req.clone();
                        async move { c.chunk_locations(r).await }
                    })
                    .await?;
                let more: Vec<String> =
                    locs.locations.into_iter().flat_map(|l| l.addrs).filter(|a| !cands.contains(a)).collect();
                if more.is_empty() {
                    return Err(first.into());
                }
                Ok(self.io.get_verified(&more, id, &on_bad).await?)
            }
        }
    }

    /// The bytes of one extent (a slice of a chunk, or a hole).
    pub async fn fetch_extent(&self, e: &Extent) -> Result<Bytes> {
        if e.id.is_empty() {
            return Ok(Bytes::from(vec![0u8; e.len as usize]));
        }
        let id =
            ChunkId::from_slice(&e.id).map_err(|x| ClientError::Chunk { id: String::new(), msg: x.to_string() })?;
        let b = self.fetch_chunk(id).await?;
        let end = e.offset.saturating_add(e.len);
        if (b.len() as u64) < end {
            return Err(ClientError::Chunk {
                id: id.to_hex(),
                msg: format!("chunk has {} bytes, extent needs {end}", b.len()),
            });
        }
        Ok(b.slice(e.offset as usize..end as usize))
    }

    /// Streams a file's content into `w`, `size` bytes in all.
    pub async fn download<W: AsyncWrite + Unpin>(
        &self,
        extents: &[Extent],
        size: u64,
        w: &mut W,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        let mut left = size;
        // Holes go out 1 MiB of zeros at a time, however long they are.
        let pieces = extents.iter().flat_map(|e| {
            let step = if e.id.is_empty() { 1 << 20 } else { e.len.max(1) };
            (0..e.len.div_ceil(step)).map(move |i| {
                let len = step.min(e.len - i * step);
                Extent {
                    id: e.id.clone(),
                    offset: if e.id.is_empty() { 0 } else { e.offset },
                    len,
                    ..Default::default()
                }
            })
        });
        let mut stream = futures::stream::iter(pieces)
            .map(|e| {
                let t = self.clone();
                async move { t.fetch_extent(&e).await }
            })
            .buffered(self.parallel.max(1));
        while let Some(r) = stream.next().await {
            if left == 0 {
                break;
            }
            let b = r?;
            let take = (b.len() as u64).min(left) as usize;
            w.write_all(&b[..take]).await?;
            left -= take as u64;
            progress(take as u64);
        }
        // Past the last extent the file reads as zeros (truncate up).
        let zeros = vec![0u8; 1 << 20];
        while left > 0 {
            let n = (left as usize).min(zeros.len());
            w.write_all(&zeros[..n]).await?;
            left -= n as u64;
        }
        w.flush().await?;
        Ok(())
    }

    /// Reads `len` bytes at `offset` of a file (short at end of file).
    /// Like `read_range`, but a range inside one chunk comes back as a
    /// slice of the (cached) chunk, without a copy: sequential reads through
    /// a mount are mostly that.
    pub async fn read_range_bytes(&self, extents: &[Extent], size: u64, offset: u64, len: u64) -> Result<Bytes> {
        let end = size.min(offset.saturating_add(len));
        if offset >= end {
            return Ok(Bytes::new());
        }
        let mut pos = 0u64;
        for e in extents {
            let (s, t) = (pos, pos + e.len);
            pos = t;
            if t <= offset {
                continue;
            }
            if s <= offset && end <= t && !e.id.is_empty() {
                let b = self.fetch_extent(e).await?;
                return Ok(b.slice((offset - s) as usize..(end - s) as usize));
            }
            break;
        }
        self.read_range(extents, size, offset, len).await.map(Bytes::from)
    }

    pub async fn read_range(&self, extents: &[Extent], size: u64, offset: u64, len: u64) -> Result<Vec<u8>> {
        let end = size.min(offset.saturating_add(len));
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut pos = 0u64;
        let mut wanted = Vec::new();
        for e in extents {
            let (s, t) = (pos, pos + e.len);
            pos = t;
            if t <= offset || s >= end {
                continue;
            }
            if e.id.is_empty() {
                // A hole: only the part asked for (it may be gigabytes long).
                let (a, b) = (s.max(offset), t.min(end));
                wanted.push((a, Extent { id: e.id.clone(), offset: 0, len: b - a, ..Default::default() }));
                continue;
            }
            wanted.push((s, e.clone()));
        }
        let mut stream = futures::stream::iter(wanted)
            .map(|(s, e)| {
                let t = self.clone();
                async move { t.fetch_extent(&e).await.map(|b| (s, b)) }
            })
            .buffered(self.parallel.max(1));
        let mut cursor = offset;
        while let Some(r) = stream.next().await {
            let (s, b) = r?;
            let from = cursor.max(s) - s;
            let to = (end.min(s + b.len() as u64)) - s;
            if from < to {
                out.extend_from_slice(&b[from as usize..to as usize]);
                cursor = s + to;
            }
        }
        out.resize((end - offset) as usize, 0);
        Ok(out)
    }
}
