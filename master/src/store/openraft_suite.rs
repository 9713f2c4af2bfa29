//! openraft's own storage test suite against Tessera's log store (RocksDB
//! plus the segment journal) and state machine, each test on a fresh data
//! directory.

use crate::store::log_store::LogStore;
use crate::store::open_db;
use crate::store::state_machine::StateMachine;
use crate::types::TypeConfig;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;

struct Fresh;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Fresh {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let io = |e: std::io::Error| StorageError::read(openraft::errors::ErrorSource::from_error(&e));
        let dir = tempfile::tempdir().map_err(io)?;
        let db = open_db(&dir.path().join("db")).map_err(|e| io(std::io::Error::other(e)))?;
        let logs = LogStore::open(db.clone(), &dir.path().join("raft-journal")).map_err(io)?;
        let sm = StateMachine::new(db, dir.path().join("snapshots")).map_err(io)?;
        Ok((dir, logs, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(Suite::test_all(Fresh)).expect("openraft storage suite");
}
