//! put, get, cat: bulk transfer with progress bars, parallel over files.

use anyhow::{bail, Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tessera_client::path::join;
use tessera_client::{connect, ClientConfig, Fs};
use tessera_proto::pb::{FileKind, Timespec};

#[derive(clap::Args)]
pub struct PutArgs {
    /// Local files or directories, then the remote destination.
    #[arg(required = true, num_args = 2..)]
    paths: Vec<PathBuf>,
    /// Skip files already complete at the destination (same size and
    /// mtime). Re-running the same command resumes where the first run
    /// wrote: for one source directory and an existing destination
    /// directory, into DEST/NAME if that exists (the first run found DEST
    /// there), else into DEST itself (the first run made it).
    #[arg(long)]
    resume: bool,
    /// Files transferred at once (memory stays bounded: all files share
    /// one 96 MiB budget of chunk buffers).
    #[arg(short = 'j', long, default_value_t = 16)]
    jobs: usize,
    /// Chunk size in bytes for new files.
    #[arg(long, default_value_t = tessera_proto::DEFAULT_CHUNK_SIZE)]
    chunk_size: usize,
}

#[derive(clap::Args)]
pub struct GetArgs {
    /// Remote file or directory.
    src: String,
    /// Local destination.
    dest: PathBuf,
    /// Files transferred at once.
    #[arg(short = 'j', long, default_value_t = 16)]
    jobs: usize,
}

fn bar(total: u64) -> ProgressBar {
    let pb = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

enum Job {
    Dir(String, u32),
    File(PathBuf, String, u64),
    Symlink(PathBuf, String),
}

/// Walks a local tree, listing what to create remotely, parents first.
fn plan(local: &Path, remote: &str, jobs: &mut Vec<Job>) -> Result<()> {
    let md = std::fs::symlink_metadata(local).with_context(|| format!("{}", local.display()))?;
    let ft = md.file_type();
    if ft.is_symlink() {
        jobs.push(Job::Symlink(local.to_path_buf(), remote.to_string()));
    } else if ft.is_dir() {
        jobs.push(Job::Dir(remote.to_string(), md.permissions().mode() & 0o7777));
        let mut entries: Vec<_> = std::fs::read_dir(local)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().into_string().map_err(|n| anyhow::anyhow!("non-UTF-8 name {n:?}"))?;
            plan(&e.path(), &join(remote, &name), jobs)?;
        }
    } else if ft.is_file() {
        jobs.push(Job::File(local.to_path_buf(), remote.to_string(), md.len()));
    } else {
        eprintln!("tessera: skipping special file {}", local.display());
    }
    Ok(())
}

fn mtime_of(md: &std::fs::Metadata) -> Timespec {
    Timespec { sec: md.mtime(), nsec: md.mtime_nsec() as u32 }
}

async fn put_file(fs: &Fs, local: &Path, remote: &str, resume: bool, pb: &ProgressBar) -> Result<()> {
    let md = std::fs::metadata(local)?;
    if resume {
        if let Ok(a) = fs.resolve(remote).await {
            let same_time = a.mtime.as_ref().map(|t| t.sec) == Some(md.mtime());
            if a.kind == FileKind::Regular as i32 && a.size == md.len() && same_time {
                pb.inc(md.len());
                return Ok(());
            }
        }
    }
    let mode = md.permissions().mode() & 0o7777;
    let mut attempt = 0;
    let attr = loop {
        attempt += 1;
        let f = tokio::fs::File::open(local).await.with_context(|| format!("{}", local.display()))?;
        let progress = |n: u64| pb.inc(n);
        match fs.put_stream(f, remote, mode, Some(mtime_of(&md)), &progress).await {
            Ok(a) => break a,
            // A chunk was garbage-collected under the upload: upload again
            // (chunks still present are skipped, so this is cheap). After a
            // pause: the collection has to finish deleting before a commit
            // may reference the chunk again, and a retry at once would find
            // the doomed copies still there, skip them and be refused again.
            Err(e) if e.errno() == libc::EAGAIN && attempt < 8 => {
                let pause = Duration::from_millis(200 << attempt.min(5)).min(Duration::from_secs(5));
                tracing::info!(file = %remote, attempt, ?pause, "chunk collected during upload; retrying");
                tokio::time::sleep(pause).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    // Mode was set at create; only an existing file may need its mode fixed.
    if attr.mode != mode {
        fs.set_times(attr.ino, mtime_of(&md), Some(mode)).await?;
    }
    Ok(())
}

pub async fn put(cfg: &ClientConfig, a: PutArgs) -> Result<()> {
    let mut cfg = cfg.clone();
    cfg.chunk_size = a.chunk_size.clamp(4096, tessera_proto::MAX_CHUNK_SIZE as usize);
    let fs = connect(cfg);
    let (dest, srcs) = match a.paths.split_last() {
        Some((d, s)) => (d.to_string_lossy().into_owned(), s),
        None => bail!("put: need a source and a destination"),
    };
    let dest_is_dir = matches!(fs.resolve(&dest).await, Ok(x) if x.kind == FileKind::Directory as i32);
    let mut jobs = Vec::new();
    for src in srcs {
        let base = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| anyhow::anyhow!("{}: no file name", src.display()))?;
        let nested = join(&dest, &base);
        let target = if srcs.len() > 1 || dest.ends_with('/') {
            nested
        } else if dest_is_dir {
            // A resumed copy of one directory goes where the first run put it.
            let first_run_made_dest = a.resume && src.is_dir() && fs.resolve(&nested).await.is_err();
            if first_run_made_dest {
                dest.clone()
            } else {
                nested
            }
        } else {
            dest.clone()
        };
        plan(src, &target, &mut jobs)?;
    }
    let total: u64 = jobs.iter().map(|j| if let Job::File(_, _, n) = j { *n } else { 0 }).sum();
    let pb = bar(total);
    let mut files = Vec::new();
    for j in jobs {
        match j {
            Job::Dir(r, mode) => {
                let at = fs.mkdir_p(&r, mode).await?;
                if at.mode != mode {
                    fs.set_times(at.ino, at.mtime.unwrap_or_default(), Some(mode)).await?;
                }
            }
            Job::Symlink(l, r) => {
                let target = std::fs::read_link(&l)?;
                let (parent, name) = fs.resolve_parent(&r).await?;
                match fs.symlink(parent.ino, &name, &target.to_string_lossy()).await {
                    Ok(_) => {}
                    Err(e) if e.errno() == libc::EEXIST => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Job::File(l, r, _) => files.push((l, r)),
        }
    }
    let nfiles = files.len();
    let started = std::time::Instant::now();
    stream::iter(files)
        .map(|(l, r)| {
            let (fs, pb) = (fs.clone(), pb.clone());
            async move { put_file(&fs, &l, &r, a.resume, &pb).await.with_context(|| r.clone()) }
        })
        .buffer_unordered(a.jobs.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    pb.finish_and_clear();
    let s = &fs.transfer.stats;
    eprintln!(
        "put {nfiles} files, {total} bytes in {:.2}s; sent {} bytes, {} bytes already stored",
        started.elapsed().as_secs_f64(),
        s.sent_bytes.load(Ordering::Relaxed),
        s.skipped_bytes.load(Ordering::Relaxed)
    );
    Ok(())
}

async fn get_file(fs: &Fs, remote: &str, local: &Path, pb: &ProgressBar) -> Result<()> {
    // Download to a temporary name and rename: a failed get never leaves a
    // truncated file under the real name.
    let tmp = local.with_file_name(format!(
        ".{}.tessera-part",
        local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let f = tokio::fs::File::create(&tmp).await.with_context(|| format!("{}", tmp.display()))?;
    let mut w = tokio::io::BufWriter::with_capacity(1 << 20, f);
    let progress = |n: u64| pb.inc(n);
    let res = fs.get_stream(remote, &mut w, &progress).await;
    let attr = match res {
        Ok(a) => a,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.into());
        }
    };
    let f = w.into_inner();
    f.sync_all().await?;
    drop(f);
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(attr.mode & 0o7777))?;
    tokio::fs::rename(&tmp, local).await?;
    Ok(())
}

pub async fn get(cfg: &ClientConfig, a: GetArgs) -> Result<()> {
    let fs = connect(cfg.clone());
    let root = fs.resolve(&a.src).await?;
    let mut dest = a.dest.clone();
    if dest.is_dir() {
        let base = a.src.trim_end_matches('/').rsplit('/').next().unwrap_or("").to_string();
        if !base.is_empty() {
            dest = dest.join(base);
        }
    }
    // Walk the remote tree: directories created as found, files queued.
    let mut files: Vec<(String, PathBuf, u64)> = Vec::new();
    let mut stack = vec![(a.src.clone(), dest.clone(), root)];
    while let Some((r, l, attr)) = stack.pop() {
        if attr.kind == FileKind::Directory as i32 {
            std::fs::create_dir_all(&l).with_context(|| format!("{}", l.display()))?;
            for e in fs.readdir(attr.ino, true).await? {
                let name = String::from_utf8_lossy(&e.name).into_owned();
                if let Some(ca) = e.attr {
                    stack.push((join(&r, &name), l.join(&name), ca));
                }
            }
        } else if attr.kind == FileKind::Symlink as i32 {
            let t = fs
                .meta
                .read("readlink", |mut c| async move {
                    c.read_link(tessera_proto::pb::ReadLinkRequest { ino: attr.ino }).await
                })
                .await?;
            let _ = std::fs::remove_file(&l);
            std::os::unix::fs::symlink(String::from_utf8_lossy(&t.target).as_ref(), &l)?;
        } else {
            files.push((r, l, attr.size));
        }
    }
    let total = files.iter().map(|f| f.2).sum();
    let pb = bar(total);
    stream::iter(files)
        .map(|(r, l, _)| {
            let (fs, pb) = (fs.clone(), pb.clone());
            async move { get_file(&fs, &r, &l, &pb).await.with_context(|| r.clone()) }
        })
        .buffer_unordered(a.jobs.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    pb.finish_and_clear();
    Ok(())
}

pub async fn cat(cfg: &ClientConfig, path: &str) -> Result<()> {
    let fs = connect(cfg.clone());
    let mut out = tokio::io::stdout();
    fs.get_stream(path, &mut out, &|_| {}).await?;
    Ok(())
}
