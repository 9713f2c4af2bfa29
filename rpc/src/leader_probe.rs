//! Noticing a new leader while a call waits on the old one.
//!
//! A frozen leader (SIGSTOP, a stalled VM, a full disk that blocks fsync)
//! keeps its connections open and answers nothing, so a call to it learns
//! nothing until its attempt deadline. Meanwhile the followers elect a new
//! leader in about a second. A call that has waited a little asks the other
//! masters who leads (`NodeStatus`, which every master answers from its own
//! view); once one names a different leader, the call gives up on the old
//! one and is retried there at once, with the same request id, so a write
//! the old leader did manage to replicate is answered, not applied twice.
//! A leader that is merely slow is named by the followers too, and its
//! calls are left to finish.

use crate::meta::MetaClient;
use std::time::{Duration, Instant};
use tessera_proto::pb::Empty;

/// How long a call waits before asking: most answers come well before.
const ASK_AFTER: Duration = Duration::from_millis(300);
/// Between two rounds of asking while the call still waits.
const ASK_EVERY: Duration = Duration::from_millis(200);
/// One master's answer to "who leads?".
const ANSWER_WITHIN: Duration = Duration::from_millis(300);

/// The last round of asking, shared by the calls of one client: many calls
/// waiting on one frozen leader ask once per round, not once each.
#[derive(Default)]
pub(crate) struct LastAnswer {
    round: tokio::sync::Mutex<Option<(Instant, Option<String>)>>,
}

impl MetaClient {
    /// Resolves, with the new leader's address, once the other masters name
    /// a leader other than `waiting_on`; never while they name it (or name
    /// none, or do not answer). With one master address there is nobody
    /// to ask, and it never resolves.
    pub(crate) async fn leader_moved_from(&self, waiting_on: &str) -> String {
        if self.addrs().iter().all(|a| a == waiting_on) {
            return std::future::pending().await;
        }
        tokio::time::sleep(ASK_AFTER).await;
        loop {
            if let Some(l) = self.leader_named_by_others(waiting_on).await {
                if l != waiting_on {
                    return l;
                }
            }
            tokio::time::sleep(ASK_EVERY).await;
        }
    }

    /// The leader the masters other than `waiting_on` name, taken from the
    /// answer of the highest term (a follower that has not heard of the
    /// election yet still names the old leader at the old term).
    async fn leader_named_by_others(&self, waiting_on: &str) -> Option<String> {
        let mut last = self.last_answer().round.lock().await;
        if let Some((at, named)) = &*last {
            if at.elapsed() < ASK_EVERY / 2 {
                return named.clone();
            }
        }
        let asks = self.addrs().iter().filter(|a| *a != waiting_on).map(|a| async move {
            let mut c = self.client_for(a).ok()?;
            let r = tokio::time::timeout(ANSWER_WITHIN, c.node_status(Empty {})).await.ok()?.ok()?.into_inner();
            let term = r.master.as_ref().map_or(0, |m| m.term);
            (!r.leader_addr.is_empty()).then_some((term, r.leader_addr))
        });
        let named = futures::future::join_all(asks).await.into_iter().flatten().max_by_key(|(t, _)| *t).map(|(_, a)| a);
        *last = Some((Instant::now(), named.clone()));
        named
    }
}
