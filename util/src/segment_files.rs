//! File helpers shared by the two journals made of recycled segment files:
//! the chunkservers' small-chunk journal and the masters' Raft log journal.
//! Both number their files `SEQ.suffix` (SEQ in hex), keep a retired
//! segment as the spare (`SEQ.spare`) to become a later one, preallocate
//! new files with zeros and read records back with `read_full`.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub use crate::durable::sync_dir;

/// The files of `dir` named `SEQ.suffix`, by SEQ.
pub fn numbered(dir: &Path, suffix: &str) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let seq = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(suffix))
            .and_then(|n| u64::from_str_radix(n, 16).ok());
        if let Some(seq) = seq {
            v.push((seq, p));
        }
    }
    v.sort();
    Ok(v)
}

/// Writes `len` zero bytes over the file and syncs it: its blocks are then
/// allocated and written, so overwriting them changes no metadata and an
/// fdatasync writes the data alone. (fallocate would leave them unwritten
/// extents, whose first write is a metadata change too.)
pub fn zero_fill(file: &File, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = zeros.len().min((len - at) as usize);
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_all()
}

pub fn spare_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.spare"))
}

/// Opens `path` (read and write) as a new segment: the spare renamed, or
/// else a new file of `preallocate` zero bytes. The caller syncs `dir`.
pub fn recycle_or_create(dir: &Path, path: &Path, preallocate: u64) -> io::Result<File> {
    match numbered(dir, ".spare")?.pop() {
        Some((_, spare)) => {
            std::fs::rename(&spare, path)?;
            std::fs::OpenOptions::new().read(true).write(true).open(path)
        }
        None => {
            let f = std::fs::OpenOptions::new().create_new(true).read(true).write(true).open(path)?;
            zero_fill(&f, preallocate)?;
            Ok(f)
        }
    }
}

/// Makes a spare of `preallocate` zero bytes numbered `seq` unless one
/// exists, so that the first segment to fill already has a recycled file
/// to follow it.
pub fn ensure_spare(dir: &Path, seq: u64, preallocate: u64) -> io::Result<()> {
    if numbered(dir, ".spare")?.is_empty() {
        let f = std::fs::OpenOptions::new().create_new(true).write(true).open(spare_path(dir, seq))?;
        zero_fill(&f, preallocate)?;
        sync_dir(dir)?;
    }
    Ok(())
}

/// Retires segment `seq` at `path`, all its records being durable
/// elsewhere: it becomes the spare if `recycle` and none is kept yet, else
/// it is deleted. The caller syncs `dir`.
pub fn retire_segment(dir: &Path, seq: u64, path: &Path, recycle: bool) -> io::Result<()> {
    if recycle && numbered(dir, ".spare")?.is_empty() {
        std::fs::rename(path, spare_path(dir, seq))
    } else {
        std::fs::remove_file(path)
    }
}

/// Reads until `buf` is full or the end; returns the bytes read.
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_files_sort_by_number_and_ignore_others() {
        let d = tempfile::tempdir().unwrap();
        for n in ["00000000000000a0.log", "0000000000000002.log", "0000000000000003.spare", "x.log", "zz"] {
            std::fs::write(d.path().join(n), b"").unwrap();
        }
        let got: Vec<u64> = numbered(d.path(), ".log").unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(got, vec![2, 0xa0]);
    }

    #[test]
    fn a_new_segment_is_the_spare_if_there_is_one() {
        let d = tempfile::tempdir().unwrap();
        ensure_spare(d.path(), 1, 4096).unwrap();
        ensure_spare(d.path(), 2, 4096).unwrap();
        assert_eq!(numbered(d.path(), ".spare").unwrap().len(), 1, "one spare at most");
        let seg = d.path().join("0000000000000003.log");
        let f = recycle_or_create(d.path(), &seg, 4096).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 4096);
        assert!(numbered(d.path(), ".spare").unwrap().is_empty(), "the spare was taken");
        let other = d.path().join("0000000000000004.log");
        assert_eq!(recycle_or_create(d.path(), &other, 100).unwrap().metadata().unwrap().len(), 100);
        // Retired: the first becomes the spare, the next is deleted.
        retire_segment(d.path(), 3, &seg, true).unwrap();
        retire_segment(d.path(), 4, &other, true).unwrap();
        assert_eq!(numbered(d.path(), ".spare").unwrap().into_iter().map(|(s, _)| s).collect::<Vec<_>>(), vec![3]);
        assert!(numbered(d.path(), ".log").unwrap().is_empty());
    }

    #[test]
    fn zero_fill_writes_every_byte() {
        let d = tempfile::tempdir().unwrap();
        let f = std::fs::OpenOptions::new().create_new(true).read(true).write(true).open(d.path().join("f")).unwrap();
        f.write_all_at(b"junk", 0).unwrap();
        zero_fill(&f, (1 << 20) + 5).unwrap();
        let all = std::fs::read(d.path().join("f")).unwrap();
        assert_eq!(all.len(), (1 << 20) + 5);
        assert!(all.iter().all(|b| *b == 0));
    }
}
