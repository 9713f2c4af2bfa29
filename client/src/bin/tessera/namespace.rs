//! ls, stat, mkdir, rm, mv, du.

use anyhow::{bail, Result};
use tessera_client::path::join;
use tessera_client::{connect, ClientConfig, Fs};
use tessera_proto::pb::{Attr, FileKind};

pub fn kind_char(kind: i32) -> char {
    match FileKind::try_from(kind).unwrap_or(FileKind::Unspecified) {
        FileKind::Directory => 'd',
        FileKind::Symlink => 'l',
        FileKind::Fifo => 'p',
        FileKind::Socket => 's',
        FileKind::CharDevice => 'c',
        FileKind::BlockDevice => 'b',
        _ => '-',
    }
}

pub fn mode_string(a: &Attr) -> String {
    let mut s = String::new();
    s.push(kind_char(a.kind));
    for shift in [6, 3, 0] {
        let b = (a.mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn mtime(a: &Attr) -> String {
    let t = a.mtime.as_ref().map(|t| t.sec).unwrap_or(0);
    humantime_secs(t)
}

fn humantime_secs(t: i64) -> String {
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", secs / 3600, (secs % 3600) / 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A file's attributes for scripts: exact numbers, times in seconds and
/// nanoseconds since the epoch.
fn attr_json(name: &str, a: &Attr) -> serde_json::Value {
    let t = |t: &Option<tessera_proto::pb::Timespec>| {
        t.as_ref().map(|t| serde_json::json!({"sec": t.sec, "nsec": t.nsec})).unwrap_or(serde_json::Value::Null)
    };
    let kind = FileKind::try_from(a.kind).unwrap_or(FileKind::Unspecified).as_str_name().to_lowercase();
    serde_json::json!({
        "name": name, "ino": a.ino, "kind": kind, "mode": a.mode, "uid": a.uid, "gid": a.gid,
        "size": a.size, "nlink": a.nlink, "atime": t(&a.atime), "mtime": t(&a.mtime), "ctime": t(&a.ctime),
        "version": a.version,
    })
}

pub async fn ls(cfg: &ClientConfig, path: &str, long: bool, json: bool) -> Result<()> {
    let fs = connect(cfg.clone());
    let a = fs.resolve(path).await?;
    let entries = if a.kind == FileKind::Directory as i32 {
        fs.readdir(a.ino, long || json)
            .await?
            .into_iter()
            .map(|e| (String::from_utf8_lossy(&e.name).into_owned(), e.attr))
            .collect()
    } else {
        vec![(path.rsplit('/').next().unwrap_or(path).to_string(), Some(a))]
    };
    if json {
        let v: Vec<_> = entries.iter().filter_map(|(n, a)| a.as_ref().map(|a| attr_json(n, a))).collect();
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for (name, attr) in entries {
        match (long, attr) {
            (true, Some(a)) => outln!(
                "{} {:>3} {:>5} {:>5} {:>12} {} {}",
                mode_string(&a),
                a.nlink,
                a.uid,
                a.gid,
                crate::out::size(a.size),
                mtime(&a),
                name
            ),
            _ => outln!("{name}"),
        }
    }
    Ok(())
}

pub async fn stat(cfg: &ClientConfig, path: &str, json: bool) -> Result<()> {
    let fs = connect(cfg.clone());
    let a = fs.resolve(path).await?;
    if json {
        let mut v = attr_json(path, &a);
        if a.kind == FileKind::Regular as i32 {
            let ext = fs.extents(a.ino).await?;
            v["chunks"] = ext.extents.iter().filter(|e| !e.id.is_empty()).count().into();
        }
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    outln!("  File: {path}");
    outln!("  Size: {}  Kind: {}  Inode: {}  Links: {}", a.size, kind_char(a.kind), a.ino, a.nlink);
    outln!("Access: ({:04o}/{})  Uid: {}  Gid: {}", a.mode, mode_string(&a), a.uid, a.gid);
    outln!("Modify: {}  Version: {}", mtime(&a), a.version);
    if a.kind == FileKind::Regular as i32 {
        let ext = fs.extents(a.ino).await?;
        outln!("Chunks: {}", ext.extents.iter().filter(|e| !e.id.is_empty()).count());
    }
    Ok(())
}

pub async fn mkdir(cfg: &ClientConfig, path: &str, parents: bool) -> Result<()> {
    let fs = connect(cfg.clone());
    if parents {
        fs.mkdir_p(path, 0o755).await?;
    } else {
        fs.mkdir(path, 0o755).await?;
    }
    Ok(())
}

async fn rm_tree(fs: &Fs, dir: &Attr, path: &str) -> Result<()> {
    for e in fs.readdir(dir.ino, false).await? {
        let name = String::from_utf8_lossy(&e.name).into_owned();
        let child = join(path, &name);
        if e.kind == FileKind::Directory as i32 {
            let a = fs.lookup(dir.ino, &name).await?;
            Box::pin(rm_tree(fs, &a, &child)).await?;
            fs.rmdir(dir.ino, &name).await?;
        } else {
            fs.unlink(dir.ino, &name).await?;
        }
    }
    Ok(())
}

pub async fn rm(cfg: &ClientConfig, paths: &[String], recursive: bool) -> Result<()> {
    if paths.is_empty() {
        bail!("rm: no path given");
    }
    let fs = connect(cfg.clone());
    for path in paths {
        let a = fs.resolve(path).await?;
        let (parent, name) = fs.resolve_parent(path).await?;
        if a.kind == FileKind::Directory as i32 {
            if recursive {
                rm_tree(&fs, &a, path).await?;
            }
            fs.rmdir(parent.ino, &name).await.map_err(|e| tessera_client::fs::with_path(e, path))?;
        } else {
            fs.unlink(parent.ino, &name).await.map_err(|e| tessera_client::fs::with_path(e, path))?;
        }
    }
    Ok(())
}

pub async fn mv(cfg: &ClientConfig, from: &str, to: &str) -> Result<()> {
    let fs = connect(cfg.clone());
    // `mv a /dir` moves into an existing directory, like mv(1).
    let target = match fs.resolve(to).await {
        Ok(a) if a.kind == FileKind::Directory as i32 => {
            let name = from.trim_end_matches('/').rsplit('/').next().unwrap_or(from);
            join(to, name)
        }
        _ => to.to_string(),
    };
    fs.rename(from, &target).await?;
    Ok(())
}

/// (logical bytes, files)
async fn du_tree(fs: &Fs, a: &Attr) -> Result<(u64, u64)> {
    if a.kind != FileKind::Directory as i32 {
        return Ok((a.size, 1));
    }
    let mut total = (0, 0);
    for e in fs.readdir(a.ino, true).await? {
        if let Some(ca) = e.attr {
            let (b, f) = Box::pin(du_tree(fs, &ca)).await?;
            total.0 += b;
            total.1 += f;
        }
    }
    Ok(total)
}

pub async fn du(cfg: &ClientConfig, path: &str, summary: bool, json: bool) -> Result<()> {
    let fs = connect(cfg.clone());
    let a = fs.resolve(path).await?;
    let mut entries = Vec::new();
    if !summary && a.kind == FileKind::Directory as i32 {
        for e in fs.readdir(a.ino, true).await? {
            if let Some(ca) = e.attr {
                let (b, f) = du_tree(&fs, &ca).await?;
                let p = join(path, &String::from_utf8_lossy(&e.name));
                if !json {
                    outln!("{:>14}  {p}", crate::out::size(b));
                }
                entries.push(serde_json::json!({"path": p, "bytes": b, "files": f}));
            }
        }
    }
    let (bytes, files) = du_tree(&fs, &a).await?;
    if json {
        let v = serde_json::json!({"path": path, "bytes": bytes, "files": files, "entries": entries});
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        outln!("{:>14}  {path}  ({files} files)", crate::out::size(bytes));
    }
    Ok(())
}
