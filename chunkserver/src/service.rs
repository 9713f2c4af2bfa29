//! The chunk data-path gRPC service. A put streams into the local store while
//! the same frames are forwarded to the next replica (HDFS-style pipeline), so
//! the client sends every byte once and the last hop acknowledges first.

use crate::access;
use crate::error::StoreError;
use crate::store::ChunkStore;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tessera_proto::pb::chunk_client::ChunkClient;
use tessera_proto::pb::chunk_server::Chunk;
use tessera_proto::pb::*;
use tessera_proto::{ChunkId, MAX_CHUNK_SIZE, MAX_FRAME, READ_FRAME};
use tessera_rpc::chunk_token::{self, Access, TokenError};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

pub struct ChunkService {
    pub store: Arc<ChunkStore>,
    pub id: String,
    pub addr: String,
    /// Repair copies leaving this server share this bandwidth budget.
    pub repair_limit: Arc<crate::throttle::Throttle>,
    /// Turns true when the process is asked to stop: presence streams end
    /// then, so the leader learns at once and the server's graceful stop
    /// does not wait out its grace for them.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Presence streams open at once (a leader holds one; a few more while
    /// leadership moves): any caller could open them, so they are bounded.
    pub presence_slots: Arc<tokio::sync::Semaphore>,
    /// Fetches token keys it has not heard of yet.
    pub keys: access::KeyFetch,
    /// Where a pipeline may forward to (peers.rs).
    pub peers: crate::peers::Peers,
}

/// At most this many presence streams at once per chunkserver.
pub const PRESENCE_STREAMS: usize = 16;

/// Stores a small chunk whole; returns whether it was already here.
async fn store_small(store: &ChunkStore, id: &[u8], data: Bytes) -> Result<bool, Status> {
    let id = ChunkId::from_slice(id).map_err(|e| bad(e.to_string()))?;
    if data.len() > MAX_FRAME {
        return Err(bad(format!("a small chunk of {} bytes exceeds {} bytes", data.len(), MAX_FRAME)));
    }
    tracing::debug!(chunk = %id, len = data.len(), "put small chunk");
    if store.has(&id) {
        return Ok(true);
    }
    let mut w = store.begin(id, data.len() as u64).await?;
    w.write(data).await?;
    w.finish().await?;
    Ok(false)
}

/// A read token for the client that put a small chunk: it sent the bytes
/// (checked against the id here when the chunk was already stored, since
/// `store_small` then skips them).
fn small_read_token(holder: Option<&access::Holder>, id: &[u8], data: &[u8], already_present: bool) -> Bytes {
    let Some(h) = holder else { return Bytes::new() };
    let Ok(id) = ChunkId::from_slice(id) else { return Bytes::new() };
    if already_present && ChunkId::of(data) != id {
        return Bytes::new();
    }
    h.read_token(&id)
}

/// How often a presence stream (held open by the master leader) ticks.
/// Small puts of one PutSmallStream being stored at once: more than a
/// mount keeps in flight to one server (its upload parallelism), so only a
/// client that stops reading its results ever waits on it.
const SMALL_PUTS_PER_STREAM: usize = 256;
const PRESENCE_TICK: Duration = Duration::from_secs(5);

const FORWARD_TIMEOUT: Duration = Duration::from_secs(120);
/// A downstream hop that takes no frame for this long (a stopped process
/// still accepts connections) is dropped from the pipeline: this server
/// keeps storing, and the client writes that replica elsewhere.
const FORWARD_STALL: Duration = Duration::from_secs(5);
/// How long the downstream's verdict is awaited once this copy is durable.
const FORWARD_VERDICT: Duration = Duration::from_secs(10);

fn bad(msg: impl Into<String>) -> Status {
    tessera_proto::status::errno_status(libc::EINVAL, msg)
}

