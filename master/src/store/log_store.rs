//! The Raft log in RocksDB: entries keyed by big-endian index, plus the vote
//! and the last purged log id. Appends are acknowledged to openraft only
//! after the WAL is fsynced.

use crate::fsm::{cf, db_err};
use crate::store::{CF_LOGS, CF_RAFT_META};
use crate::types::TypeConfig;
use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

type C = TypeConfig;

#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

fn idx_key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

fn json_err(e: serde_json::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl LogStore {
    pub fn new(db: Arc<DB>) -> LogStore {
        LogStore { db }
    }

    fn meta<T: for<'de> serde::Deserialize<'de>>(&self, k: &str) -> io::Result<Option<T>> {
        match self.db.get_cf(cf(&self.db, CF_RAFT_META)?, k).map_err(db_err)? {
            Some(b) => Ok(Some(serde_json::from_slice(&b).map_err(json_err)?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, k: &str, v: &T) -> io::Result<()> {
        let b = serde_json::to_vec(v).map_err(json_err)?;
        self.db.put_cf(cf(&self.db, CF_RAFT_META)?, k, b).map_err(db_err)
    }

    async fn sync(&self) -> io::Result<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush_wal(true).map_err(db_err)).await.map_err(io::Error::other)?
    }
}

impl RaftLogReader<C> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<C>>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => *x + 1,
            Bound::Unbounded => 0,
        };
        let logs = cf(&self.db, CF_LOGS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(logs, IteratorMode::From(&idx_key(start), Direction::Forward)) {
            let (k, v) = item.map_err(db_err)?;
            let idx = u64::from_be_bytes(k.as_ref().try_into().map_err(io::Error::other)?);
            if !range.contains(&idx) {
                break;
            }
            out.push(serde_json::from_slice(&v).map_err(json_err)?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        self.meta("vote")
    }
}

impl RaftLogStorage<C> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let logs = cf(&self.db, CF_LOGS)?;
        let last = match self.db.iterator_cf(logs, IteratorMode::End).next() {
            Some(item) => {
                let (_, v) = item.map_err(db_err)?;
                let e: EntryOf<C> = serde_json::from_slice(&v).map_err(json_err)?;
                Some(e.log_id())
            }
            None => None,
        };
        let last_purged_log_id: Option<LogIdOf<C>> = self.meta("last_purged")?;
        let last_log_id = last.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        self.put_meta("vote", vote)?;
        self.sync().await
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        // Not fsynced on its own: it rides on the next log fsync, and a lost
        // value only means re-applying from the state machine's own mark.
        self.put_meta("committed", &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.meta::<Option<LogIdOf<C>>>("committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<C>> + OptionalSend,
    {
        let logs = cf(&self.db, CF_LOGS)?;
        let mut batch = WriteBatch::default();
        for e in entries {
            batch.put_cf(logs, idx_key(e.index()), serde_json::to_vec(&e).map_err(json_err)?);
        }
        self.db.write(batch).map_err(db_err)?;
        // Entries must be readable when this returns; durable when the
        // callback fires.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let r = db.flush_wal(true).map_err(db_err);
            callback.io_completed(r);
        });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let from = last_log_id.map(|l| l.index() + 1).unwrap_or(0);
        let logs = cf(&self.db, CF_LOGS)?;
        self.db.delete_range_cf(logs, idx_key(from), idx_key(u64::MAX)).map_err(db_err)?;
        self.sync().await
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        self.put_meta("last_purged", &log_id)?;
        let logs = cf(&self.db, CF_LOGS)?;
        self.db.delete_range_cf(logs, idx_key(0), idx_key(log_id.index() + 1)).map_err(db_err)?;
        Ok(())
    }
}
