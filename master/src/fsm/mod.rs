//! The namespace state machine: pure logic over RocksDB. `Txn` gives each
//! command a read-your-writes view; its writes land in one atomic WriteBatch
//! together with the last-applied log id.

pub mod apply;
mod content;
pub mod create_behind;
pub mod dedup;
pub(crate) mod fail;
pub mod format;
pub(crate) mod format_v1;
pub mod gc;
pub mod locks;
pub mod model;
pub mod perm;
pub mod read;
mod rename;
pub mod unsealed;

use model::{decode, encode, key, Counters, Inode};
use rocksdb::{ColumnFamily, WriteBatch, DB};
use std::collections::BTreeMap;
use std::io;

pub const CF_SM: &str = "sm";
pub const CF_SM_META: &str = "sm_meta";

pub fn cf<'a>(db: &'a DB, name: &str) -> io::Result<&'a ColumnFamily> {
    db.cf_handle(name).ok_or_else(|| io::Error::other(format!("column family {name} missing")))
}

pub fn db_err(e: rocksdb::Error) -> io::Error {
    io::Error::other(e.to_string())
}

pub struct Txn<'a> {
    pub db: &'a DB,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Txn<'a> {
    pub fn new(db: &'a DB) -> Txn<'a> {
        Txn { db, pending: BTreeMap::new() }
    }

    /// Pending writes so far, to undo a command that failed half-way.
    pub fn mark(&self) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        self.pending.clone()
    }

    pub fn rollback(&mut self, mark: BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        self.pending = mark;
    }

    pub fn get_raw(&self, k: &[u8]) -> io::Result<Option<Vec<u8>>> {
        if let Some(v) = self.pending.get(k) {
            return Ok(v.clone());
        }
        self.db.get_cf(cf(self.db, CF_SM)?, k).map_err(db_err)
    }

    pub fn get<T: for<'de> serde::Deserialize<'de>>(&self, k: &[u8]) -> io::Result<Option<T>> {
        match self.get_raw(k)? {
            Some(b) => Ok(Some(decode(&b)?)),
            None => Ok(None),
        }
    }

    pub fn put<T: serde::Serialize>(&mut self, k: Vec<u8>, v: &T) {
        self.pending.insert(k, Some(encode(v)));
    }

    pub fn put_raw(&mut self, k: Vec<u8>, v: Vec<u8>) {
        self.pending.insert(k, Some(v));
    }

    pub fn delete(&mut self, k: Vec<u8>) {
        self.pending.insert(k, None);
    }

    /// Keys with `prefix`, merged with pending writes (used for emptiness
    /// checks and xattr removal; never for large scans).
    pub fn keys_with_prefix(&self, prefix: &[u8], limit: usize) -> io::Result<Vec<Vec<u8>>> {
        let mut out: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
        let it = self.db.prefix_iterator_cf(cf(self.db, CF_SM)?, prefix);
        for item in it {
            let (k, _) = item.map_err(db_err)?;
            if !k.starts_with(prefix) || out.len() > limit {
                break;
            }
            out.insert(k.to_vec(), true);
        }
        for (k, v) in self.pending.range(prefix.to_vec()..) {
            if !k.starts_with(prefix) {
                break;
            }
            out.insert(k.clone(), v.is_some());
        }
        Ok(out.into_iter().filter(|(_, live)| *live).map(|(k, _)| k).take(limit).collect())
    }

    pub fn inode(&self, ino: u64) -> io::Result<Option<Inode>> {
        self.get(&key::ino(key::INODE, ino))
    }

    pub fn put_inode(&mut self, i: &Inode) {
        self.put(key::ino(key::INODE, i.ino), i);
    }

    pub fn counters(&self) -> io::Result<Counters> {
        Ok(self.get(key::COUNTERS)?.unwrap_or(Counters { next_ino: 2, ..Default::default() }))
    }

    pub fn put_counters(&mut self, c: &Counters) {
        self.put(key::COUNTERS.to_vec(), c);
    }

    pub fn into_batch(self, batch: &mut WriteBatch) -> io::Result<()> {
        let cf = cf(self.db, CF_SM)?;
        for (k, v) in self.pending {
            match v {
                Some(v) => batch.put_cf(cf, k, v),
                None => batch.delete_cf(cf, k),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
