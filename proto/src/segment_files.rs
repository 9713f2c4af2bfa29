//! File helpers shared by the two journals made of recycled segment files:
//! the chunkservers' small-chunk journal and the masters' Raft log journal.
//! Both number their files `SEQ.suffix` (SEQ in hex), preallocate new ones
//! with zeros and read records back with `read_full`.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

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

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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
