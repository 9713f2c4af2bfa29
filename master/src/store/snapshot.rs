//! Snapshots as RocksDB checkpoint files. A snapshot is one SST file holding
//! every key of the state machine as of one RocksDB snapshot, written by
//! `SstFileWriter` while iterating (so memory stays flat however large the
//! namespace), fsynced and renamed into place. `current.json` names the
//! current one. Installing one replaces the `sm` column family with a range
//! delete plus an SST ingestion; a marker written before and cleared after
//! makes that crash-safe (a restart finishes an interrupted install).
//! A received checkpoint is verified whole first (ingested into a scratch
//! database and every block read back with its checksum): a damaged one
//! is refused and the master stays on its old state and snapshot.

use crate::fsm::{cf, db_err, format, CF_SM, CF_SM_META};
use crate::types::TypeConfig;
use openraft::alias::{LogIdOf, SnapshotMetaOf, StoredMembershipOf};
use rocksdb::{IngestExternalFileOptions, IteratorMode, Options, SstFileWriter, WriteBatch, WriteOptions, DB};
use std::io;
use std::path::{Path, PathBuf};
use tessera_util::durable::write_atomic;

type C = TypeConfig;

/// What openraft passes around as snapshot data: the checkpoint file (None
/// when the state machine was empty), immutable once created.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    pub path: Option<PathBuf>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Current {
    meta: SnapshotMetaOf<C>,
    /// File name inside the snapshot directory.
    file: Option<String>,
}

/// Above every key of the state machine (keys start with an ASCII tag).
const KEY_END: [u8; 16] = [0xff; 16];
const INSTALLING: &str = "installing_snapshot";

fn json_err(e: serde_json::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// A fresh path in `dir` for a snapshot being received.
pub fn receive_path(dir: &Path) -> PathBuf {
    dir.join(format!("recv-{}.part", unique()))
}

/// Builds a checkpoint of the state machine; returns its meta and file.
pub fn build(db: &DB, dir: &Path) -> io::Result<(SnapshotMetaOf<C>, SnapshotFile)> {
    let snap = db.snapshot();
    let read_meta = |k: &str| -> io::Result<Option<Vec<u8>>> { snap.get_cf(cf(db, CF_SM_META)?, k).map_err(db_err) };
    // Data and the applied log id come from the same RocksDB snapshot.
    let last_log_id: Option<LogIdOf<C>> = match read_meta("last_applied")? {
        Some(b) => serde_json::from_slice(&b).map_err(json_err)?,
        None => None,
    };
    let last_membership: StoredMembershipOf<C> = match read_meta("last_membership")? {
        Some(b) => serde_json::from_slice(&b).map_err(json_err)?,
        None => Default::default(),
    };
    let name = format!("{}-{}.sst", last_log_id.as_ref().map(|l| l.index).unwrap_or(0), unique());
    let tmp = dir.join(format!("{name}.tmp"));
    let opts = Options::default();
    let mut writer = SstFileWriter::create(&opts);
    writer.open(&tmp).map_err(db_err)?;
    let mut keys = 0u64;
    for item in snap.iterator_cf(cf(db, CF_SM)?, IteratorMode::Start) {
        let (k, v) = item.map_err(db_err)?;
        writer.put(k, v).map_err(db_err)?;
        keys += 1;
    }
    let file = if keys > 0 {
        writer.finish().map_err(db_err)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dir.join(&name))?;
        Some(name)
    } else {
        drop(writer);
        let _ = std::fs::remove_file(&tmp);
        None
    };
    let meta = SnapshotMetaOf::<C> { last_log_id, last_membership };
    set_current(dir, &Current { meta: meta.clone(), file: file.clone() })?;
    tracing::info!(last_log = ?meta.last_log_id, keys, "snapshot built");
    Ok((meta, SnapshotFile { path: file.map(|f| dir.join(f)) }))
}

