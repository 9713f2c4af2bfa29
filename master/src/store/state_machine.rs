//! The replicated state machine: the namespace lives in RocksDB column
//! family `sm`; each applied entry is one atomic WriteBatch that also records
//! the last applied log id, so a restarted master resumes exactly where its
//! state is. Snapshots are checkpoint files (see `snapshot`).

use super::snapshot::{self, SnapshotFile};
use crate::fsm::{self, cf, db_err, Txn, CF_SM_META};
use crate::types::{Reply, TypeConfig};
use futures::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::{WriteBatch, DB};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

type C = TypeConfig;

#[derive(Clone)]
pub struct StateMachine {
    pub db: Arc<DB>,
    snapshot_dir: PathBuf,
}

fn json_err(e: serde_json::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl StateMachine {
    pub fn new(db: Arc<DB>, snapshot_dir: PathBuf) -> io::Result<StateMachine> {
        std::fs::create_dir_all(&snapshot_dir)?;
        // Half-received snapshots of an earlier run are useless now.
        for entry in std::fs::read_dir(&snapshot_dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().ends_with(".part") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        snapshot::recover(&db, &snapshot_dir)?;
        crate::fsm::format::mark(&db)?;
        Ok(StateMachine { db, snapshot_dir })
    }

    fn meta<T: for<'de> serde::Deserialize<'de>>(&self, k: &str) -> io::Result<Option<T>> {
        match self.db.get_cf(cf(&self.db, CF_SM_META)?, k).map_err(db_err)? {
            Some(b) => Ok(Some(serde_json::from_slice(&b).map_err(json_err)?)),
            None => Ok(None),
        }
    }
}

impl RaftSnapshotBuilder<C> for StateMachine {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, SnapshotFile>, io::Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let (meta, snapshot) = snapshot::build(&this.db, &this.snapshot_dir)?;
            Ok(SnapshotOf::<C, SnapshotFile> { meta, snapshot })
        })
        .await
        .map_err(io::Error::other)?
    }
}

impl RaftStateMachine<C> for StateMachine {
    type SnapshotData = SnapshotFile;
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
                            fsm::dedup::remember(&mut txn, &cmd.request_id, log_id.index(), &r);
                            r
                        }
                    }
                }
            };
            fsm::dedup::forget_expired(&mut txn, log_id.index())?;
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

    async fn install_snapshot(&mut self, meta: &SnapshotMetaOf<C>, snapshot: SnapshotFile) -> Result<(), io::Error> {
        let this = self.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || snapshot::install(&this.db, &this.snapshot_dir, &meta, &snapshot))
            .await
            .map_err(io::Error::other)?
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<C, SnapshotFile>>, io::Error> {
        Ok(snapshot::current(&self.snapshot_dir)?
            .map(|(meta, snapshot)| SnapshotOf::<C, SnapshotFile> { meta, snapshot }))
    }
}

/// The master's Raft group, over this state machine.
pub type Raft = openraft::Raft<crate::types::TypeConfig, StateMachine>;
