//! The Raft log in RocksDB: entries keyed by big-endian index, plus the vote
//! and the last purged log id. Appends are acknowledged to openraft only
//! once durable: through the log journal (`log_journal.rs`), whose recycled
//! segments make that fsync cheaper than a sync of RocksDB's WAL. The vote
//! and truncations sync RocksDB itself.

use crate::fsm::{cf, db_err};
use crate::store::entry_codec;
use crate::store::log_journal::LogJournal;
use crate::store::{CF_LOGS, CF_RAFT_META};
use crate::types::TypeConfig;
use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use parking_lot::Mutex;
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};
use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

type C = TypeConfig;

/// How an append becomes durable before it is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogSync {
    /// Appended to the segment journal (log_journal.rs) and fdatasynced
    /// there; RocksDB's WAL is synced only when a segment retires.
    #[default]
    Journal,
    /// RocksDB's own WAL fsynced per append (with WAL files recycled): the
    /// comparison point for the journal (`bench/raft_log_ab.sh`).
    RocksdbWal,
}

#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    sync_mode: LogSync,
    /// The newest entries as appended. Replication to the followers and the
    /// state machine read every entry back right after its append; from
    /// here they cost a clone instead of a RocksDB read and a JSON decode.
    tail: Arc<Mutex<Tail>>,
    /// When the committed id was last written (see `save_committed`).
    committed_saved: Arc<Mutex<Option<std::time::Instant>>>,
    journal: Arc<LogJournal>,
}

/// The committed id is written at most this often.
const SAVE_COMMITTED_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Entries kept in the tail at most, and their encoded bytes at most.
const TAIL_ENTRIES: usize = 4096;
const TAIL_BYTES: usize = 32 << 20;

/// A contiguous run of the newest log entries (with their encoded sizes),
/// ending at the last one appended: RocksDB stays the authority, the tail
/// only ever holds what it holds.
#[derive(Default)]
struct Tail {
    entries: VecDeque<(EntryOf<C>, usize)>,
    bytes: usize,
}

