//! Persistence of a master: one RocksDB instance holds the Raft log, the
//! vote, and the state machine (separate column families), so a single
//! write-ahead log orders them all.

pub mod log_store;
pub mod snapshot;
pub mod state_machine;

use crate::fsm::{CF_SM, CF_SM_META};
use rocksdb::{ColumnFamilyDescriptor, Options, DB};
use std::path::Path;
use std::sync::Arc;

pub const CF_LOGS: &str = "logs";
pub const CF_RAFT_META: &str = "raft_meta";

pub fn open_db(dir: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = [CF_LOGS, CF_RAFT_META, CF_SM, CF_SM_META]
        .into_iter()
        .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
    Ok(Arc::new(DB::open_cf_descriptors(&opts, dir, cfs)?))
}
