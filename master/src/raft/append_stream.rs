//! The leader's side of an append stream (`wire` has the encoding).
//!
//! After every entry a follower acknowledges, openraft sends it a second
//! request that carries no entries, only the new commit index; with one
//! change at a time (a small-file workload) that is half of all replication
//! traffic. Raft does not need a follower to learn the commit index at once
//! (it only applies sooner), so such a request waits up to `COMMIT_HOLD`
//! for the next request: if that one starts at the same place in the log
//! for the same leader, only it is sent, carrying the newer commit index,
//! and the held request's result is derived from its result. The follower
//! would have judged both alike: a request's verdict (accepted, conflict at
//! its previous log id, or a higher vote) depends on the leader's vote and
//! the previous log id, which they share, and a commit-only request that is
//! accepted matches exactly its previous log id. Nothing waits when no
//! request follows (a heartbeat, the last change before a pause): the held
//! one is sent as it is when the time is up or the input ends.

use super::wire;
use crate::types::TypeConfig;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use openraft::alias::LogIdOf;
use openraft::raft::{AppendEntriesRequest, StreamAppendResult};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
// tokio's clock: the tests run on paused time.
use tessera_proto::pb::RaftBlob;
use tokio::time::Instant;

type C = TypeConfig;

/// How long a commit-only request waits for a request to ride on.
pub const COMMIT_HOLD: Duration = Duration::from_millis(5);

/// A request on the wire: when it was sent, and the previous log ids of the
/// commit-only requests folded into it, oldest first.
struct Sent {
    at: Instant,
    folded: Vec<Option<LogIdOf<C>>>,
}

/// The requests sent and not answered yet, shared by both directions.
#[derive(Clone, Default)]
pub struct Inflight(Arc<Mutex<VecDeque<Sent>>>);

impl Inflight {
    fn lock(&self) -> parking_lot::MutexGuard<'_, VecDeque<Sent>> {
        self.0.lock()
    }
}

/// Whether commit-only `held` may be answered by `next`'s result.
fn folds(held: &AppendEntriesRequest<C>, next: &AppendEntriesRequest<C>) -> bool {
    held.entries.is_empty()
        && held.vote == next.vote
        && held.prev_log_id == next.prev_log_id
        && held.leader_commit <= next.leader_commit
}

/// The result of a folded commit-only request at `prev`, given its carrier's.
fn folded_result(prev: &Option<LogIdOf<C>>, carrier: &StreamAppendResult<C>) -> StreamAppendResult<C> {
    match carrier {
        Ok(_) => Ok(*prev),
        Err(e) => Err(e.clone()),
    }
}

/// Pulls openraft's requests and decides what goes on the wire.
struct Folder<S> {
    input: S,
    /// A request pulled while holding that could not carry the held one.
    next: Option<AppendEntriesRequest<C>>,
    ended: bool,
}

impl<S: Stream<Item = AppendEntriesRequest<C>> + Unpin> Folder<S> {
    async fn pull(&mut self) -> Option<AppendEntriesRequest<C>> {
        if let Some(r) = self.next.take() {
            return Some(r);
        }
        if self.ended {
            return None;
        }
        let r = self.input.next().await;
        self.ended = r.is_none();
        r
    }

    /// The next request to send, with the previous log ids of the
    /// commit-only requests folded into it.
    async fn next_wire(&mut self) -> Option<(AppendEntriesRequest<C>, Vec<Option<LogIdOf<C>>>)> {
        let mut req = self.pull().await?;
        let mut folded = Vec::new();
        let deadline = Instant::now() + COMMIT_HOLD;
        while req.entries.is_empty() && !self.ended && self.next.is_none() {
            // Dropping `next()` at the deadline is safe: the input keeps
            // its own progress and the next poll resumes it.
            let next = match tokio::time::timeout_at(deadline, self.input.next()).await {
                Err(_) => break,
                Ok(None) => {
                    self.ended = true;
                    break;
                }
                Ok(Some(n)) => n,
            };
            if folds(&req, &next) {
                folded.push(req.prev_log_id);
                req = next;
            } else {
                self.next = Some(next);
            }
        }
        Some((req, folded))
    }
}