impl Tail {
    fn first(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.index())
    }

    fn last(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.index())
    }

    fn push(&mut self, e: EntryOf<C>, size: usize) {
        if self.last().is_some_and(|l| l + 1 != e.index()) {
            self.clear(); // not contiguous: start again from this entry
        }
        self.entries.push_back((e, size));
        self.bytes += size;
        while self.entries.len() > TAIL_ENTRIES || (self.bytes > TAIL_BYTES && self.entries.len() > 1) {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((_, size)) = self.entries.pop_front() {
            self.bytes -= size;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Drops entries after `index` (all with None).
    fn truncate_after(&mut self, index: Option<u64>) {
        while self.last().is_some_and(|l| index.is_none_or(|i| l > i)) {
            if let Some((_, size)) = self.entries.pop_back() {
                self.bytes -= size;
            }
        }
    }

    /// Drops entries up to and including `index`.
    fn purge(&mut self, index: u64) {
        while self.first().is_some_and(|f| f <= index) {
            self.pop_front();
        }
    }

    /// The entries of `range` from `start` on, if the tail holds `start`;
    /// and the index after the last one it holds.
    fn read<RB: RangeBounds<u64>>(&self, start: u64, range: &RB) -> Option<(Vec<EntryOf<C>>, u64)> {
        let first = self.first()?;
        let last = self.last()?;
        if start < first || start > last {
            return None;
        }
        let skip = (start - first) as usize;
        let out = self.entries.iter().skip(skip).map(|(e, _)| e).take_while(|e| range.contains(&e.index()));
        Some((out.cloned().collect(), last + 1))
    }
}

fn idx_key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

fn meta_in<T: for<'de> serde::Deserialize<'de>>(db: &DB, k: &str) -> io::Result<Option<T>> {
    match db.get_cf(cf(db, CF_RAFT_META)?, k).map_err(db_err)? {
        Some(b) => Ok(Some(serde_json::from_slice(&b).map_err(json_err)?)),
        None => Ok(None),
    }
}

fn json_err(e: serde_json::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl LogStore {
    /// Opens the log in `db`, first replaying what the journal in
    /// `journal_dir` holds (appends acknowledged before a crash).
    pub fn open(db: Arc<DB>, journal_dir: &std::path::Path) -> io::Result<LogStore> {
        Self::open_with(db, journal_dir, LogSync::Journal)
    }

    pub fn open_with(db: Arc<DB>, journal_dir: &std::path::Path, sync_mode: LogSync) -> io::Result<LogStore> {
        let purged: Option<LogIdOf<C>> = meta_in(&db, "last_purged")?;
        let (journal, replayed) = LogJournal::open(journal_dir, &db, purged.map(|p| p.index()))?;
        if replayed > 0 {
            tracing::info!(entries = replayed, "raft log journal replayed");
        }
        Ok(LogStore {
            db,
            sync_mode,
            tail: Arc::default(),
            committed_saved: Arc::default(),
            journal: Arc::new(journal),
        })
    }

    fn tail(&self) -> parking_lot::MutexGuard<'_, Tail> {
        self.tail.lock()
    }

    fn meta<T: for<'de> serde::Deserialize<'de>>(&self, k: &str) -> io::Result<Option<T>> {
        meta_in(&self.db, k)
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
        let (mut out, start) = match self.tail().read(start, &range) {
            Some((entries, after)) => (entries, after),
            None => (Vec::new(), start),
        };
        if !range.contains(&start) {
            return Ok(out);
        }
        // Not (all) in the tail: RocksDB has every entry.
        let logs = cf(&self.db, CF_LOGS)?;
        for item in self.db.iterator_cf(logs, IteratorMode::From(&idx_key(start), Direction::Forward)) {
            let (k, v) = item.map_err(db_err)?;
            let idx = u64::from_be_bytes(k.as_ref().try_into().map_err(io::Error::other)?);
            if !range.contains(&idx) {
                break;
            }
            out.push(entry_codec::decode(&v)?);
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
                let e: EntryOf<C> = entry_codec::decode(&v)?;
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
        // Not fsynced on its own (it rides on the next log fsync), and
        // written at most every SAVE_COMMITTED_EVERY (openraft calls this
        // before every apply): the state machine records its own applied
        // id atomically with each entry, so a saved id a little behind only
        // means openraft re-applies less at start, never too much.
        {
            let mut last = self.committed_saved.lock();
            if last.is_some_and(|t| t.elapsed() < SAVE_COMMITTED_EVERY) {
                return Ok(());
            }
            *last = Some(std::time::Instant::now());
        }
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
        let mut appended = Vec::new();
        for e in entries {
            let encoded = entry_codec::encode(&e)?;
            batch.put_cf(logs, idx_key(e.index()), &encoded);
            appended.push((e, encoded));
        }
        self.db.write(batch).map_err(db_err)?;
        // RocksDB first: a segment is retired once RocksDB is synced, and
        // must by then hold only entries RocksDB has.
        if self.sync_mode == LogSync::RocksdbWal {
            let mut tail = self.tail();
            for (e, encoded) in appended {
                tail.push(e, encoded.len());
            }
            drop(tail);
            let db = self.db.clone();
            tokio::task::spawn_blocking(move || callback.io_completed(db.flush_wal(true).map_err(db_err)));
            return Ok(());
        }
        let records: Vec<(u64, &[u8])> = appended.iter().map(|(e, v)| (e.index(), v.as_slice())).collect();
        let written = self.journal.write(&records)?;
        // Into the tail only once RocksDB has them: a reader that misses
        // them there finds them in RocksDB.
        let mut tail = self.tail();
        for (e, encoded) in appended {
            tail.push(e, encoded.len());
        }
        drop(tail);
        // Entries must be readable when this returns; durable when the
        // callback fires.
        let (db, journal) = (self.db.clone(), self.journal.clone());
        tokio::task::spawn_blocking(move || {
            callback.io_completed(written.sync());
            if let Some(full) = written.full {
                // Left in place on failure: replayed (harmlessly) at restart.
                if let Err(e) = journal.retire(full, &db) {
                    tracing::error!(error = %e, "raft log journal: retiring a full segment failed");
                }
            }
        });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let from = last_log_id.as_ref().map(|l| l.index() + 1).unwrap_or(0);
        self.tail().truncate_after(last_log_id.map(|l| l.index()));
        let logs = cf(&self.db, CF_LOGS)?;
        self.db.delete_range_cf(logs, idx_key(from), idx_key(u64::MAX)).map_err(db_err)?;
        self.sync().await?;
        // No journal record may bring a cut entry back at replay.
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || journal.restart()).await.map_err(io::Error::other)?
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        // The state machine's writes are synced only with RocksDB's WAL
        // (appends sync the journal): make them durable before the entries
        // that would rebuild them are gone.
        self.sync().await?;
        self.put_meta("last_purged", &log_id)?;
        self.tail().purge(log_id.index());
        let logs = cf(&self.db, CF_LOGS)?;
        self.db.delete_range_cf(logs, idx_key(0), idx_key(log_id.index() + 1)).map_err(db_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::vote::RaftLeaderIdExt;

    fn entry(index: u64) -> EntryOf<C> {
        let id = openraft::LogId::new(openraft::alias::LeaderIdOf::<C>::new_committed(1, 1), index);
        EntryOf::<C>::new_blank(id)
    }

    fn indices(v: &[EntryOf<C>]) -> Vec<u64> {
        v.iter().map(|e| e.index()).collect()
    }

    async fn append(s: &mut LogStore, range: std::ops::Range<u64>) {
        s.append(range.map(entry), IOFlushed::noop()).await.unwrap();
    }

    #[test]
    fn the_tail_stays_a_contiguous_bounded_suffix() {
        let mut t = Tail::default();
        for i in 1..=TAIL_ENTRIES as u64 + 10 {
            t.push(entry(i), 100);
        }
        assert_eq!(t.first(), Some(11));
        assert_eq!(t.bytes, TAIL_ENTRIES * 100);
        // A gap starts it again.
        t.push(entry(TAIL_ENTRIES as u64 + 20), 7);
        assert_eq!((t.first(), t.last(), t.bytes), (Some(TAIL_ENTRIES as u64 + 20), Some(TAIL_ENTRIES as u64 + 20), 7));
        // Too many bytes: the oldest go, the newest always stays.
        let mut t = Tail::default();
        t.push(entry(1), TAIL_BYTES - 10);
        t.push(entry(2), 20);
        assert_eq!((t.first(), t.bytes), (Some(2), 20));
        t.push(entry(3), TAIL_BYTES * 2);
        assert_eq!((t.first(), t.last()), (Some(3), Some(3)));
    }

    #[test]
    fn the_tail_follows_truncation_and_purge() {
        let mut t = Tail::default();
        for i in 5..=10 {
            t.push(entry(i), 1);
        }
        t.truncate_after(Some(8));
        assert_eq!((t.first(), t.last(), t.bytes), (Some(5), Some(8), 4));
        t.purge(6);
        assert_eq!((t.first(), t.last(), t.bytes), (Some(7), Some(8), 2));
        t.truncate_after(None);
        assert_eq!((t.first(), t.bytes), (None, 0));
    }

    #[test]
    fn the_tail_answers_only_from_what_it_holds() {
        let mut t = Tail::default();
        for i in 5..=10 {
            t.push(entry(i), 1);
        }
        assert!(t.read(4, &(4..8)).is_none());
        assert!(t.read(11, &(11..)).is_none());
        let (got, after) = t.read(6, &(6..9)).unwrap();
        assert_eq!((indices(&got), after), (vec![6, 7, 8], 11));
        let (got, _) = t.read(9, &(9..)).unwrap();
        assert_eq!(indices(&got), vec![9, 10]);
        let (got, _) = t.read(7, &(7..7)).unwrap();
        assert!(got.is_empty());
    }

    #[tokio::test]
    async fn the_committed_id_is_saved_at_most_every_interval_and_never_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(crate::store::open_db(dir.path()).unwrap(), &dir.path().join("journal")).unwrap();
        assert_eq!(s.read_committed().await.unwrap(), None);
        s.save_committed(Some(entry(5).log_id())).await.unwrap();
        s.save_committed(Some(entry(6).log_id())).await.unwrap();
        // The second came too soon: the saved id lags, it does not lead.
        assert_eq!(s.read_committed().await.unwrap(), Some(entry(5).log_id()));
        tokio::time::sleep(SAVE_COMMITTED_EVERY).await;
        s.save_committed(Some(entry(7).log_id())).await.unwrap();
        assert_eq!(s.read_committed().await.unwrap(), Some(entry(7).log_id()));
    }

    #[tokio::test]
    async fn reads_span_the_tail_and_rocksdb_alike() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::open_db(dir.path()).unwrap();
        let mut s = LogStore::open(db.clone(), &dir.path().join("journal")).unwrap();
        append(&mut s, 1..(TAIL_ENTRIES as u64 + 101)).await;
        // 1..=100 only in RocksDB now, the rest in both.
        assert_eq!(s.tail().first(), Some(101));
        let all = s.try_get_log_entries(1..).await.unwrap();
        assert_eq!(indices(&all), (1..TAIL_ENTRIES as u64 + 101).collect::<Vec<_>>());
        assert_eq!(indices(&s.try_get_log_entries(99..103).await.unwrap()), vec![99, 100, 101, 102]);
        assert_eq!(indices(&s.try_get_log_entries(200..=201).await.unwrap()), vec![200, 201]);
        // Truncation and purge reach both.
        s.truncate_after(Some(entry(150).log_id())).await.unwrap();
        assert_eq!(indices(&s.try_get_log_entries(148..).await.unwrap()), vec![148, 149, 150]);
        s.purge(entry(120).log_id()).await.unwrap();
        assert_eq!(indices(&s.try_get_log_entries(0..).await.unwrap()), (121..=150).collect::<Vec<_>>());
        // A fresh store (a restart) reads the same.
        let mut again = LogStore::open(db, &dir.path().join("journal")).unwrap();
        assert_eq!(indices(&again.try_get_log_entries(0..).await.unwrap()), (121..=150).collect::<Vec<_>>());
        append(&mut again, 151..153).await;
        assert_eq!(indices(&again.try_get_log_entries(149..).await.unwrap()), vec![149, 150, 151, 152]);
    }
}
