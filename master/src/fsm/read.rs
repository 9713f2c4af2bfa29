//! Read-only queries against the applied namespace.

use super::model::*;
use super::perm::{check, R, X};
use super::{cf, db_err, CF_SM};
use crate::types::{Cred, FsErr};
use rocksdb::{Direction, IteratorMode, DB};

pub type Res<T> = Result<T, FsErr>;

fn io(e: std::io::Error) -> FsErr {
    FsErr::new(libc::EIO, e.to_string())
}

fn get<T: for<'de> serde::Deserialize<'de>>(db: &DB, k: &[u8]) -> Res<Option<T>> {
    let cf = cf(db, CF_SM).map_err(io)?;
    match db.get_cf(cf, k).map_err(|e| io(db_err(e)))? {
        Some(b) => Ok(Some(decode(&b).map_err(io)?)),
        None => Ok(None),
    }
}

/// The advisory locks of one kind (`key::LOCK` or `key::FLOCK`) held on `ino`.
pub fn locks(db: &DB, table: u8, ino: u64) -> Res<Vec<super::locks::Held>> {
    Ok(get(db, &key::ino(table, ino))?.unwrap_or_default())
}

/// The lock session `ino`'s locks are delegated to, if any.
pub fn lock_delegation(db: &DB, ino: u64) -> Res<Option<String>> {
    get(db, &key::ino(key::LOCK_DELEGATION, ino))
}

/// Lock sessions whose lease ended before `now`.
pub fn expired_sessions(db: &DB, now: crate::types::Time) -> Res<Vec<String>> {
    let cf = cf(db, CF_SM).map_err(io)?;
    let mut out = Vec::new();
    let from = [key::SESSION];
    for item in db.iterator_cf(cf, rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward)) {
        let (k, v) = item.map_err(|e| io(db_err(e)))?;
        if k.first() != Some(&key::SESSION) {
            break;
        }
        let rec: super::locks::SessionRec = decode(&v).map_err(io)?;
        if rec.expires <= now {
            out.push(String::from_utf8_lossy(&k[1..]).into_owned());
        }
    }
    Ok(out)
}

pub fn inode(db: &DB, ino: u64) -> Res<Inode> {
    get(db, &key::ino(key::INODE, ino))?.ok_or_else(|| FsErr::new(libc::ENOENT, format!("inode {ino} not found")))
}

pub fn lookup(db: &DB, cred: &Cred, parent: u64, name: &[u8]) -> Res<Inode> {
    super::apply::validate_name(name)?;
    let p = inode(db, parent)?;
    if !p.is_dir() {
        return Err(FsErr::new(libc::ENOTDIR, "not a directory"));
    }
    check(&p, cred, X, "search directory")?;
    let d: Dentry = get(db, &key::ino_name(key::DENTRY, parent, name))?
        .ok_or_else(|| FsErr::new(libc::ENOENT, "no such file or directory"))?;
    inode(db, d.ino)
}

pub struct DirPage {
    pub entries: Vec<(Vec<u8>, Dentry, Option<Inode>)>,
    pub more: bool,
}

pub fn readdir(db: &DB, cred: &Cred, ino: u64, after: &[u8], limit: usize, plus: bool) -> Res<DirPage> {
    let d = inode(db, ino)?;
    if !d.is_dir() {
        return Err(FsErr::new(libc::ENOTDIR, "not a directory"));
    }
    check(&d, cred, R, "read directory")?;
    let prefix = key::ino(key::DENTRY, ino);
    let start = key::ino_name(key::DENTRY, ino, after);
    let cf = cf(db, CF_SM).map_err(io)?;
    let mut entries = Vec::new();
    let mut more = false;
    for item in db.iterator_cf(cf, IteratorMode::From(&start, Direction::Forward)) {
        let (k, v) = item.map_err(|e| io(db_err(e)))?;
        if !k.starts_with(&prefix) {
            break;
        }
        let name = k[prefix.len()..].to_vec();
        if !after.is_empty() && name.as_slice() <= after {
            continue;
        }
        if entries.len() >= limit {
            more = true;
            break;
        }
        let de: Dentry = decode(&v).map_err(io)?;
        let attr = if plus { Some(inode(db, de.ino)?) } else { None };
        entries.push((name, de, attr));
    }
    Ok(DirPage { entries, more })
}