/// Writes `current.json` atomically, then drops every other checkpoint.
fn set_current(dir: &Path, cur: &Current) -> io::Result<()> {
    write_atomic(&dir.join("current.json"), &serde_json::to_vec(cur).map_err(json_err)?)?;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let stale = name.ends_with(".sst") && Some(&name) != cur.file.as_ref();
        if stale {
            // A sender still streaming it keeps its open handle.
            let _ = std::fs::remove_file(dir.join(&name));
        }
    }
    Ok(())
}

/// The current snapshot, if one was built or installed.
pub fn current(dir: &Path) -> io::Result<Option<(SnapshotMetaOf<C>, SnapshotFile)>> {
    let b = match std::fs::read(dir.join("current.json")) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let cur: Current = serde_json::from_slice(&b).map_err(json_err)?;
    Ok(Some((cur.meta, SnapshotFile { path: cur.file.map(|f| dir.join(f)) })))
}

/// Reads every key of checkpoint `path` back through a scratch database in
/// `dir` (block checksums verified); the number of keys. A checkpoint in a
/// state format newer than this binary reads is refused (fsm/format.rs).
pub fn verify(dir: &Path, path: &Path) -> io::Result<u64> {
    let scratch = dir.join(format!("verify-{}", unique()));
    let result = (|| {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        let check = DB::open(&opts, &scratch).map_err(db_err)?;
        let mut ingest = IngestExternalFileOptions::default();
        ingest.set_move_files(false);
        check.ingest_external_file_opts(&ingest, vec![path]).map_err(db_err)?;
        let mut read = rocksdb::ReadOptions::default();
        read.set_verify_checksums(true);
        read.fill_cache(false);
        let mut keys = 0u64;
        for item in check.iterator_opt(IteratorMode::Start, read) {
            let (k, v) = item.map_err(db_err)?;
            if &*k == format::FORMAT_KEY {
                format::check(Some(format::parse(&v)?), "the received snapshot")?;
            }
            keys += 1;
        }
        Ok(keys)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result.map_err(|e: io::Error| {
        io::Error::new(io::ErrorKind::InvalidData, format!("snapshot {} refused: {e}", path.display()))
    })
}

/// Makes a received (or local) checkpoint the state machine's whole state.
/// Verified first: a damaged checkpoint changes nothing.
pub fn install(db: &DB, dir: &Path, meta: &SnapshotMetaOf<C>, data: &SnapshotFile) -> io::Result<()> {
    if let Some(p) = &data.path {
        let keys = verify(dir, p)?;
        tracing::info!(keys, last_log = ?meta.last_log_id, "received snapshot verified");
    }
    // Keep the file first: it is both the new current snapshot and what a
    // restart needs to finish an interrupted install.
    let file = match &data.path {
        Some(p) => {
            let name = format!("{}-{}.sst", meta.last_log_id.as_ref().map(|l| l.index).unwrap_or(0), unique());
            if p.parent() == Some(dir) {
                std::fs::rename(p, dir.join(&name))?;
            } else {
                std::fs::copy(p, dir.join(&name))?;
                std::fs::File::open(dir.join(&name))?.sync_all()?;
            }
            Some(name)
        }
        None => None,
    };
    set_current(dir, &Current { meta: meta.clone(), file })?;
    let mut mark = WriteBatch::default();
    mark.put_cf(cf(db, CF_SM_META)?, INSTALLING, b"1");
    write_synced(db, mark)?;
    load_current(db, dir)
}

/// Finishes an install a crash interrupted; a no-op otherwise.
pub fn recover(db: &DB, dir: &Path) -> io::Result<()> {
    if db.get_cf(cf(db, CF_SM_META)?, INSTALLING).map_err(db_err)?.is_some() {
        tracing::warn!("finishing a snapshot install interrupted by a restart");
        load_current(db, dir)?;
    }
    Ok(())
}

/// Replaces `sm` with the current checkpoint and clears the marker.
fn load_current(db: &DB, dir: &Path) -> io::Result<()> {
    let (meta, data) =
        current(dir)?.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no snapshot to install"))?;
    let sm = cf(db, CF_SM)?;
    let mut clear = WriteBatch::default();
    clear.delete_range_cf(sm, [].as_slice(), KEY_END.as_slice());
    write_synced(db, clear)?;
    if let Some(path) = &data.path {
        let mut opts = IngestExternalFileOptions::default();
        // Copy, not move: the file stays the current snapshot for peers.
        opts.set_move_files(false);
        db.ingest_external_file_cf_opts(sm, &opts, vec![path.clone()]).map_err(db_err)?;
    }
    let sm_meta = cf(db, CF_SM_META)?;
    let mut done = WriteBatch::default();
    done.put_cf(sm_meta, "last_applied", serde_json::to_vec(&meta.last_log_id).map_err(json_err)?);
    done.put_cf(sm_meta, "last_membership", serde_json::to_vec(&meta.last_membership).map_err(json_err)?);
    done.delete_cf(sm_meta, INSTALLING);
    write_synced(db, done)?;
    // A checkpoint from a master that predates formats names none.
    format::mark(db)?;
    tracing::info!(last_log = ?meta.last_log_id, "snapshot installed");
    Ok(())
}

fn write_synced(db: &DB, batch: WriteBatch) -> io::Result<()> {
    let mut o = WriteOptions::default();
    o.set_sync(true);
    db.write_opt(batch, &o).map_err(db_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Kv = (Box<[u8]>, Box<[u8]>);

    fn all(db: &DB) -> Vec<Kv> {
        let sm = cf(db, CF_SM).unwrap();
        // The format mark is written by an install, not copied: not state.
        db.iterator_cf(sm, IteratorMode::Start)
            .map(|r| r.unwrap())
            .filter(|(k, _)| &**k != format::FORMAT_KEY)
            .collect()
    }

    /// Two stores (a, b) and a snapshot directory for each.
    /// Both states are in this binary's format, as a master's are once
    /// started (their values here are opaque bytes, never decoded).
    fn two_stores(t: &Path) -> (std::sync::Arc<DB>, PathBuf, std::sync::Arc<DB>, PathBuf) {
        let a = crate::store::open_db(&t.join("a")).unwrap();
        let b = crate::store::open_db(&t.join("b")).unwrap();
        format::mark(&a).unwrap();
        format::mark(&b).unwrap();
        let (da, db_dir) = (t.join("sa"), t.join("sb"));
        std::fs::create_dir_all(&da).unwrap();
        std::fs::create_dir_all(&db_dir).unwrap();
        (a, da, b, db_dir)
    }

    #[test]
    fn a_checkpoint_replaces_the_whole_state_of_another_master() {
        let t = tempfile::tempdir().unwrap();
        let (a, da, b, db_dir) = two_stores(t.path());
        let sm_a = cf(&a, CF_SM).unwrap();
        for i in 0..5000u32 {
            a.put_cf(sm_a, format!("i{i:08}"), vec![i as u8; 100]).unwrap();
        }
        // b holds keys a does not have (they must disappear) and stale values.
        let sm_b = cf(&b, CF_SM).unwrap();
        b.put_cf(sm_b, "i00000001", b"stale").unwrap();
        b.put_cf(sm_b, "zzz-only-in-b", b"x").unwrap();
        let (meta, file) = build(&a, &da).unwrap();
        // Writes after the checkpoint are not in it.
        a.put_cf(sm_a, "later", b"y").unwrap();
        install(&b, &db_dir, &meta, &file).unwrap();
        let mut expect = all(&a);
        expect.retain(|(k, _)| &**k != b"later");
        assert_eq!(all(&b), expect);
        assert_eq!(all(&b).len(), 5000);
        // The installed checkpoint is b's current snapshot; a crash mid
        // install is finished by recover().
        let (_, cur) = current(&db_dir).unwrap().unwrap();
        assert!(cur.path.unwrap().exists());
        b.put_cf(cf(&b, CF_SM_META).unwrap(), INSTALLING, b"1").unwrap();
        b.put_cf(sm_b, "junk", b"j").unwrap();
        recover(&b, &db_dir).unwrap();
        assert_eq!(all(&b), expect);
    }

    #[test]
    fn a_damaged_checkpoint_is_refused_and_changes_nothing() {
        let t = tempfile::tempdir().unwrap();
        let (a, da, b, db_dir) = two_stores(t.path());
        let sm_a = cf(&a, CF_SM).unwrap();
        for i in 0..20000u32 {
            a.put_cf(sm_a, format!("i{i:08}"), format!("value {i} {}", "v".repeat(50))).unwrap();
        }
        let sm_b = cf(&b, CF_SM).unwrap();
        for i in 0..10u32 {
            b.put_cf(sm_b, format!("old{i}"), b"kept").unwrap();
        }
        // b's own snapshot, which must stay current.
        let (_, b_file) = build(&b, &db_dir).unwrap();
        let before = all(&b);
        let (meta, file) = build(&a, &da).unwrap();
        // Damage a data block in the middle of the received file.
        let path = file.path.clone().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 3;
        for x in &mut bytes[mid..mid + 64] {
            *x ^= 0x5a;
        }
        let recv = receive_path(&db_dir);
        std::fs::write(&recv, &bytes).unwrap();
        let e = install(&b, &db_dir, &meta, &SnapshotFile { path: Some(recv) }).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert_eq!(all(&b), before, "old state kept");
        let (_, cur) = current(&db_dir).unwrap().unwrap();
        assert_eq!(cur.path, b_file.path, "old snapshot kept");
        assert!(cur.path.unwrap().exists());
        assert!(b.get_cf(cf(&b, CF_SM_META).unwrap(), INSTALLING).unwrap().is_none());
        // The undamaged file installs.
        install(&b, &db_dir, &meta, &file).unwrap();
        assert_eq!(all(&b), all(&a));
    }

    #[test]
    fn a_checkpoint_in_a_newer_state_format_is_refused_and_an_older_one_marked() {
        let t = tempfile::tempdir().unwrap();
        let (a, da, b, db_dir) = two_stores(t.path());
        let sm_a = cf(&a, CF_SM).unwrap();
        use crate::fsm::model::key::COLLECT_FLOOR;
        a.put_cf(sm_a, COLLECT_FLOOR, crate::codec::legacy::to_vec(&7u64)).unwrap();
        b.put_cf(cf(&b, CF_SM).unwrap(), b"i2", b"two").unwrap();
        let before = all(&b);
        a.put_cf(sm_a, format::FORMAT_KEY, (format::STATE_FORMAT + 1).to_le_bytes()).unwrap();
        let (meta, file) = build(&a, &da).unwrap();
        let e = install(&b, &db_dir, &meta, &file).unwrap_err();
        assert!(e.to_string().contains("newer Tessera"), "{e}");
        assert_eq!(all(&b), before, "old state kept");
        // A checkpoint that names no format (from a master before formats,
        // bincode) installs, converted to this binary's format and marked.
        a.delete_cf(sm_a, format::FORMAT_KEY).unwrap();
        let (meta, file) = build(&a, &da).unwrap();
        install(&b, &db_dir, &meta, &file).unwrap();
        let floor = b.get_cf(cf(&b, CF_SM).unwrap(), COLLECT_FLOOR).unwrap().unwrap();
        assert_eq!(crate::fsm::model::decode::<u64>(&floor).unwrap(), 7);
        assert_eq!(all(&b).len(), 1);
        let mark = b.get_cf(cf(&b, CF_SM).unwrap(), format::FORMAT_KEY).unwrap();
        assert_eq!(mark.as_deref(), Some(&format::STATE_FORMAT.to_le_bytes()[..]));
    }

    #[test]
    fn an_empty_state_machine_makes_an_empty_snapshot() {
        let t = tempfile::tempdir().unwrap();
        let a = crate::store::open_db(&t.path().join("a")).unwrap();
        let dir = t.path().join("s");
        std::fs::create_dir_all(&dir).unwrap();
        let (meta, file) = build(&a, &dir).unwrap();
        assert!(file.path.is_none());
        let b = crate::store::open_db(&t.path().join("b")).unwrap();
        b.put_cf(cf(&b, CF_SM).unwrap(), "x", b"1").unwrap();
        install(&b, &dir, &meta, &file).unwrap();
        assert!(all(&b).is_empty());
    }
}
