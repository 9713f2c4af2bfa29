//! The keys chunk access tokens are signed with (tessera_rpc::chunk_token):
//! kept in the replicated state, so every master grants tokens chunkservers
//! accept. Each master loads them every second; the leader makes the first
//! one, and a new one when the newest is older than the rotation period,
//! keeping the one before so tokens it signed stay good until they expire.
//! Chunkservers get them with every heartbeat reply.

use crate::fsm::model::TokenKeyRec;
use crate::meta_service::MetaService;
use crate::types::{Cred, Op};
use std::sync::Arc;
use std::time::Duration;
use tessera_rpc::chunk_token::{self, TokenKey};

fn to_key(r: &TokenKeyRec) -> TokenKey {
    TokenKey { epoch: r.epoch, secret: r.secret, created: r.created }
}

/// The key list after `now` with a rotation period of `rotate`: None when
/// the newest key is young enough.
fn next_keys(cur: &[TokenKeyRec], now: u64, rotate: Duration) -> Option<Vec<TokenKeyRec>> {
    let newest = cur.iter().max_by_key(|k| k.epoch);
    if newest.is_some_and(|k| now < k.created.saturating_add(rotate.as_secs())) {
        return None;
    }
    let fresh =
        TokenKeyRec { epoch: newest.map_or(1, |k| k.epoch.wrapping_add(1)), secret: rand::random(), created: now };
    Some(newest.cloned().into_iter().chain([fresh]).collect())
}

/// Loads the keys into this process every second; on the leader, makes
/// and rotates them.
pub async fn keep_keys(meta: Arc<MetaService>, rotate: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let cur = match crate::fsm::read::token_keys(&meta.db) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "reading chunk token keys failed");
                continue;
            }
        };
        if !cur.is_empty() {
            chunk_token::set_keys(cur.iter().map(to_key).collect());
        }
        if !meta.raft.is_leader() {
            continue;
        }
        if let Some(keys) = next_keys(&cur, chunk_token::now_unix(), rotate) {
            let epoch = keys.last().map_or(0, |k| k.epoch);
            match meta.write(Cred::root(), Op::SetTokenKeys { keys: keys.clone() }).await {
                Ok(_) => {
                    // Granted from now on, not from the next tick.
                    chunk_token::set_keys(keys.iter().map(to_key).collect());
                    tracing::info!(epoch, "new chunk token key")
                }
                Err(e) => tracing::warn!(error = %e, "making a chunk token key failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_key_then_a_new_one_per_period_keeping_the_one_before() {
        let day = Duration::from_secs(86_400);
        let first = next_keys(&[], 1000, day).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].epoch, 1);
        assert_eq!(next_keys(&first, 1000 + 86_399, day), None);
        let second = next_keys(&first, 1000 + 86_400, day).unwrap();
        assert_eq!(second.iter().map(|k| k.epoch).collect::<Vec<_>>(), vec![1, 2]);
        assert_ne!(second[0].secret, second[1].secret);
        let third = next_keys(&second, 1000 + 2 * 86_400, day).unwrap();
        assert_eq!(third.iter().map(|k| k.epoch).collect::<Vec<_>>(), vec![2, 3]);
    }
}