/// The outgoing side of an append stream: requests encoded as they go, each
/// recorded in `inflight`. A request that does not encode ends the stream
/// (openraft then opens a new one).
pub fn outbound<S>(input: S, inflight: Inflight) -> impl Stream<Item = RaftBlob> + Send + 'static
where
    S: Stream<Item = AppendEntriesRequest<C>> + Send + Unpin + 'static,
{
    let folder = Folder { input, next: None, ended: false };
    futures::stream::unfold((folder, inflight), |(mut folder, inflight)| async move {
        let (req, folded) = folder.next_wire().await?;
        match wire::encode_request(&req) {
            Ok(data) => {
                inflight.lock().push_back(Sent { at: Instant::now(), folded });
                Some((RaftBlob { data: Bytes::from(data) }, (folder, inflight)))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode an append request");
                None
            }
        }
    })
}

/// The incoming side: one result per request openraft made, in order.
pub struct Replies {
    inbound: tonic::Streaming<RaftBlob>,
    inflight: Inflight,
    ready: VecDeque<StreamAppendResult<C>>,
    ttl: Duration,
}

impl Replies {
    pub fn new(inbound: tonic::Streaming<RaftBlob>, inflight: Inflight, ttl: Duration) -> Replies {
        Replies { inbound, inflight, ready: VecDeque::new(), ttl }
    }