/// Whether `cred` may have `i`'s extents: read or write permission, or
/// ownership (see GetExtentsRequest).
pub fn may_read_content(i: &Inode, cred: &Cred) -> Res<()> {
    use super::perm::{allowed, is_owner_or_root, W};
    if is_owner_or_root(i, cred) || allowed(i, cred, R) || allowed(i, cred, W) {
        return Ok(());
    }
    Err(FsErr::new(libc::EACCES, "permission denied: read"))
}

pub fn extents(db: &DB, ino: u64) -> Res<Extents> {
    Ok(get(db, &key::ino(key::EXTENTS, ino))?.unwrap_or_default())
}

pub fn xattr_get(db: &DB, cred: &Cred, ino: u64, name: &[u8]) -> Res<Vec<u8>> {
    let i = inode(db, ino)?;
    if name.starts_with(b"system.") {
        return Err(FsErr::new(libc::EOPNOTSUPP, "unsupported attribute namespace"));
    }
    if name.starts_with(b"user.") {
        check(&i, cred, R, "read attribute")?;
    }
    if name.starts_with(b"trusted.") && cred.uid != 0 {
        // Linux hides them from anyone but root.
        return Err(FsErr::new(libc::ENODATA, "no such attribute"));
    }
    let cf = cf(db, CF_SM).map_err(io)?;
    db.get_cf(cf, key::ino_name(key::XATTR, ino, name))
        .map_err(|e| io(db_err(e)))?
        .ok_or_else(|| FsErr::new(libc::ENODATA, "no such attribute"))
}

/// The names of `ino`'s attributes that `cred` may see (trusted.* only
/// for root).
pub fn xattr_list(db: &DB, cred: &Cred, ino: u64) -> Res<Vec<Vec<u8>>> {
    inode(db, ino)?;
    let prefix = key::ino(key::XATTR, ino);
    let cf = cf(db, CF_SM).map_err(io)?;
    let mut out = Vec::new();
    for item in db.iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward)) {
        let (k, _) = item.map_err(|e| io(db_err(e)))?;
        if !k.starts_with(&prefix) {
            break;
        }
        let name = &k[prefix.len()..];
        if cred.uid == 0 || !name.starts_with(b"trusted.") {
            out.push(name.to_vec());
        }
    }
    Ok(out)
}

/// Every revoked certificate: serial (lowercase hex) and record.
pub fn revoked(db: &DB) -> Res<Vec<(String, RevokedRec)>> {
    let all: Vec<(Vec<u8>, RevokedRec)> = records(db, key::REVOKED)?;
    Ok(all.into_iter().map(|(k, r)| (String::from_utf8_lossy(&k).into_owned(), r)).collect())
}

/// The chunk token keys (none before the first leader made one).
pub fn token_keys(db: &DB) -> Res<Vec<super::model::TokenKeyRec>> {
    Ok(get(db, key::TOKEN_KEYS)?.unwrap_or_default())
}

pub fn counters(db: &DB) -> Res<Counters> {
    Ok(get(db, key::COUNTERS)?.unwrap_or_default())
}

/// How many collection records the state holds (fsm/gc.rs; the leader's
/// healer counts them as it walks them).
#[cfg(test)]
pub fn collection_records(db: &DB) -> Res<usize> {
    Ok(records::<super::model::CollectRec>(db, key::COLLECT)?.len())
}

/// Every record whose key starts with `tag`: (key without the tag, value).
pub(super) fn records<T: for<'de> serde::Deserialize<'de>>(db: &DB, tag: u8) -> Res<Vec<(Vec<u8>, T)>> {
    let prefix = [tag];
    let cf = cf(db, CF_SM).map_err(io)?;
    let mut out = Vec::new();
    for item in db.iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward)) {
        let (k, v) = item.map_err(|e| io(db_err(e)))?;
        if !k.starts_with(&prefix) {
            break;
        }
        out.push((k[1..].to_vec(), decode(&v).map_err(io)?));
    }
    Ok(out)
}

/// Files unlinked while open (orphans) that lost their last name before
/// `before`.
pub fn orphan_files(db: &DB, before: (i64, u32)) -> Res<Vec<u64>> {
    let all: Vec<(Vec<u8>, (i64, u32))> = records(db, key::ORPHAN)?;
    Ok(all
        .into_iter()
        .filter(|(_, at)| *at < before)
        .filter_map(|(k, _)| <[u8; 8]>::try_from(k.as_slice()).ok().map(u64::from_be_bytes))
        .collect())
}

pub fn servers(db: &DB) -> Res<Vec<ChunkServerRec>> {
    Ok(records(db, key::SERVER)?.into_iter().map(|(_, s)| s).collect())
}
