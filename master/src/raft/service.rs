//! The receiving side: decode, hand to the local Raft, encode the result.

use super::wire;
use crate::store::snapshot::{receive_path, SnapshotFile};
use crate::store::state_machine::Raft;
use crate::types::TypeConfig;
use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use openraft::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use tessera_proto::pb::raft_server::Raft as RaftRpc;
use tessera_proto::pb::{RaftBlob, SnapshotPart};
use tonic::{Request, Response, Status, Streaming};

type C = TypeConfig;

pub struct RaftService {
    pub raft: Raft,
    /// Where received snapshots are written before they are installed.
    pub snapshot_dir: std::path::PathBuf,
}

fn decode<T: for<'de> serde::Deserialize<'de>>(b: &[u8]) -> Result<T, Status> {
    wire::decode(b).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Response<RaftBlob>, Status> {
    let data = wire::encode(v).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftBlob { data: Bytes::from(data) }))
}

/// The replies of one AppendEntries stream, already encoded.
type ReplyStream = std::pin::Pin<Box<dyn Stream<Item = Result<RaftBlob, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl RaftRpc for RaftService {
    type AppendStreamStream = ReplyStream;

    /// Feeds the leader's requests to the local Raft as they arrive and
    /// sends its results back in the same order. A request that does not
    /// decode ends the stream (the leader opens a new one); a stopped Raft
    /// answers once with why, then ends it.
    async fn append_stream(&self, req: Request<Streaming<RaftBlob>>) -> Result<Response<ReplyStream>, Status> {
        use futures::StreamExt;
        let input = req.into_inner().scan((), |_, item| {
            let decoded = match item {
                Ok(blob) => wire::decode_request(&blob.data)
                    .map_err(|e| tracing::warn!(error = %e, "dropping a raft stream"))
                    .ok(),
                Err(_) => None, // the leader went away
            };
            futures::future::ready(decoded)
        });
        let out = self.raft.stream_append(input).map(|r| {
            let reply: wire::StreamReply = r.map_err(|fatal| fatal.to_string());
            wire::encode_reply(&reply)
                .map(|data| RaftBlob { data: Bytes::from(data) })
                .map_err(|e| Status::internal(e.to_string()))
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn append_entries(&self, req: Request<RaftBlob>) -> Result<Response<RaftBlob>, Status> {
        let rpc = decode(&req.get_ref().data)?;
        encode(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftBlob>) -> Result<Response<RaftBlob>, Status> {
        let rpc = decode(&req.get_ref().data)?;
        encode(&self.raft.vote(rpc).await)
    }

    async fn stream_snapshot(&self, req: Request<Streaming<SnapshotPart>>) -> Result<Response<RaftBlob>, Status> {
        let mut stream = req.into_inner();
        let first = stream.try_next().await?.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let (vote, meta): (VoteOf<C>, SnapshotMetaOf<C>) = decode(&first.header)?;
        let path = receive_path(&self.snapshot_dir);
        let received = receive_file(&mut stream, &path).await;
        let bytes = match received {
            Ok(n) => n,
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(e);
            }
        };
        tracing::info!(bytes, last_log = ?meta.last_log_id, "snapshot received");
        // Damaged at its source (the transfer's checksum cannot tell):
        // refused here, before Raft hands it to the state machine, so this
        // master stays on its old state and the leader tries again later.
        if bytes > 0 {
            let (dir, p) = (self.snapshot_dir.clone(), path.clone());
            let verified = tokio::task::spawn_blocking(move || crate::store::snapshot::verify(&dir, &p)).await;
            let failure = match verified {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(e) = failure {
                tracing::error!(error = %e, "received snapshot refused");
                let _ = tokio::fs::remove_file(&path).await;
                return Err(Status::data_loss(e));
            }
        }
        let data = SnapshotFile { path: (bytes > 0).then_some(path.clone()) };
        let r = self.raft.install_full_snapshot(vote, SnapshotOf::<C, SnapshotFile> { meta, snapshot: data }).await;
        // Installed snapshots were moved into place; anything left is stale.
        let _ = tokio::fs::remove_file(&path).await;
        encode(&r.map_err(|e| e.to_string()))
    }
}

/// Writes the streamed file to `path`, fsyncs it and checks its BLAKE3.
async fn receive_file<S>(stream: &mut S, path: &std::path::Path) -> Result<u64, Status>
where
    S: Stream<Item = Result<SnapshotPart, Status>> + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let io = |e: std::io::Error| Status::internal(format!("snapshot file {}: {e}", path.display()));
    let mut f = tokio::fs::File::create(path).await.map_err(io)?;
    let mut hasher = blake3::Hasher::new();
    let mut bytes = 0u64;
    loop {
        let part = stream.try_next().await?.ok_or_else(|| Status::data_loss("snapshot stream ended early"))?;
        if !part.blake3.is_empty() {
            if part.blake3.as_ref() != hasher.finalize().as_bytes() {
                return Err(Status::data_loss("snapshot checksum mismatch"));
            }
            break;
        }
        hasher.update(&part.data);
        bytes += part.data.len() as u64;
        f.write_all(&part.data).await.map_err(io)?;
    }
    f.sync_all().await.map_err(io)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(b: &[u8]) -> Result<SnapshotPart, Status> {
        Ok(SnapshotPart { data: b.to_vec().into(), ..Default::default() })
    }

    fn sum(b: &[u8]) -> Result<SnapshotPart, Status> {
        Ok(SnapshotPart { blake3: blake3::hash(b).as_bytes().to_vec().into(), ..Default::default() })
    }

    #[tokio::test]
    async fn a_snapshot_is_kept_only_if_it_arrived_whole_and_intact() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("s.part");
        // Whole: written and counted.
        let mut ok = futures::stream::iter(vec![data(b"abc"), data(b"def"), sum(b"abcdef")]);
        assert_eq!(receive_file(&mut ok, &path).await.unwrap(), 6);
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdef");
        // A frame altered on the way: refused.
        let mut bad = futures::stream::iter(vec![data(b"abX"), data(b"def"), sum(b"abcdef")]);
        assert_eq!(receive_file(&mut bad, &path).await.unwrap_err().code(), tonic::Code::DataLoss);
        // The sender died mid-stream (no checksum): refused.
        let mut cut = futures::stream::iter(vec![data(b"abc")]);
        assert_eq!(receive_file(&mut cut, &path).await.unwrap_err().code(), tonic::Code::DataLoss);
        // The transport failed: its error, not a snapshot.
        let mut broken = futures::stream::iter(vec![data(b"abc"), Err(Status::unavailable("reset"))]);
        assert_eq!(receive_file(&mut broken, &path).await.unwrap_err().code(), tonic::Code::Unavailable);
    }
}
