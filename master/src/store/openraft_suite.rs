//! openraft's own storage test suite against Tessera's log store (RocksDB
//! plus the segment journal) and state machine, each test on a fresh data
//! directory.

use crate::store::log_store::{LogStore, LogSync};
use crate::store::open_db_tuned;
use crate::store::state_machine::StateMachine;
use crate::types::TypeConfig;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;

struct Fresh(LogSync);

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Fresh {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let io = |e: std::io::Error| StorageError::read(openraft::errors::ErrorSource::from_error(&e));
        let dir = tempfile::tempdir().map_err(io)?;
        let wal = self.0 == LogSync::RocksdbWal;
        let db = open_db_tuned(&dir.path().join("db"), 64 << 20, wal).map_err(|e| io(std::io::Error::other(e)))?;
        let logs = LogStore::open_with(db.clone(), &dir.path().join("raft-journal"), self.0).map_err(io)?;
        let sm = StateMachine::new(db, dir.path().join("snapshots")).map_err(io)?;
        Ok((dir, logs, sm))
    }
}

fn suite(mode: LogSync) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(Suite::test_all(Fresh(mode))).expect("openraft storage suite");
}

#[test]
fn openraft_storage_suite_passes() {
    suite(LogSync::Journal);
}

#[test]
fn openraft_storage_suite_passes_with_the_log_synced_by_rocksdb() {
    suite(LogSync::RocksdbWal);
}
