//! Persistence of a master: one RocksDB instance holds the Raft log, the
//! vote, and the state machine (separate column families), so a single
//! write-ahead log orders them all.

pub mod entry_codec;
pub mod log_journal;
pub mod log_store;
#[cfg(test)]
mod openraft_suite;
pub mod snapshot;
pub mod state_machine;

use crate::fsm::{CF_SM, CF_SM_META};
use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, Options, WriteBufferManager, DB};
use std::path::Path;
use std::sync::Arc;

pub const CF_LOGS: &str = "logs";
pub const CF_RAFT_META: &str = "raft_meta";

/// Memory for RocksDB when not configured: block cache, with memtables and
/// index/filter blocks charged to it.
pub const DEFAULT_CACHE_BYTES: usize = 128 << 20;

pub fn open_db(dir: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    open_db_with(dir, DEFAULT_CACHE_BYTES)
}

/// Opens the master's RocksDB with its memory bounded by `cache_bytes`:
/// one LRU cache holds data blocks *and* index/filter blocks (otherwise
/// they sit outside any cache and grow with the namespace), and memtables
/// are charged to the same cache through a write-buffer manager (flushed
/// when they reach half of it). So the master's footprint is set by its
/// cache, not by the number of files.
pub fn open_db_with(dir: &Path, cache_bytes: usize) -> Result<Arc<DB>, rocksdb::Error> {
    open_db_tuned(dir, cache_bytes, false)
}

/// `open_db_with`; `recycle_wal` reuses WAL files (for a log synced through
/// RocksDB's WAL, where creating a file per WAL costs a metadata sync).
pub fn open_db_tuned(dir: &Path, cache_bytes: usize, recycle_wal: bool) -> Result<Arc<DB>, rocksdb::Error> {
    let cache = Cache::new_lru_cache(cache_bytes);
    let wbm = WriteBufferManager::new_write_buffer_manager_with_cache(cache_bytes / 2, false, cache.clone());
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    // Applying a change looks up keys that mostly do not exist yet (the new
    // name, the request id of a retry, an unsealed marker): bloom filters,
    // in the memtables and in the tables, answer those without a search.
    table.set_bloom_filter(10.0, false);
    let mut cf_opts = Options::default();
    cf_opts.set_block_based_table_factory(&table);
    cf_opts.set_memtable_whole_key_filtering(true);
    cf_opts.set_memtable_prefix_bloom_ratio(0.05);
    cf_opts.set_write_buffer_size((cache_bytes / 8).max(4 << 20));
    let mut opts = cf_opts.clone();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_write_buffer_manager(&wbm);
    if recycle_wal {
        opts.set_recycle_log_file_num(4);
    }
    let cfs =
        [CF_LOGS, CF_RAFT_META, CF_SM, CF_SM_META].into_iter().map(|n| ColumnFamilyDescriptor::new(n, cf_opts.clone()));
    Ok(Arc::new(DB::open_cf_descriptors(&opts, dir, cfs)?))
}
