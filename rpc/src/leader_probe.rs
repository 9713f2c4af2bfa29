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

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a call waits before asking: most answers come well before.
const ASK_AFTER: Duration = Duration::from_millis(300);
/// Between two rounds of asking while the call still waits.
const ASK_EVERY: Duration = Duration::from_millis(200);
/// One master's answer to "who leads?".
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_millis(300);

/// The last round of asking, shared by the calls of one client: many calls
/// waiting on one frozen leader ask once per round, not once each.
#[derive(Default)]
pub(crate) struct LeaderProbe {
    round: tokio::sync::Mutex<Option<(Instant, Option<String>)>>,
}

impl LeaderProbe {
    /// Resolves, with the new leader's address, once the masters in
    /// `addrs` other than `waiting_on` name a leader other than it; never
    /// while they name it (or name none, or do not answer). With nobody
    /// else to ask, it never resolves. `ask(addr)` is one master's answer:
    /// its term and the leader it names.
    pub(crate) async fn moved_from<F, Fut>(&self, addrs: &[String], waiting_on: &str, ask: F) -> String
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Option<(u64, String)>>,
    {
        if addrs.iter().all(|a| a == waiting_on) {
            return std::future::pending().await;
        }
        tokio::time::sleep(ASK_AFTER).await;
        loop {
            if let Some(l) = self.named_by_others(addrs, waiting_on, &ask).await {
                if l != waiting_on {
                    return l;
                }
            }
            tokio::time::sleep(ASK_EVERY).await;
        }
    }

    /// The leader named by the answer of the highest term (a follower that
    /// has not heard of the election yet still names the old leader at the
    /// old term).
    async fn named_by_others<F, Fut>(&self, addrs: &[String], waiting_on: &str, ask: &F) -> Option<String>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Option<(u64, String)>>,
    {
        let mut last = self.round.lock().await;
        if let Some((at, named)) = &*last {
            if at.elapsed() < ASK_EVERY / 2 {
                return named.clone();
            }
        }
        let asks = addrs.iter().filter(|a| *a != waiting_on).map(|a| ask(a.clone()));
        let named = futures::future::join_all(asks).await.into_iter().flatten().max_by_key(|(t, _)| *t).map(|(_, a)| a);
        *last = Some((Instant::now(), named.clone()));
        named
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<String> {
        ["a", "b", "c"].map(String::from).to_vec()
    }

    #[tokio::test]
    async fn the_highest_term_names_the_new_leader() {
        let p = LeaderProbe::default();
        let ask = |a: String| async move {
            match a.as_str() {
                "b" => Some((7, "a".to_string())), // has not heard yet
                "c" => Some((8, "c".to_string())), // elected
                _ => None,                         // frozen
            }
        };
        let got = tokio::time::timeout(Duration::from_secs(5), p.moved_from(&addrs(), "a", ask)).await;
        assert_eq!(got.unwrap(), "c");
    }

    #[tokio::test]
    async fn a_leader_the_others_still_name_is_waited_on() {
        let p = LeaderProbe::default();
        let ask = |_a: String| async move { Some((3, "a".to_string())) };
        let got = tokio::time::timeout(Duration::from_secs(1), p.moved_from(&addrs(), "a", ask)).await;
        assert!(got.is_err(), "gave up on a leader everyone names");
        let alone = ["a".to_string()];
        let got = tokio::time::timeout(Duration::from_millis(500), p.moved_from(&alone, "a", ask)).await;
        assert!(got.is_err());
    }
}
