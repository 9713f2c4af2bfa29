//! Storing one chunk: on its three live ring owners when they answer, on
//! the next live servers clockwise when one does not (substitutes, as HDFS
//! replaces a failed pipeline datanode), acknowledged once at least
//! `min_replicas` copies are durable. The masters' healer later moves
//! substitutes' copies to the real owners and tops every chunk up to three.

use crate::error::{ClientError, Result};
use crate::placement::WritePlan;
use crate::transfer::Transfer;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tessera_proto::{ChunkId, REPLICATION};

/// Chunks up to this size skip the dedup query (see `place`).
pub(crate) const SMALL_CHUNK: usize = 128 << 10;

/// How long a chunk write keeps trying while the masters still count
/// servers live that do not answer (they notice within their dead
/// timeout, 5 s by default, and the ring follows).
const PLACEMENT_PATIENCE: Duration = Duration::from_secs(20);

/// How long a write waits for the ring to show enough live servers: a
/// master that just became leader knows a chunkserver is live only after
/// its next heartbeat (1 s apart by default), so "too few" right after an
/// election is not yet an answer.
const FEW_LIVE_PATIENCE: Duration = Duration::from_secs(8);

/// What one attempt at placing a chunk achieved.
struct Placed {
    stored: Vec<String>,
    errors: Vec<(String, ClientError)>,
}

impl Transfer {
    /// Makes sure `data` (whose id is `id`) is durable on its ring owners:
    /// three copies when three live servers answer, never fewer than the
    /// cluster's `min_replicas`. Fails with `ClientError::Placement` when
    /// fewer servers are live than that (after `FEW_LIVE_PATIENCE`), and
    /// after `PLACEMENT_PATIENCE` when live-counted servers do not answer.
    pub async fn store_chunk(&self, id: ChunkId, data: Bytes) -> Result<()> {
        let deadline = Instant::now() + PLACEMENT_PATIENCE;
        let few_deadline = Instant::now() + FEW_LIVE_PATIENCE;
        let mut attempt = 0u32;
        let mut backoff = tessera_rpc::Backoff::chunks();
        loop {
            attempt += 1;
            let plan = self.ring.write_plan(&id, attempt > 1).await?;
            if plan.live < plan.min_replicas {
                tracing::debug!(chunk = %id, live = plan.live, needed = plan.min_replicas, "too few live chunkservers");
                if Instant::now() < few_deadline {
                    // A new leader counts servers live only once their
                    // heartbeats reach it: ask again for a little while.
                    backoff.wait().await;
                    continue;
                }
                return Err(ClientError::Placement(format!(
                    "{} live chunkservers, {} replicas needed at least",
                    plan.live, plan.min_replicas
                )));
            }
            let placed = self.place(id, &data, &plan).await;
            let copies = placed.stored.len();
            if copies >= plan.min_replicas.min(plan.live) {
                if copies < REPLICATION.min(plan.live) {
                    tracing::info!(chunk = %id, copies, "chunk stored degraded; repair tops it up");
                }
                return Ok(());
            }
            if let Some((_, e)) = placed.errors.iter().find(|(_, e)| e.errno() == libc::ENOSPC) {
                return Err(ClientError::fs(libc::ENOSPC, e.to_string()));
            }
            let why = placed.errors.iter().map(|(a, e)| format!("{a}: {e}")).collect::<Vec<_>>().join("; ");
            if Instant::now() >= deadline {
                tracing::warn!(chunk = %id, copies, needed = plan.min_replicas, errors = %why, "chunk write failed");
                return Err(ClientError::Placement(format!(
                    "chunk {id}: {copies} of {} needed replicas stored ({why})",
                    plan.min_replicas
                )));
            }
            tracing::debug!(chunk = %id, copies, errors = %why, "chunk write short of replicas; placing again");
            backoff.wait().await;
        }
    }

    /// One attempt: writes to the first three candidates, and for each one
    /// that fails, to the next candidate, until three hold the chunk or the
    /// candidates run out.
    async fn place(&self, id: ChunkId, data: &Bytes, plan: &WritePlan) -> Placed {
        let want = REPLICATION.min(plan.candidates.len());
        let mut next = plan.candidates.iter();
        let mut targets: Vec<String> = next.by_ref().take(want).cloned().collect();
        let mut placed = Placed { stored: Vec::new(), errors: Vec::new() };
        if data.len() > SMALL_CHUNK {
            // Dedup: servers that already hold it need no bytes. (For small
            // chunks, sending the bytes costs less than asking first; a
            // server that has the chunk just drains them.)
            let answers =
                futures::future::join_all(targets.iter().map(|a| self.io.has(a, std::slice::from_ref(&id)))).await;
            let mut missing = Vec::new();
            for (addr, answer) in targets.into_iter().zip(answers) {
                match answer {
                    Ok(p) if p.first() == Some(&true) => placed.stored.push(addr),
                    _ => missing.push(addr),
                }
            }
            if missing.is_empty() {
                self.stats.skipped_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                return placed;
            }
            targets = missing;
        }
        while !targets.is_empty() {
            let (ok, failed) = self.write_to(&targets, id, data).await;
            for a in &ok {
                self.ring.mark_up(a);
            }
            placed.stored.extend(ok);
            for (addr, e) in failed {
                // A server that refused (full, bad request) is alive; one
                // that did not answer is passed over by the next writes.
                if !matches!(e, ClientError::Fs { .. }) {
                    self.ring.mark_down(&addr);
                }
                tracing::debug!(chunk = %id, server = %addr, error = %e, "replica write failed; trying the next server");
                placed.errors.push((addr, e));
            }
            if placed.stored.len() >= want {
                break;
            }
            // Substitutes for the ones that failed, clockwise.
            targets = next.by_ref().take(want - placed.stored.len()).cloned().collect();
        }
        placed
    }

    /// Writes `data` to every one of `targets`; returns those that made it
    /// durable and the errors of the others.
    async fn write_to(
        &self,
        targets: &[String],
        id: ChunkId,
        data: &Bytes,
    ) -> (Vec<String>, Vec<(String, ClientError)>) {
        self.stats.sent_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        if data.len() <= SMALL_CHUNK {
            // Small chunks: latency matters, not the client's uplink, so
            // every replica is written at once instead of hop by hop.
            let puts = targets.iter().map(|a| self.io.put_small(a, id, data.clone()));
            for (addr, r) in targets.iter().zip(futures::future::join_all(puts).await) {
                match r {
                    Ok(()) => ok.push(addr.clone()),
                    Err(e) => failed.push((addr.clone(), e.into())),
                }
            }
            return (ok, failed);
        }
        let stored = match self.io.put_pipeline(targets, id, data.clone()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(chunk = %id, error = %e, "pipeline put failed; writing each replica directly");
                Vec::new()
            }
        };
        // Whatever the pipeline missed (a hop died), send directly, at once.
        let missed: Vec<&String> = targets.iter().filter(|a| !stored.contains(a)).collect();
        let puts = missed.iter().map(|a| self.io.put_pipeline(std::slice::from_ref(*a), id, data.clone()));
        let results = futures::future::join_all(puts).await;
        ok.extend(targets.iter().filter(|a| stored.contains(a)).cloned());
        for (addr, r) in missed.into_iter().zip(results) {
            match r {
                Ok(s) if s.contains(addr) => ok.push(addr.clone()),
                Ok(_) => failed.push((addr.clone(), ClientError::Chunk { id: id.to_hex(), msg: "not stored".into() })),
                Err(e) => failed.push((addr.clone(), e.into())),
            }
        }
        (ok, failed)
    }
}