/// Opens the next hop of the pipeline and returns the sender that feeds it
/// and the task that yields the addresses it (and hops after it) stored on.
fn spawn_forward(
    header: &PutChunkHeader,
) -> (tokio::sync::mpsc::Sender<PutChunkFrame>, tokio::task::JoinHandle<Vec<String>>) {
    let next = header.forward[0].clone();
    let rest = header.forward[1..].to_vec();
    let (tx, rx) = tokio::sync::mpsc::channel::<PutChunkFrame>(4);
    let first = PutChunkFrame {
        header: Some(PutChunkHeader { id: header.id.clone(), len: header.len, forward: rest }),
        data: Bytes::new(),
    };
    let task = tokio::spawn(async move {
        let run = async {
            let ch = tessera_rpc::pool()
                .channel(&next, tessera_rpc::Profile::Bulk, tessera_rpc::Role::Chunkserver)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            let mut c = ChunkClient::new(ch)
                .max_decoding_message_size(tessera_proto::GRPC_MAX_MESSAGE)
                .max_encoding_message_size(tessera_proto::GRPC_MAX_MESSAGE);
            let stream = tokio_stream::once(first).chain(ReceiverStream::new(rx));
            let r = c.put_chunk(stream).await?;
            Ok::<_, Status>(r.into_inner().stored)
        };
        match tokio::time::timeout(FORWARD_TIMEOUT, run).await {
            Ok(Ok(stored)) => stored,
            Ok(Err(e)) => {
                tracing::warn!(next = %next, error = %e.message(), "pipeline forward failed");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(next = %next, "pipeline forward timed out");
                Vec::new()
            }
        }
    });
    (tx, task)
}

use tokio_stream::StreamExt;

#[tonic::async_trait]
impl Chunk for ChunkService {
    #[tracing::instrument(skip_all, fields(server = %self.id))]
    async fn put_chunk(&self, req: Request<Streaming<PutChunkFrame>>) -> Result<Response<PutChunkReply>, Status> {
        let holder = access::admit(&self.keys, &req, Access::Write, None).await?;
        let mut stream = req.into_inner();
        let first = stream.message().await?.ok_or_else(|| bad("empty put stream"))?;
        let header = first.header.clone().ok_or_else(|| bad("first frame carries no header"))?;
        let id = ChunkId::from_slice(&header.id).map_err(|e| bad(e.to_string()))?;
        if header.len > MAX_CHUNK_SIZE {
            return Err(bad(format!("chunk of {} bytes exceeds the {} byte limit", header.len, MAX_CHUNK_SIZE)));
        }
        tracing::debug!(chunk = %id, len = header.len, forward = ?header.forward, "put chunk");
        if let Some(why) = self.peers.refusal(&header.forward) {
            tracing::warn!(chunk = %id, "refused {why}");
            return Err(Status::permission_denied(format!("refused: {why}")));
        }
        let already_present = self.store.has(&id);
        let mut writer = if already_present { None } else { Some(self.store.begin(id, header.len).await?) };
        // A client that sends a chunk already here still earns a read token
        // only with the bytes that hash to its id (the writer checks those
        // it stores).
        let mut present_hash = (already_present && holder.is_some()).then(blake3::Hasher::new);
        let (mut fwd_tx, fwd_task) = if header.forward.is_empty() {
            (None, None)
        } else {
            let (tx, task) = spawn_forward(&header);
            (Some(tx), Some(task))
        };
        let mut frame = Some(first);
        while let Some(f) = frame.take() {
            if f.data.len() > MAX_FRAME {
                return Err(bad(format!("frame of {} bytes exceeds {} bytes", f.data.len(), MAX_FRAME)));
            }
            if !f.data.is_empty() {
                if let Some(w) = writer.as_mut() {
                    w.write(f.data.clone()).await?;
                }
                if let Some(h) = present_hash.as_mut() {
                    h.update(&f.data);
                }
                if let Some(tx) = fwd_tx.as_ref() {
                    let out = PutChunkFrame { header: None, data: f.data.clone() };
                    if !matches!(tokio::time::timeout(FORWARD_STALL, tx.send(out)).await, Ok(Ok(()))) {
                        // The downstream hop failed or stalled; keep storing
                        // locally, the client learns the shortfall from `stored`.
                        tracing::warn!(chunk = %id, next = %header.forward[0], "pipeline hop dropped");
                        fwd_tx = None;
                    }
                }
            }
            frame = stream.message().await?;
        }
        if let Some(w) = writer {
            w.finish().await?;
        }
        drop(fwd_tx);
        let mut stored = vec![self.addr.clone()];
        if let Some(mut task) = fwd_task {
            match tokio::time::timeout(FORWARD_VERDICT, &mut task).await {
                Ok(r) => stored.extend(r.unwrap_or_default()),
                Err(_) => {
                    tracing::warn!(chunk = %id, next = %header.forward[0], "pipeline hop gave no verdict; dropped");
                    task.abort();
                }
            }
        }
        let sent_the_bytes = present_hash.is_none_or(|h| ChunkId::from_hash(h.finalize()) == id);
        let read_token = holder.filter(|_| sent_the_bytes).map(|h| h.read_token(&id)).unwrap_or_default();
        Ok(Response::new(PutChunkReply { stored, already_present, read_token }))
    }