    /// The next result; None when the follower ended the stream. An idle
    /// stream may wait as long as it likes; a request unanswered for `ttl`
    /// means the follower or the link is gone.
    pub async fn next(&mut self) -> Result<Option<StreamAppendResult<C>>, String> {
        if let Some(r) = self.ready.pop_front() {
            return Ok(Some(r));
        }
        loop {
            let oldest = self.inflight.lock().front().map(|s| s.at);
            let deadline = oldest.unwrap_or_else(Instant::now) + self.ttl;
            match tokio::time::timeout_at(deadline, self.inbound.message()).await {
                Ok(Ok(Some(blob))) => {
                    let folded = self.inflight.lock().pop_front().map(|s| s.folded).unwrap_or_default();
                    let r = match wire::decode_reply(&blob.data) {
                        Ok(Ok(r)) => r,
                        Ok(Err(fatal)) => return Err(format!("follower's raft stopped: {fatal}")),
                        Err(e) => return Err(e.to_string()),
                    };
                    self.ready.extend(folded.iter().map(|prev| folded_result(prev, &r)));
                    self.ready.push_back(r);
                    return Ok(self.ready.pop_front());
                }
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(status)) => return Err(status.message().to_string()),
                Err(_) if oldest.is_some() => return Err(format!("no answer in {:?} (timed out)", self.ttl)),
                Err(_) => continue, // idle: nothing was asked
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::alias::{EntryOf, VoteOf};
    use openraft::entry::RaftEntry;
    use openraft::raft::StreamAppendError;
    use openraft::vote::RaftLeaderIdExt;

    fn log_id(index: u64) -> LogIdOf<C> {
        openraft::LogId::new(openraft::alias::LeaderIdOf::<C>::new_committed(2, 1), index)
    }

    fn req(prev: u64, entries: std::ops::Range<u64>, commit: u64) -> AppendEntriesRequest<C> {
        AppendEntriesRequest {
            vote: VoteOf::<C>::new_committed(2, 1),
            prev_log_id: Some(log_id(prev)),
            entries: entries.map(|i| EntryOf::<C>::new_blank(log_id(i))).collect(),
            leader_commit: Some(log_id(commit)),
        }
    }

    /// What goes on the wire for `input`: (prev index, entry count, commit
    /// index, folded prev indices) per request.
    async fn wire_of(input: Vec<AppendEntriesRequest<C>>) -> Vec<(u64, usize, u64, Vec<u64>)> {
        let mut f = Folder { input: futures::stream::iter(input), next: None, ended: false };
        let mut out = Vec::new();
        while let Some((r, folded)) = f.next_wire().await {
            let idx = |l: &Option<LogIdOf<C>>| l.as_ref().map(|l| l.index).unwrap_or(0);
            out.push((idx(&r.prev_log_id), r.entries.len(), idx(&r.leader_commit), folded.iter().map(idx).collect()));
        }
        out
    }

    #[tokio::test]
    async fn a_commit_only_request_rides_on_the_next_one() {
        // Entry 5, then its commit alone, then entry 6 carrying commit 5.
        let got = wire_of(vec![req(4, 5..6, 4), req(5, 5..5, 5), req(5, 6..7, 5)]).await;
        assert_eq!(got, vec![(4, 1, 4, vec![]), (5, 1, 5, vec![5])]);
        // Two commit-only requests in a row both ride.
        let got = wire_of(vec![req(5, 5..5, 4), req(5, 5..5, 5), req(5, 6..7, 5)]).await;
        assert_eq!(got, vec![(5, 1, 5, vec![5, 5])]);
        // The input ends while holding: sent as it is.
        assert_eq!(wire_of(vec![req(5, 5..5, 5)]).await, vec![(5, 0, 5, vec![])]);
    }

    #[tokio::test]
    async fn a_request_that_cannot_carry_it_goes_after_it() {
        // A different place in the log (a new session probing elsewhere).
        let got = wire_of(vec![req(5, 5..5, 5), req(3, 4..6, 5)]).await;
        assert_eq!(got, vec![(5, 0, 5, vec![]), (3, 2, 5, vec![])]);
        // An older commit index must not replace a newer one.
        let got = wire_of(vec![req(5, 5..5, 5), req(5, 6..7, 4)]).await;
        assert_eq!(got, vec![(5, 0, 5, vec![]), (5, 1, 4, vec![])]);
        // Another leader's request.
        let mut other = req(5, 6..7, 5);
        other.vote = VoteOf::<C>::new_committed(3, 2);
        let got = wire_of(vec![req(5, 5..5, 5), other]).await;
        assert_eq!(got, vec![(5, 0, 5, vec![]), (5, 1, 5, vec![])]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_request_waits_no_longer_than_the_hold() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut f = Folder { input: tokio_stream::wrappers::ReceiverStream::new(rx), next: None, ended: false };
        tx.send(req(5, 5..5, 5)).await.unwrap();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(COMMIT_HOLD * 100).await;
            tx.send(req(5, 6..7, 5)).await.unwrap();
        });
        let began = Instant::now();
        let (first, folded) = f.next_wire().await.unwrap();
        assert!(first.entries.is_empty() && folded.is_empty());
        // Sent when the hold ran out, long before the next request came.
        let waited = began.elapsed();
        assert_eq!(waited, COMMIT_HOLD, "held exactly the hold (paused clock)");
        let (second, folded) = f.next_wire().await.unwrap();
        assert_eq!((second.entries.len(), folded.len()), (1, 0));
        sender.await.unwrap();
    }

    #[test]
    fn a_folded_request_gets_its_carriers_verdict_at_its_own_place() {
        let prev = Some(log_id(5));
        assert_eq!(folded_result(&prev, &Ok(Some(log_id(6)))), Ok(Some(log_id(5))));
        let conflict = Err(StreamAppendError::Conflict(log_id(5)));
        assert_eq!(folded_result(&prev, &conflict), conflict);
        let higher = Err(StreamAppendError::HigherVote(VoteOf::<C>::new(3, 2)));
        assert_eq!(folded_result(&prev, &higher), higher);
    }
}
