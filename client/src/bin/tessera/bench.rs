//! `tessera bench meta`: metadata operations per second against a live
//! cluster (in the spirit of mdtest / `juicefs mdtest`): create, stat,
//! readdir, rename and delete of many empty files, from concurrent workers.

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tessera_client::path::join;
use tessera_client::{connect, ClientConfig, Fs};

#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// Metadata operations per second.
    Meta(MetaArgs),
}

#[derive(clap::Args)]
pub struct MetaArgs {
    /// Directory to work in (created; must not exist).
    #[arg(long, default_value = "/bench-meta")]
    dir: String,
    /// Files in total.
    #[arg(long, default_value_t = 10_000)]
    files: u64,
    /// Spread the files over this many directories.
    #[arg(long, default_value_t = 1)]
    dirs: u64,
    /// Concurrent operations in flight.
    #[arg(long, default_value_t = 32)]
    clients: u64,
    /// Phases to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "create,stat,readdir,rename,delete")]
    phases: Vec<String>,
}

pub async fn run(cfg: &ClientConfig, cmd: BenchCmd) -> Result<()> {
    let BenchCmd::Meta(a) = cmd;
    if a.files == 0 || a.dirs == 0 || a.clients == 0 {
        bail!("--files, --dirs and --clients must be positive");
    }
    let fs = connect(cfg.clone());
    fs.mkdir(&a.dir, 0o755).await?;
    let mut dirs = Vec::new();
    for d in 0..a.dirs {
        dirs.push(fs.mkdir(&join(&a.dir, &format!("d{d}")), 0o755).await?.ino);
    }
    let dirs = Arc::new(dirs);
    outln!("{:<8} {:>10} {:>9} {:>12}", "PHASE", "OPS", "SECONDS", "OPS/S");
    for (n, phase) in a.phases.iter().enumerate() {
        let t = Instant::now();
        // After a rename phase the files go by their new names.
        let renamed = a.phases[..n].iter().any(|p| p == "rename");
        let ops = match phase.as_str() {
            "readdir" => readdir(&fs, &dirs).await?,
            "create" | "stat" | "rename" | "delete" => per_file(&fs, &a, &dirs, phase, renamed).await?,
            other => bail!("unknown phase {other:?} (create, stat, readdir, rename, delete)"),
        };
        let secs = t.elapsed().as_secs_f64();
        let label = if phase == "readdir" { "readdir*" } else { phase.as_str() };
        outln!("{label:<8} {ops:>10} {secs:>9.2} {:>12.0}", ops as f64 / secs);
    }
    if a.phases.iter().any(|p| p == "readdir") {
        outln!("(* readdir: entries listed per second, whole directories of {} files)", a.files / a.dirs);
    }
    Ok(())
}

fn bar(total: u64, phase: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg:8} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(phase.to_string());
    pb
}

/// One operation per file, `clients` at a time.
async fn per_file(fs: &Fs, a: &MetaArgs, dirs: &Arc<Vec<u64>>, phase: &str, renamed: bool) -> Result<u64> {
    let next = Arc::new(AtomicU64::new(0));
    let pb = bar(a.files, phase);
    let mut workers = Vec::new();
    for _ in 0..a.clients {
        let (fs, dirs, next, pb, phase, files) =
            (fs.clone(), dirs.clone(), next.clone(), pb.clone(), phase.to_string(), a.files);
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= files {
                    return Ok::<(), tessera_client::ClientError>(());
                }
                let dir = dirs[(i % dirs.len() as u64) as usize];
                let (name, new_name) = (format!("f{i:09}"), format!("r{i:09}"));
                let current = if renamed { &new_name } else { &name };
                match phase.as_str() {
                    "create" => drop(fs.create(dir, &name, 0o644, true, false).await?),
                    "stat" => drop(fs.lookup(dir, current).await?),
                    "rename" => fs.rename_at(dir, &name, dir, &new_name).await?,
                    _ => fs.unlink(dir, current).await?,
                }
                pb.inc(1);
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    pb.finish_and_clear();
    Ok(a.files)
}

/// Lists every directory (all pages, with attributes) three times.
async fn readdir(fs: &Fs, dirs: &[u64]) -> Result<u64> {
    let mut entries = 0u64;
    for _ in 0..3 {
        for d in dirs {
            entries += fs.readdir(*d, true).await?.len() as u64;
        }
    }
    Ok(entries)
}