    #[tracing::instrument(skip_all, fields(server = %self.id))]
    async fn put_small_chunk(&self, req: Request<PutSmallChunkRequest>) -> Result<Response<PutChunkReply>, Status> {
        let holder = access::admit(&self.keys, &req, Access::Write, None).await?;
        let r = req.into_inner();
        let already_present = store_small(&self.store, &r.id, r.data.clone()).await?;
        let read_token = small_read_token(holder.as_ref(), &r.id, &r.data, already_present);
        Ok(Response::new(PutChunkReply { stored: vec![self.addr.clone()], already_present, read_token }))
    }

    type PutSmallStreamStream = ReceiverStream<Result<PutSmallResult, Status>>;

    /// A client's small puts on one stream. Each put runs on its own task
    /// (one waiting for its fsync must not hold back those behind it, and
    /// concurrent ones share the journal's fsync); results go back as they
    /// finish, paired by `seq`.
    #[tracing::instrument(skip_all, fields(server = %self.id))]
    async fn put_small_stream(
        &self,
        req: Request<Streaming<PutSmallFrame>>,
    ) -> Result<Response<Self::PutSmallStreamStream>, Status> {
        let holder = access::admit(&self.keys, &req, Access::Write, None).await?.map(Arc::new);
        let mut inbound = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let store = self.store.clone();
        // Puts of one stream in flight at once: a client that sends without
        // reading its results stops being read (HTTP/2 flow control then
        // holds it back) instead of piling up tasks and their data here.
        let slots = Arc::new(tokio::sync::Semaphore::new(SMALL_PUTS_PER_STREAM));
        tokio::spawn(async move {
            while let Ok(Some(f)) = inbound.message().await {
                if holder.as_ref().is_some_and(|h| chunk_token::now_unix() > h.expires) {
                    // The stream's token ran out: the client opens another
                    // with a fresh one.
                    let _ = tx.send(Err(Status::permission_denied(TokenError::Expired.to_string()))).await;
                    return;
                }
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let (store, tx, holder) = (store.clone(), tx.clone(), holder.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    let reply = match store_small(&store, &f.id, f.data.clone()).await {
                        Ok(already_present) => PutSmallResult {
                            seq: f.seq,
                            already_present,
                            read_token: small_read_token(holder.as_deref(), &f.id, &f.data, already_present),
                            ..Default::default()
                        },
                        Err(st) => {
                            let (code, message, errno) = tessera_proto::status::to_fields(&st);
                            PutSmallResult {
                                seq: f.seq,
                                already_present: false,
                                code,
                                message,
                                errno,
                                ..Default::default()
                            }
                        }
                    };
                    let _ = tx.send(Ok(reply)).await;
                });
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type GetChunkStream = ReceiverStream<Result<GetChunkFrame, Status>>;

    #[tracing::instrument(skip_all, fields(server = %self.id))]
    async fn get_chunk(&self, req: Request<GetChunkRequest>) -> Result<Response<Self::GetChunkStream>, Status> {
        let id = ChunkId::from_slice(&req.get_ref().id).map_err(|e| bad(e.to_string()))?;
        access::admit(&self.keys, &req, Access::Read, Some(&id)).await?;
        if let Some(data) = self.store.journaled(&id) {
            // Still in the journal: small, one frame, from memory.
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let _ = tx.try_send(Ok(GetChunkFrame { total_len: data.len() as u64, data }));
            return Ok(Response::new(ReceiverStream::new(rx)));
        }
        // Open, size and first frame in one blocking call: a small chunk (the
        // common case for small files) costs one trip to the blocking pool.
        let store = self.store.clone();
        let (first, total_len, file) = tokio::task::spawn_blocking(move || {
            let mut file = store.open_chunk(&id)?;
            let total_len = file.metadata()?.len();
            let first = read_frame(&mut file, total_len)?;
            Ok::<_, StoreError>((first, total_len, file))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut left = total_len - first.len() as u64;
        let _ = tx.try_send(Ok(GetChunkFrame { data: Bytes::from(first), total_len }));
        if left > 0 {
            // The rest, a frame per trip to the blocking pool; a slow reader
            // holds back this task, never a blocking thread.
            tokio::spawn(async move {
                let mut file = file;
                while left > 0 {
                    let read = tokio::task::spawn_blocking(move || read_frame(&mut file, left).map(|b| (file, b)))
                        .await
                        .map_err(std::io::Error::other)
                        .and_then(|r| r);
                    let frame = match read {
                        Ok((f, frame)) => {
                            file = f;
                            frame
                        }
                        Err(e) => {
                            let _ = tx.send(Err(Status::internal(format!("read {id}: {e}")))).await;
                            return;
                        }
                    };
                    left -= frame.len() as u64;
                    if tx.send(Ok(GetChunkFrame { data: Bytes::from(frame), total_len })).await.is_err() {
                        return;
                    }
                }
            });
        }
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn has_chunks(&self, req: Request<HasChunksRequest>) -> Result<Response<HasChunksReply>, Status> {
        // A writer asks before it uploads: the write token it holds.
        access::admit(&self.keys, &req, Access::Write, None).await?;
        let mut present = Vec::with_capacity(req.get_ref().ids.len());
        for raw in &req.get_ref().ids {
            let id = ChunkId::from_slice(raw).map_err(|e| bad(e.to_string()))?;
            present.push(self.store.has(&id));
        }
        Ok(Response::new(HasChunksReply { present }))
    }

    async fn delete_chunks(&self, req: Request<DeleteChunksRequest>) -> Result<Response<DeleteChunksReply>, Status> {
        let mut deleted = 0;
        for raw in &req.get_ref().ids {
            let id = ChunkId::from_slice(raw).map_err(|e| bad(e.to_string()))?;
            if self.store.delete(&id).await? {
                deleted += 1;
            }
        }
        Ok(Response::new(DeleteChunksReply { deleted }))
    }

    #[tracing::instrument(skip_all, fields(server = %self.id, target = %req.get_ref().target))]
    async fn replicate(&self, req: Request<ReplicateRequest>) -> Result<Response<ReplicateReply>, Status> {
        let r = req.into_inner();
        let id = ChunkId::from_slice(&r.id).map_err(|e| bad(e.to_string()))?;
        // Sent as read: the target hashes what it receives and refuses a
        // chunk that does not match its id, so a corrupt copy is never
        // spread, and only then is this copy checked (and quarantined).
        // One read and one hash per copy, not two of each.
        let data = self.store.read(&id).await?;
        self.repair_limit.take(data.len() as u64).await;
        let ch = tessera_rpc::pool()
            .channel(&r.target, tessera_rpc::Profile::Bulk, tessera_rpc::Role::Chunkserver)
            .map_err(|e| bad(e.to_string()))?;
        let mut c = ChunkClient::new(ch)
            .max_decoding_message_size(tessera_proto::GRPC_MAX_MESSAGE)
            .max_encoding_message_size(tessera_proto::GRPC_MAX_MESSAGE);
        let mut frames = Vec::new();
        let mut off = 0;
        loop {
            let end = (off + MAX_FRAME).min(data.len());
            let header =
                (off == 0).then(|| PutChunkHeader { id: r.id.clone(), len: data.len() as u64, forward: vec![] });
            frames.push(PutChunkFrame { header, data: data.slice(off..end) });
            off = end;
            if off >= data.len() {
                break;
            }
        }
        let sent = tokio::time::timeout(FORWARD_TIMEOUT, c.put_chunk(tokio_stream::iter(frames)))
            .await
            .map_err(|_| Status::deadline_exceeded("replicate timed out"))?;
        match sent {
            Ok(_) => Ok(Response::new(ReplicateReply { bytes: data.len() as u64 })),
            Err(e) if tessera_proto::status::errno_of(&e) == Some(libc::EILSEQ) && !self.store.verify(&id).await? => {
                self.store.quarantine(&id).await?;
                Err(tessera_proto::status::errno_status(
                    libc::EILSEQ,
                    format!("chunk {id} is corrupt here; quarantined"),
                ))
            }
            Err(e) => Err(e),
        }
    }

    async fn verify(&self, req: Request<VerifyRequest>) -> Result<Response<VerifyReply>, Status> {
        let mut bad_ids = Vec::new();
        for raw in &req.get_ref().ids {
            let id = ChunkId::from_slice(raw).map_err(|e| bad(e.to_string()))?;
            if let Ok(false) = self.store.verify(&id).await {
                self.store.quarantine(&id).await?;
                bad_ids.push(raw.clone());
            }
        }
        Ok(Response::new(VerifyReply { bad: bad_ids }))
    }

    type PresenceStream = ReceiverStream<Result<PresenceTick, Status>>;

    async fn presence(&self, _req: Request<Empty>) -> Result<Response<Self::PresenceStream>, Status> {
        let slot =
            self.presence_slots.clone().try_acquire_owned().map_err(|_| {
                Status::resource_exhausted(format!("more than {PRESENCE_STREAMS} presence streams open"))
            })?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let id = self.id.clone();
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            let _slot = slot;
            // Ticks keep the stream from looking idle to anything between
            // the two ends; the task ends when the leader drops the stream
            // or this process begins to stop.
            while !*stopping.borrow() {
                if tx.send(Ok(PresenceTick { id: id.clone() })).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(PRESENCE_TICK) => {}
                    _ = stopping.changed() => {}
                    // The caller went away: free the slot now.
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn stats(&self, _req: Request<Empty>) -> Result<Response<ChunkServerStats>, Status> {
        let d = self.store.disk().map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ChunkServerStats {
            id: self.id.clone(),
            capacity: d.capacity,
            used: self.store.used(),
            free: d.free,
            chunk_count: self.store.count(),
        }))
    }
}

/// The next frame of a chunk file: up to READ_FRAME of the `left` bytes.
fn read_frame(file: &mut std::fs::File, left: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let n = left.min(READ_FRAME as u64);
    let mut buf = Vec::with_capacity(n as usize);
    file.take(n).read_to_end(&mut buf)?;
    if (buf.len() as u64) < n {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "chunk file shorter than its size"));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn presence_streams_are_bounded_and_a_closed_one_frees_its_slot() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = ChunkStore::open(dir.path(), 0).unwrap();
        let (_stop, stopping) = tokio::sync::watch::channel(false);
        let svc = ChunkService {
            store: Arc::new(store),
            id: "cs-t".into(),
            addr: "127.0.0.1:1".into(),
            repair_limit: Arc::new(crate::throttle::Throttle::new(0)),
            stopping,
            presence_slots: Arc::new(tokio::sync::Semaphore::new(PRESENCE_STREAMS)),
            keys: access::KeyFetch::new(None),
            peers: Default::default(),
        };
        let mut open = Vec::new();
        for _ in 0..PRESENCE_STREAMS {
            open.push(svc.presence(Request::new(Empty {})).await.unwrap());
        }
        let refused = svc.presence(Request::new(Empty {})).await.expect_err("one stream too many");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        drop(open.pop());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while svc.presence(Request::new(Empty {})).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "a closed stream kept its slot");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn frames_cover_the_file_and_a_short_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c");
        let data: Vec<u8> = (0..READ_FRAME + 10).map(|i| i as u8).collect();
        std::fs::File::create(&p).unwrap().write_all(&data).unwrap();
        let mut f = std::fs::File::open(&p).unwrap();
        let first = read_frame(&mut f, data.len() as u64).unwrap();
        assert_eq!(first.len(), READ_FRAME);
        let rest = read_frame(&mut f, 10).unwrap();
        assert_eq!([first, rest].concat(), data);
        // A chunk file cut short on disk: an error, never a short frame.
        let mut f = std::fs::File::open(&p).unwrap();
        let err = read_frame(&mut f, data.len() as u64 + 1).and_then(|_| read_frame(&mut f, 11)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
