//! The replicated state machine: the namespace lives in RocksDB column
//! family `sm`; each applied entry is one atomic WriteBatch that also records
//! the last applied log id, so a restarted master resumes exactly where its
//! state is. Snapshots are a consistent RocksDB snapshot of `sm`, serialised.

use crate::fsm::{self, cf, db_err, Txn, CF_SM, CF_SM_META};
use crate::types::{Reply, TypeConfig};
use futures::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::{IteratorMode, WriteBatch, DB};
use std::io::{self, Cursor};
use std::path::PathBuf;
use std::sync::Arc;

type C = TypeConfig;

#[derive(Clone)]
pub struct StateMachine {
    pub db: Arc<DB>,
    snapshot_dir: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotFile {
    meta: SnapshotMetaOf<C>,
    data: Vec<u8>,
}

fn json_err(e: serde_json::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl StateMachine {
    pub fn new(db: Arc<DB>, snapshot_dir: PathBuf) -> io::Result<StateMachine> {
        std::fs::create_dir_all(&snapshot_dir)?;
        Ok(StateMachine { db, snapshot_dir })
    }

    fn meta<T: for<'de> serde::Deserialize<'de>>(&self, k: &str) -> io::Result<Option<T>> {
        match self.db.get_cf(cf(&self.db, CF_SM_META)?, k).map_err(db_err)? {
            Some(b) => Ok(Some(serde_json::from_slice(&b).map_err(json_err)?)),
            None => Ok(None),
        }
    }

    fn snapshot_path(&self) -> PathBuf {
        self.snapshot_dir.join("current")
    }

    /// Writes the snapshot file atomically (temp, fsync, rename, fsync dir).
    fn save_snapshot(&self, f: &SnapshotFile) -> io::Result<()> {
        use std::io::Write;
        let tmp = self.snapshot_dir.join("current.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(f).map_err(json_err)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, self.snapshot_path())?;
        std::fs::File::open(&self.snapshot_dir)?.sync_all()
    }

    /// Serialises every key of the state machine as of one RocksDB snapshot.
    fn dump(&self) -> io::Result<Vec<u8>> {
        let snap = self.db.snapshot();
        let cf = cf(&self.db, CF_SM)?;
        let mut kv: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for item in snap.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(db_err)?;
            kv.push((k.to_vec(), v.to_vec()));
        }
        bincode::serialize(&kv).map_err(io::Error::other)
    }

    pub fn last_applied_index(&self) -> u64 {
        self.meta::<LogIdOf<C>>("last_applied").ok().flatten().map(|l| l.index()).unwrap_or(0)
    }
}

impl RaftSnapshotBuilder<C> for StateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, Cursor<Vec<u8>>>, io::Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            // last_applied and the data are read under the same consistency:
            // apply() is not running while openraft builds a snapshot from
            // this builder's clone, and both reads happen before it resumes.
            let last_log_id: Option<LogIdOf<C>> = this.meta("last_applied")?;
            let last_membership: StoredMembershipOf<C> = this.meta("last_membership")?.unwrap_or_default();
            let data = this.dump()?;
            let meta = SnapshotMetaOf::<C> { last_log_id, last_membership };
            this.save_snapshot(&SnapshotFile { meta: meta.clone(), data: data.clone() })?;
            tracing::info!(last_log = ?meta.last_log_id, bytes = data.len(), "snapshot built");
            Ok(SnapshotOf::<C, Cursor<Vec<u8>>> { meta, snapshot: Cursor::new(data) })
        })
        .await
        .map_err(io::Error::other)?
    }
}

impl RaftStateMachine<C> for StateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        Ok((self.meta("last_applied")?, self.meta("last_membership")?.unwrap_or_default()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            let mut txn = Txn::new(&self.db);
            let mut membership = None;
            let result = match &entry.payload {
                EntryPayload::Blank => {
                    fsm::apply::bootstrap(&mut txn, (0, 0))?;
                    Ok(Reply::None)
                }
                EntryPayload::Membership(m) => {
                    fsm::apply::bootstrap(&mut txn, (0, 0))?;
                    membership = Some(StoredMembershipOf::<C>::new(Some(log_id), m.clone()));
                    Ok(Reply::None)
                }
                EntryPayload::Normal(cmd) => {
                    fsm::apply::bootstrap(&mut txn, cmd.now)?;
                    match fsm::dedup::lookup(&txn, &cmd.request_id)? {
                        // A retry of a command already applied: same answer, no effect.
                        Some(first) => first,
                        None => {
                            let mark = txn.mark();
                            let r = fsm::apply::apply(&mut txn, cmd, log_id.index())?;
                            if r.is_err() {
                                // A refused command changes nothing.
                                txn.rollback(mark);
                            }
                            fsm::dedup::remember(&mut txn, &cmd.request_id, log_id.index(), &r)?;
                            r
                        }
                    }
                }
            };
            let mut batch = WriteBatch::default();
            txn.into_batch(&mut batch)?;
            let meta = cf(&self.db, CF_SM_META)?;
            batch.put_cf(meta, "last_applied", serde_json::to_vec(&log_id).map_err(json_err)?);
            if let Some(m) = membership {
                batch.put_cf(meta, "last_membership", serde_json::to_vec(&m).map_err(json_err)?);
            }
            self.db.write(batch).map_err(db_err)?;
            if let Some(r) = responder {
                r.send(result);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        let kv: Vec<(Vec<u8>, Vec<u8>)> = bincode::deserialize(&data).map_err(io::Error::other)?;
        let this = self.clone();
        let meta2 = meta.clone();
        let data2 = data.clone();
        tokio::task::spawn_blocking(move || {
            let sm = cf(&this.db, CF_SM)?;
            let sm_meta = cf(&this.db, CF_SM_META)?;
            let mut batch = WriteBatch::default();
            // Replace the whole state: drop every key, then load the snapshot.
            for item in this.db.iterator_cf(sm, IteratorMode::Start) {
                let (k, _) = item.map_err(db_err)?;
                batch.delete_cf(sm, k);
            }
            for (k, v) in kv {
                batch.put_cf(sm, k, v);
            }
            batch.put_cf(sm_meta, "last_applied", serde_json::to_vec(&meta2.last_log_id).map_err(json_err)?);
            batch.put_cf(sm_meta, "last_membership", serde_json::to_vec(&meta2.last_membership).map_err(json_err)?);
            this.db.write(batch).map_err(db_err)?;
            this.db.flush_wal(true).map_err(db_err)?;
            this.save_snapshot(&SnapshotFile { meta: meta2, data: data2 })
        })
        .await
        .map_err(io::Error::other)??;
        tracing::info!(last_log = ?meta.last_log_id, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<C, Self::SnapshotData>>, io::Error> {
        match std::fs::read(self.snapshot_path()) {
            Ok(b) => {
                let f: SnapshotFile = serde_json::from_slice(&b).map_err(json_err)?;
                Ok(Some(SnapshotOf::<C, Cursor<Vec<u8>>> { meta: f.meta, snapshot: Cursor::new(f.data) }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
